"""
The loggers: what reaches the log and the JSON-lines file, for every chunking.
"""

from __future__ import annotations

import errno
import json
from typing import Any

from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from netd.config.model import resolveSettings
from netd.logs.output import RETRY_MAX, jsonLine
from netd.plugin import ServiceContext
from netd.protocols import logger
from tests.support import bindDatagram, builtins, connect, makeContext
from tests.test_output import PATH, FakeFileSystem, pump


def lineContext(
    maxLength: int = 16384, output: str | None = None, clock: Clock | None = None, **more: Any
) -> ServiceContext:
    settings = {"max-line-length": maxLength, "output": output, **more}
    return makeContext("lines", clock=clock, **settings)


class SimpleLoggerTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)

    def test_logsConnectChunksDisconnect(self) -> None:
        """The connection, each chunk (as repr) and the disconnection are logged with the peer."""
        protocol, transport = connect(logger.buildLogger(makeContext("log")))
        protocol.dataReceived(b"hi\x1b[31m")
        protocol.connectionLost(None)
        texts = [e["log_format"] for e in self.events]
        self.assertIn("{service} {peer} connected", texts)
        self.assertIn("{service} {peer} disconnected", texts)
        chunk = [e for e in self.events if "sent" in e["log_format"]][0]
        self.assertEqual(chunk["peer"], "192.0.2.7:40000")
        self.assertEqual(chunk["data"], "hi\x1b[31m")
        self.assertEqual(chunk["size"], 7)

    def test_chunkLogIsBounded(self) -> None:
        """A huge chunk is logged by its first bytes and its size only."""
        protocol, transport = connect(logger.buildLogger(makeContext("log")))
        protocol.dataReceived(b"a" * 65536)
        chunk = [e for e in self.events if "sent" in e["log_format"]][0]
        self.assertEqual(len(chunk["data"]), logger.CHUNK_LOG_BYTES)
        self.assertEqual(chunk["size"], 65536)
        self.assertEqual(chunk["more"], "...")

    def test_datagramsAreLogged(self) -> None:
        """Each datagram is logged with its source."""
        protocol, transport = bindDatagram(logger.buildLogger(makeContext("log")))
        protocol.datagramReceived(b"hello", ("192.0.2.9", 514))
        chunk = [e for e in self.events if "sent" in e["log_format"]][0]
        self.assertEqual((chunk["peer"], chunk["data"]), ("192.0.2.9:514", "hello"))


class LineLoggerTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)

    def lines(self) -> list[str]:
        return [e["line"] for e in self.events if "line" in e]

    def test_everyChunkSizeGivesTheSameLines(self) -> None:
        """However the stream is split into reads, the same lines are logged; LF and CRLF both end one."""
        stream = b"first\r\nsecond\nthird\r\n\nlast\r\n"
        expected = ["first", "second", "third", "", "last"]
        for size in range(1, len(stream) + 1):
            self.events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
            protocol, transport = connect(logger.buildLineLogger(lineContext()))
            for i in range(0, len(stream), size):
                protocol.dataReceived(stream[i : i + size])
            self.assertEqual(self.lines(), expected, f"chunk size {size}")

    def test_overlongLineDropsConnection(self) -> None:
        """A line over the limit is logged as such and the connection dropped, in any chunking."""
        for size in (1, 7, 100, 1000):
            self.events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
            protocol, transport = connect(logger.buildLineLogger(lineContext(maxLength=10)))
            data = b"ok\n" + b"y" * 50 + b"\nnever\n"
            for i in range(0, len(data), size):
                if not transport.disconnecting:
                    protocol.dataReceived(data[i : i + size])
            self.assertTrue(transport.disconnecting, f"chunk size {size}")
            self.assertEqual(self.lines(), ["ok"])
            self.assertTrue(any("over the" in e["log_format"] for e in self.events))
            self.assertLessEqual(len(protocol._buffer), 11 + size)

    def test_lineAtTheLimitIsAccepted(self) -> None:
        """A line exactly at the limit, CRLF-terminated, is accepted."""
        protocol, transport = connect(logger.buildLineLogger(lineContext(maxLength=10)))
        protocol.dataReceived(b"0123456789\r\n")
        self.assertEqual(self.lines(), ["0123456789"])
        self.assertFalse(transport.disconnecting)

    def test_logHoldsNoRawControlBytes(self) -> None:
        """Undecodable bytes are logged as \\x escapes, never raw."""
        protocol, transport = connect(logger.buildLineLogger(lineContext()))
        protocol.dataReceived(b"bad \xff byte\n")
        self.assertEqual(self.lines(), ["bad \\xff byte"])

    def test_datagramIsOneLine(self) -> None:
        """Each datagram is logged as one line, its trailing newline removed."""
        protocol, transport = bindDatagram(logger.buildLineLogger(lineContext()))
        protocol.datagramReceived(b"one line\r\n", ("192.0.2.9", 514))
        protocol.datagramReceived(b"z" * 20000, ("192.0.2.9", 514))
        self.assertEqual(self.lines(), ["one line"])
        self.assertEqual(transport.written, [])

    def test_outputFileGetsJsonLines(self) -> None:
        """With an output file each line becomes one JSON object: time, service, peer, line."""
        fake = Clock()
        fake.advance(1700000000.5)
        fs = FakeFileSystem()
        context = lineContext(output=PATH, clock=fake)
        served = logger.buildLineLogger(context, fs)
        context.service.startService()
        protocol, transport = connect(served)
        protocol.dataReceived(b'hello\n{"forged": true}\r\n\x1b]0;x\x07\nbad \xff\n')
        context.service.stopService()
        records = [json.loads(line) for line in bytes(fs.paths[PATH].data).splitlines()]
        self.assertEqual(
            [r["line"] for r in records], ["hello", '{"forged": true}', "\x1b]0;x\x07", "bad \\xff"]
        )
        self.assertEqual(
            records[0],
            {"time": 1700000000.5, "service": "lines", "peer": "192.0.2.7:40000", "line": "hello"},
        )


