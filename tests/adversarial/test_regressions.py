"""
Unit regressions for netd bugs the adversarial scenarios found (no sockets, no real
time): each test names the scenario that showed the bug.
"""

from __future__ import annotations

import errno

from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver, MemoryReactor
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from netd.listen.endpoint import DEFAULT_BACKLOG, _tlsListen, parseListen
from netd.logs.output import JsonLinesFile, OSFileSystem
from netd.logs.settings import ALWAYS
from netd.protocols import logger
from tests.support import connect, makeContext
from tests.test_output import PATH, FakeFileSystem, pump, record

BLOCK = 4096


def loggedLines(events: EventLoggingObserver) -> list[str]:
    return [e["line"] for e in events if e.get("log_format") == "{service} {peer}: {line!r}"]


class LineLoggerFairnessTests(SynchronousTestCase):
    """
    C{stalled-linelogger}: 50 clients flooding short lines held the reactor for a whole
    read each (thousands of log events per turn), so another client's echo on the same
    daemon took seconds.
    """

    def setUp(self) -> None:
        self.events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        self.clock = Clock()
        context = makeContext("lines", clock=self.clock, **{"max-line-length": 100})
        self.protocol, self.transport = connect(logger.buildLineLogger(context))

    def test_aReadFullOfLinesIsHandedOverOverSeveralTurns(self) -> None:
        """A read of many lines is logged a budget at a time, the connection unread meanwhile, and in full in the end."""
        budget = logger.LINES_PER_TURN
        lines = [b"line %d" % i for i in range(budget * 2 + 5)]
        self.protocol.dataReceived(b"\n".join(lines) + b"\n")
        self.assertEqual(len(loggedLines(self.events)), budget)
        self.assertEqual(self.transport.producerState, "paused")
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        # A memory clock runs the following turns at once (a reactor, one per turn).
        self.clock.advance(0)
        self.assertEqual(loggedLines(self.events), [line.decode() for line in lines])
        self.assertEqual(self.transport.producerState, "producing")
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_closingMidBudgetKeepsEveryLine(self) -> None:
        """A client that closes while its read waits for the next turn still has every complete line logged, and no timer is left."""
        lines = [b"x%d" % i for i in range(logger.LINES_PER_TURN + 10)]
        self.protocol.dataReceived(b"\n".join(lines) + b"\npartial")
        self.protocol.connectionLost(None)
        self.assertEqual(loggedLines(self.events), [line.decode() for line in lines])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_overlongLineAfterTheBudgetStillDrops(self) -> None:
        """An over-long line waiting for the next turn still drops the connection, and nothing after it is read."""
        budget = logger.LINES_PER_TURN
        data = b"ok\n" * budget + b"y" * 200 + b"\nnever\n"
        self.protocol.dataReceived(data)
        self.clock.advance(0)
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(loggedLines(self.events), ["ok"] * budget)
        self.assertEqual(self.clock.getDelayedCalls(), [])


class BlockFileSystem(FakeFileSystem):
    """The fake filesystem, telling a file's size and block size as the real one does."""

    def size(self, fd: int) -> tuple[int, int]:
        return len(self.fds[fd].data), BLOCK


class FsyncFailureTests(SynchronousTestCase):
    """
    C{eio}: after fsync failed with EIO on ext4, the blocks whose writeback failed read
    back as zeros once the page cache was gone, and so did the start of the lines
    written again into the same block: an acknowledged line was unreadable on disk.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.fs = BlockFileSystem(self.clock)
        # ext4 keeps the failed bytes in the file (as zeros once evicted): nothing shrinks.
        self.fs.dropUnsyncedOnFailedFsync = False
        self.output = JsonLinesFile(PATH, self.clock, ALWAYS, 1 << 20, self.fs)
        self.output.startService()
        self.addCleanup(self.output.stopService)

    def test_linesWrittenAgainStartOnAFreshBlock(self) -> None:
        """After a failed fsync the lines are written again from the start of a fresh block, after a newline, so zeroed blocks spoil no line written later."""
        self.output.write(record("before"))
        self.clock.advance(0)
        self.fs.failing["fsync"] = errno.EIO
        self.output.write(record("during"))
        self.clock.advance(0)
        del self.fs.failing["fsync"]
        pump(self.clock, 1)
        data = bytes(self.fs.paths[PATH].data)
        again = data.rindex(b'{"time"')
        self.assertEqual((again - 1) % BLOCK, 0, "the newline opens a fresh block")
        self.assertEqual(data[again - 1 : again], b"\n")
        self.assertEqual(self.fs.durableLines()[-1], "during")
        lines = data.split(b"\n")
        self.assertEqual(lines[0], record("before").rstrip(b"\n"))
        self.assertEqual(lines[1], record("during").rstrip(b"\n"))
        self.assertEqual(set(lines[2]), {ord(" ")}, "padding: one line of spaces")
        self.assertEqual(lines[3], record("during").rstrip(b"\n"))

    def test_realFileSystemTellsSizeAndBlock(self) -> None:
        """The real filesystem reports a file's size and a block of at least a page."""
        path = self.mktemp()
        real = OSFileSystem()
        fd = real.open(path)
        self.addCleanup(real.close, fd)
        real.write(fd, memoryview(b"12345"))
        size, block = real.size(fd)
        self.assertEqual(size, 5)
        self.assertGreaterEqual(block, 4096)


class ListenBacklogTests(SynchronousTestCase):
    """
    C{idle-hold} at full size: 5,100 connections opened in a row took 23-37 s, because
    Twisted's listen backlog of 50 overflowed and the kernel dropped SYNs (each such
    client waited a 1 s retransmission); with a backlog of 1024, 0.07 s.
    """

    def listened(self, description: str) -> list[tuple[object, ...]]:
        reactor = MemoryReactor()
        parseListen(description).endpoint(reactor).listen(Factory.forProtocol(Protocol))
        return reactor.tcpServers + reactor.unixServers

    def test_streamListenersGetALargeBacklog(self) -> None:
        """A tcp:, tcp6: or unix: listener that names no backlog listens with netd's larger one."""
        [(_, _, backlog, _)] = self.listened("tcp:0:interface=127.0.0.1")
        self.assertEqual(backlog, DEFAULT_BACKLOG)
        [(_, _, backlog, _)] = self.listened("tcp6:0:interface=\\:\\:1")
        self.assertEqual(backlog, DEFAULT_BACKLOG)
        [(_, _, backlog, _, _)] = self.listened("unix:/tmp/netd-backlog.sock")
        self.assertEqual(backlog, DEFAULT_BACKLOG)
        self.assertEqual(_tlsListen("ssl:0:privateKey=k.pem").backlog, DEFAULT_BACKLOG)

    def test_anExplicitBacklogIsKept(self) -> None:
        """A backlog given in the description is the one used."""
        [(_, _, backlog, _)] = self.listened("tcp:0:interface=127.0.0.1:backlog=7")
        self.assertEqual(backlog, 7)
        self.assertGreaterEqual(DEFAULT_BACKLOG, 1024)
