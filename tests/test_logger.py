"""
The loggers: what reaches the log and the JSON-lines file, for every chunking.
"""

from __future__ import annotations

import json

from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from netd.output import JsonLinesFile, jsonLine
from netd.protocols import logger
from tests.support import bindDatagram, connect, makeContext


def lineContext(maxLength: int = 16384, output: str | None = None, clock: Clock | None = None):  # type: ignore[no-untyped-def]
    return makeContext("lines", clock=clock, **{"max-line-length": maxLength, "output": output})


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
        """With an output file each line becomes one JSON object with time, peer and line."""
        path = self.mktemp()
        fake = Clock()
        fake.advance(1700000000.5)
        context = lineContext(output=path, clock=fake)
        served = logger.buildLineLogger(context)
        context.service.startService()
        protocol, transport = connect(served)
        protocol.dataReceived(b'hello\n{"forged": true}\r\n\x1b]0;x\x07\n')
        context.service.stopService()
        with open(path, "rb") as f:
            records = [json.loads(line) for line in f]
        self.assertEqual(
            [r["line"] for r in records], ["hello", '{"forged": true}', "\x1b]0;x\x07"]
        )
        self.assertEqual(
            records[0], {"time": 1700000000.5, "peer": "192.0.2.7:40000", "line": "hello"}
        )


class JsonLineTests(SynchronousTestCase):
    def test_escapesEverythingDangerous(self) -> None:
        """A record is one ASCII line: newlines, escapes and non-ASCII are escaped."""
        data = jsonLine({"line": "a\nb\x1b[2J\u2028é"})
        self.assertEqual(data.count(b"\n"), 1)
        self.assertTrue(data.endswith(b"\n"))
        self.assertTrue(all(32 <= byte < 127 for byte in data[:-1]))
        self.assertEqual(json.loads(data)["line"], "a\nb\x1b[2J\u2028é")

    def test_writeErrorIsLoggedNotRaised(self) -> None:
        """A file that cannot be written loses the record with an error logged, not a crash."""
        events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        output = JsonLinesFile(self.mktemp())
        output.write({"line": "x"})
        self.assertEqual(len([e for e in events if e["log_level"].name == "error"]), 1)