class DurableLineLoggerTests(SynchronousTestCase):
    """The line logger with an output file on a fake filesystem: acks and backpressure."""

    def setUp(self) -> None:
        self.events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        self.clock = Clock()
        self.fs = FakeFileSystem(self.clock)

    def serve(self, **settings: Any) -> tuple[ServiceContext, Any]:
        context = lineContext(output=PATH, clock=self.clock, **settings)
        served = logger.buildLineLogger(context, self.fs)
        context.service.startService()
        self.addCleanup(context.service.stopService)
        return context, served

    def output(self, context: ServiceContext) -> Any:
        [output] = list(context.service)
        return output

    def test_acksOnlyAfterTheCoveringFsync(self) -> None:
        """With ack, OK comes once the line is fsynced, one per line, in order."""
        context, served = self.serve(ack=True, fsync="interval=1000")
        protocol, transport = connect(served)
        protocol.dataReceived(b"one\ntwo\n")
        self.assertEqual(transport.value(), b"")
        self.clock.advance(0)
        self.assertEqual(transport.value(), b"OK\nOK\n")
        self.assertEqual(self.fs.durableLines(), ["one", "two"])
        self.clock.advance(0.5)
        protocol.dataReceived(b"three\n")
        self.clock.advance(0)
        self.assertEqual(self.fs.lines(), ["one", "two", "three"])
        self.assertEqual(transport.value(), b"OK\nOK\n")
        self.clock.advance(0.5)
        self.assertEqual(transport.value(), b"OK\nOK\nOK\n")

    def test_noAcksWithoutTheOption(self) -> None:
        """Without ack the line logger never writes to the client."""
        context, served = self.serve()
        protocol, transport = connect(served)
        protocol.dataReceived(b"one\n")
        self.clock.advance(1)
        self.assertEqual((transport.value(), self.fs.lines()), (b"", ["one"]))

    def test_droppedLineIsAnsweredErr(self) -> None:
        """A line the file refuses is answered ERR, never OK, in its place in the order."""
        context, served = self.serve(ack=True)
        protocol, transport = connect(served)
        protocol.dataReceived(b"kept\n")
        self.output(context).stopService()
        protocol.dataReceived(b"refused\n")
        self.assertEqual(transport.value(), b"OK\nERR\n")

    def test_answersKeepTheLinesOrder(self) -> None:
        """Answers settled out of order are sent in the order of the lines."""
        transport = connect(logger.buildLineLogger(lineContext()))[1]
        answers = logger.Answers(transport)
        first, second, third = answers.expect(), answers.expect(), answers.expect()
        third(False)
        self.assertEqual(transport.value(), b"")
        first(True)
        self.assertEqual(transport.value(), b"OK\n")
        second(True)
        self.assertEqual(transport.value(), b"OK\nOK\nERR\n")

    def test_fullBufferPausesReadingInsteadOfDropping(self) -> None:
        """
        A client sending faster than the disk takes is not read while the buffer is
        full, and resumed when it drains: nothing dropped, order kept, memory bounded.
        """
        line = len(
            jsonLine({"time": 0.0, "service": "lines", "peer": "192.0.2.7:40000", "line": "00000"})
        )
        context, served = self.serve(ack=True, **{"max-buffer": line * 10})
        output = self.output(context)
        self.fs.space = 0
        protocol, transport = connect(served)
        stream = b"".join(b"%05d\n" % i for i in range(100))
        for i in range(0, len(stream), 64):
            if transport.producerState == "producing":
                protocol.dataReceived(stream[i : i + 64])
            else:
                pending = stream[i:]
                break
        self.assertEqual(transport.producerState, "paused")
        self.assertLessEqual(output.bufferedBytes, line * 10)
        self.assertEqual(output.dropped, 0)
        self.fs.space = None
        for _ in range(1000):
            if transport.producerState == "producing" and pending:
                protocol.dataReceived(pending[:64])
                pending = pending[64:]
            self.clock.advance(0.05)
            self.assertLessEqual(output.bufferedBytes, line * 10)
        self.assertEqual(self.fs.lines(), [f"{i:05d}" for i in range(100)])
        self.assertEqual(transport.value(), b"OK\n" * 100)
        self.assertEqual((output.dropped, transport.producerState), (0, "producing"))

    def test_datagramsAreDroppedWhenTheBufferIsFull(self) -> None:
        """A datagram cannot be paused: over the bound it is dropped and counted; no reply."""
        context, served = self.serve(ack=True, **{"max-buffer": 100})
        self.fs.space = 0
        protocol, transport = bindDatagram(served)
        for i in range(5):
            protocol.datagramReceived(b"datagram %d\n" % i, ("192.0.2.9", 5140))
        output = self.output(context)
        self.assertEqual((output.bufferedLines, output.dropped), (1, 4))
        self.assertEqual(transport.written, [])

    def test_clientNotReadingItsAcksIsNotRead(self) -> None:
        """When the client's answers back up, its lines wait until it reads again."""
        context, served = self.serve(ack=True)
        protocol, transport = connect(served)
        self.assertIs(transport.producer, protocol)
        protocol.pauseProducing()  # what the transport does when its buffer is full
        self.assertEqual(transport.producerState, "paused")
        protocol.dataReceived(b"waits\n")
        self.clock.advance(1)
        self.assertEqual(self.fs.lines(), [])
        protocol.resumeProducing()
        self.clock.advance(0)
        self.assertEqual((self.fs.lines(), transport.producerState), (["waits"], "producing"))

    def test_linesReceivedBeforeTheConnectionEndsAreKept(self) -> None:
        """A connection lost while paused keeps every complete line it received; not a partial one."""
        line = len(
            jsonLine({"time": 0.0, "service": "lines", "peer": "192.0.2.7:40000", "line": "a"})
        )
        context, served = self.serve(**{"max-buffer": line})
        self.fs.space = 0
        protocol, transport = connect(served)
        protocol.dataReceived(b"a\nb\nc\nd\npart")
        self.assertEqual(transport.producerState, "paused")
        protocol.connectionLost(None)
        self.fs.space = None
        pump(self.clock, RETRY_MAX + 0.1)
        self.assertEqual(self.fs.lines(), ["a", "b", "c", "d"])

    def test_overlongLineEndsTheConnectionAndItsLines(self) -> None:
        """The lines after an over-long one are not kept: the connection is dropped there."""
        context, served = self.serve(ack=True, **{"max-line-length": 5})
        protocol, transport = connect(served)
        protocol.dataReceived(b"ok\n" + b"y" * 10 + b"\nnever\n")
        self.assertIsNone(transport.producer)
        protocol.connectionLost(None)
        self.clock.advance(0)
        self.assertEqual(self.fs.lines(), ["ok"])

    def test_overlongLineWhilePausedEndsItsLines(self) -> None:
        """A connection lost while not read keeps its lines up to an over-long one, reported once, and none after."""
        context, served = self.serve(ack=True, **{"max-line-length": 5})
        protocol, transport = connect(served)
        protocol.pauseProducing()  # the client does not read its answers
        protocol.dataReceived(b"ok\n" + b"y" * 10 + b"\nnever\n" + b"z" * 10 + b"\n")
        protocol.connectionLost(None)
        self.clock.advance(0)
        self.assertEqual(self.fs.lines(), ["ok"])
        self.assertEqual(len([e for e in self.events if "over the" in e["log_format"]]), 1)

    def test_fullDiskIsAckedWhenSpaceReturns(self) -> None:
        """On a full disk acks wait; once space returns every line is acked, none lost."""
        context, served = self.serve(ack=True, fsync="always")
        self.fs.failing["write"] = errno.ENOSPC
        protocol, transport = connect(served)
        protocol.dataReceived(b"".join(b"line %d\n" % i for i in range(20)))
        pump(self.clock, 10)
        self.assertEqual(transport.value(), b"")
        del self.fs.failing["write"]
        pump(self.clock, RETRY_MAX + 0.1)
        self.assertEqual(transport.value(), b"OK\n" * 20)
        self.assertEqual(self.fs.durableLines(), [f"line {i}" for i in range(20)])

    def test_reopenThroughTheServiceTree(self) -> None:
        """The daemon's reopen (a reopen() on a service of the tree) reaches the file."""
        context, served = self.serve()
        protocol, transport = connect(served)
        protocol.dataReceived(b"before\n")
        self.fs.rename(PATH, PATH + ".1")
        for service in context.service:
            service.reopen()  # type: ignore[attr-defined]
        protocol.dataReceived(b"after\n")
        self.clock.advance(0)
        self.assertEqual((self.fs.lines(PATH + ".1"), self.fs.lines()), (["before"], ["after"]))

    def test_ackWithoutOutputIsAnsweredAfterLogging(self) -> None:
        """With ack but no output file, OK only says the line was logged (and a warning says so)."""
        context = lineContext(ack=True)
        protocol, transport = connect(logger.buildLineLogger(context))
        protocol.dataReceived(b"x\n")
        self.assertEqual(transport.value(), b"OK\n")
        self.assertTrue(any("without an output file" in e["log_format"] for e in self.events))

    def test_optionsFromTheCommandLineAndTheConfigFile(self) -> None:
        """fsync, max-buffer and ack take text (command line) and TOML values alike."""
        linelogger = builtins().lookup("linelogger")
        fromText = resolveSettings(
            linelogger, {"fsync": "always", "max-buffer": "1M", "ack": "yes"}
        )
        fromToml = resolveSettings(
            linelogger, {"fsync": "always", "max-buffer": 1 << 20, "ack": True}
        )
        self.assertEqual(fromText, fromToml)
        self.assertEqual(str(fromText["fsync"]), "always")
        defaults = resolveSettings(linelogger, {})
        self.assertEqual(
            (str(defaults["fsync"]), defaults["max-buffer"], defaults["ack"]),
            ("interval=1000", 16 << 20, False),
        )


class JsonLineTests(SynchronousTestCase):
    def test_escapesEverythingDangerous(self) -> None:
        """A record is one ASCII line: newlines, escapes and non-ASCII are escaped."""
        data = jsonLine({"line": "a\nb\x1b[2J\u2028é"})
        self.assertEqual(data.count(b"\n"), 1)
        self.assertTrue(data.endswith(b"\n"))
        self.assertTrue(all(32 <= byte < 127 for byte in data[:-1]))
        self.assertEqual(json.loads(data)["line"], "a\nb\x1b[2J\u2028é")

    def test_invalidUtf8IsEscapedNotLost(self) -> None:
        """Bytes that are not UTF-8 reach the file as \\x escapes, as in the log."""
        data = jsonLine({"line": logger._text(b"bad \xff\xfe")})
        self.assertTrue(all(32 <= byte < 127 for byte in data[:-1]))
        self.assertEqual(json.loads(data)["line"], "bad \\xff\\xfe")
