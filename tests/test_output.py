"""
The line logger's output file: batching, fsync policies, full disks and I/O errors,
reopening for logrotate, stopping; on a fake filesystem and a fake clock.
"""

from __future__ import annotations

import errno
import json
from typing import Any

from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from netd.coerce import byteSize, yesNo
from netd.logs.output import (
    BATCH_BYTES,
    RETRY_FIRST,
    RETRY_MAX,
    IFileSystem,
    JsonLinesFile,
    OSFileSystem,
    jsonLine,
)
from netd.logs.settings import ALWAYS, DEFAULT_FSYNC, NEVER, FsyncPolicy, fsyncPolicy

PATH = "/var/log/lines.jsonl"


class FakeFile:
    """One inode: its bytes, and how many of them an fsync made durable."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.synced = 0


@implementer(IFileSystem)
class FakeFileSystem:
    """
    A filesystem in memory that can run out of space, fail any call, and shorten writes.

    @ivar space: bytes that can still be written (C{None}: unlimited); a write longer
        than that is short, and a write with none left fails with C{ENOSPC}.
    @ivar writeLimit: the most bytes one write takes (a short write), or C{None}.
    @ivar failing: call name -> errno for every such call until removed.
    @ivar dropUnsyncedOnFailedFsync: a failed fsync loses what it did not make durable,
        as Linux may (the pages are marked clean and the error reported once).
    """

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock
        #: when each write was attempted (with a clock)
        self.writeTimes: list[float] = []
        self.paths: dict[str, FakeFile] = {}
        self.fds: dict[int, FakeFile] = {}
        self._nextFd = 3
        self.space: int | None = None
        self.writeLimit: int | None = None
        self.failing: dict[str, int] = {}
        self.dropUnsyncedOnFailedFsync = True
        self.calls: list[tuple[str, Any]] = []

    def _fail(self, call: str) -> None:
        if call in self.failing:
            self.calls.append((call, "failed"))
            code = self.failing[call]
            raise OSError(code, errno.errorcode.get(code, "error"))

    def open(self, path: str) -> int:
        self._fail("open")
        fd = self._nextFd
        self._nextFd += 1
        self.fds[fd] = self.paths.setdefault(path, FakeFile())
        self.calls.append(("open", path))
        return fd

    def write(self, fd: int, data: memoryview) -> int:
        if self.clock is not None:
            self.writeTimes.append(self.clock.seconds())
        self._fail("write")
        size = len(data)
        if self.writeLimit is not None:
            size = min(size, self.writeLimit)
        if self.space is not None:
            if self.space == 0:
                self.calls.append(("write", "failed"))
                raise OSError(errno.ENOSPC, "No space left on device")
            size = min(size, self.space)
            self.space -= size
        self.fds[fd].data += bytes(data[:size])
        self.calls.append(("write", size))
        return size

    def fsync(self, fd: int) -> None:
        file = self.fds[fd]
        if "fsync" in self.failing and self.dropUnsyncedOnFailedFsync:
            del file.data[file.synced :]
        self._fail("fsync")
        file.synced = len(file.data)
        self.calls.append(("fsync", fd))

    def close(self, fd: int) -> None:
        self._fail("close")
        del self.fds[fd]
        self.calls.append(("close", fd))

    def lastByte(self, path: str) -> bytes:
        file = self.paths.get(path)
        return bytes(file.data[-1:]) if file is not None else b""

    def rename(self, old: str, new: str) -> None:
        """What logrotate does: open descriptors keep writing to the moved file."""
        self.paths[new] = self.paths.pop(old)

    def count(self, call: str) -> int:
        """How many calls of this name succeeded."""
        return sum(1 for name, result in self.calls if name == call and result != "failed")

    def lines(self, path: str = PATH) -> list[str]:
        """The C{line} field of every whole record in C{path}."""
        data = bytes(self.paths[path].data)
        return [json.loads(raw)["line"] for raw in data.split(b"\n") if _parses(raw)]

    def durableLines(self, path: str = PATH) -> list[str]:
        file = self.paths[path]
        data = bytes(file.data[: file.synced])
        return [json.loads(raw)["line"] for raw in data.split(b"\n") if _parses(raw)]


def _parses(raw: bytes) -> bool:
    try:
        json.loads(raw)
    except ValueError:
        return False
    return True


def pump(clock: Clock, seconds: float, step: float = 0.05) -> None:
    """Let C{seconds} pass in small steps, so timers set by timers run too."""
    for _ in range(round(seconds / step)):
        clock.advance(step)


def record(text: str) -> bytes:
    return jsonLine({"time": 0.0, "service": "lines", "peer": "192.0.2.7:1", "line": text})


class Outcomes:
    """Collects the C{done} calls of lines, by line."""

    def __init__(self) -> None:
        self.results: list[tuple[str, bool]] = []

    def done(self, text: str) -> Any:
        return lambda ok: self.results.append((text, ok))

    def acked(self) -> list[str]:
        return [text for text, ok in self.results if ok]

    def refused(self) -> list[str]:
        return [text for text, ok in self.results if not ok]


class FileTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        self.clock = Clock()
        self.fs = FakeFileSystem(self.clock)
        self.outcomes = Outcomes()

    def start(self, fsync: FsyncPolicy = ALWAYS, maxBuffer: int = 1 << 20) -> JsonLinesFile:
        output = JsonLinesFile(PATH, self.clock, fsync, maxBuffer, self.fs)
        output.startService()
        return output

    def send(self, output: JsonLinesFile, *texts: str) -> None:
        for text in texts:
            output.write(record(text), self.outcomes.done(text))

    def logged(self, level: str, words: str) -> list[Any]:
        return [
            e
            for e in self.events
            if e["log_level"].name == level and words in e.get("log_format", "")
        ]


class FakeFileSystemTests(SynchronousTestCase):
    def test_fakeAndRealProvideTheInterface(self) -> None:
        """The fake filesystem and the real one offer the same four calls."""
        self.assertTrue(verifyObject(IFileSystem, FakeFileSystem()))
        self.assertTrue(verifyObject(IFileSystem, OSFileSystem()))

    def test_realFileSystemAppends(self) -> None:
        """The real filesystem appends (O_APPEND) and creates the file mode 0640."""
        import os

        path = self.mktemp()
        fs = OSFileSystem()
        for text in (b"a\n", b"b\n"):
            fd = fs.open(path)
            self.assertEqual(fs.write(fd, memoryview(text)), 2)
            fs.fsync(fd)
            fs.close(fd)
        with open(path, "rb") as f:
            self.assertEqual(f.read(), b"a\nb\n")
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o640)
        self.assertEqual(fs.lastByte(path), b"\n")
        self.assertEqual(fs.lastByte(path + ".missing"), b"")


class BatchingTests(FileTestCase):
    def test_oneWritePerReactorTurn(self) -> None:
        """Lines accepted during one reactor turn go out in one write and one fsync."""
        output = self.start()
        self.send(output, "a", "b", "c")
        self.assertEqual(self.fs.count("write"), 0)
        self.clock.advance(0)
        self.assertEqual(self.fs.count("write"), 1)
        self.assertEqual(self.fs.count("fsync"), 1)
        self.assertEqual(self.fs.lines(), ["a", "b", "c"])

    def test_aHugeBacklogIsWrittenInBoundedBuffers(self) -> None:
        """A backlog bigger than one write buffer goes out in several writes, in order."""
        output = self.start(maxBuffer=BATCH_BYTES * 4)
        texts = [f"{i:08d}" + "x" * 1000 for i in range(3000)]
        self.send(output, *texts)
        self.clock.advance(0)
        sizes = [size for name, size in self.fs.calls if name == "write"]
        self.assertGreater(len(sizes), 2)
        self.assertLess(max(sizes), BATCH_BYTES + len(record(texts[0])))
        self.assertEqual(self.fs.lines(), texts)

    def test_shortWritesAreContinued(self) -> None:
        """A write that takes only some bytes is continued: every record whole, in order."""
        self.fs.writeLimit = 7
        output = self.start()
        self.send(output, "first", "second", "third")
        self.clock.advance(0)
        self.assertGreater(self.fs.count("write"), 3)
        self.assertEqual(self.fs.lines(), ["first", "second", "third"])
        self.assertEqual(output.written, 3)
        self.assertEqual(output.failedWrites, 0)


class FsyncPolicyTests(FileTestCase):
    def test_alwaysAcksOnlyAfterTheCoveringFsync(self) -> None:
        """Under always a line is reported durable only once an fsync covers it."""
        output = self.start(ALWAYS)
        seen: list[list[str]] = []
        output.write(record("x"), lambda ok: seen.append(self.fs.durableLines()))
        self.assertEqual(seen, [])
        self.clock.advance(0)
        self.assertEqual(seen, [["x"]])

    def test_alwaysIsGroupCommit(self) -> None:
        """Under always each batch, however many lines, costs one fsync."""
        output = self.start(ALWAYS)
        for turn in range(3):
            self.send(output, *[f"{turn}-{i}" for i in range(100)])
            self.clock.advance(0)
        self.assertEqual(self.fs.count("fsync"), 3)
        self.assertEqual(len(self.outcomes.acked()), 300)

    def test_intervalFsyncsAtMostEveryInterval(self) -> None:
        """Under interval=MS fsyncs are MS apart at least, and acks wait for them."""
        output = self.start(fsyncPolicy("interval=1000"))
        self.send(output, "first")
        self.clock.advance(0)
        self.assertEqual((self.fs.count("fsync"), self.outcomes.acked()), (1, ["first"]))
        self.clock.advance(0.2)
        self.send(output, "second")
        self.clock.advance(0)
        self.assertEqual(self.fs.lines(), ["first", "second"])
        self.assertEqual((self.fs.count("fsync"), self.outcomes.acked()), (1, ["first"]))
        self.clock.advance(0.79)
        self.assertEqual(self.fs.count("fsync"), 1)
        self.clock.advance(0.01)
        self.assertEqual(self.fs.count("fsync"), 2)
        self.assertEqual(self.outcomes.acked(), ["first", "second"])
        self.assertEqual(self.fs.durableLines(), ["first", "second"])

    def test_neverReportsDurableOnceWritten(self) -> None:
        """Under never a line counts as durable once written; only closing fsyncs."""
        output = self.start(NEVER)
        self.send(output, "a", "b")
        self.clock.advance(0)
        self.assertEqual(self.outcomes.acked(), ["a", "b"])
        self.assertEqual(self.fs.count("fsync"), 0)
        self.assertEqual(output.bufferedLines, 0)
        output.stopService()
        self.assertEqual(self.fs.count("fsync"), 1)

    def test_policiesFromText(self) -> None:
        """always, never and interval=MS are the policies; anything else is refused."""
        self.assertEqual(fsyncPolicy("always"), ALWAYS)
        self.assertEqual(fsyncPolicy("never"), NEVER)
        self.assertEqual(fsyncPolicy("interval=250"), FsyncPolicy(0.25))
        self.assertEqual(fsyncPolicy(DEFAULT_FSYNC), DEFAULT_FSYNC)
        self.assertEqual(str(DEFAULT_FSYNC), "interval=1000")
        for bad in ("sometimes", "interval=0", "interval=-5", "interval=", 1000, True):
            self.assertRaises(ValueError, fsyncPolicy, bad)

    def test_sizesAndSwitchesFromText(self) -> None:
        """Sizes take K/M/G suffixes; switches take yes/no or a config file's booleans."""
        self.assertEqual(byteSize("16M"), 16 << 20)
        self.assertEqual(byteSize("512KiB"), 512 << 10)
        self.assertEqual(byteSize(4096), 4096)
        for bad in ("0", 0, -1, "lots", True, 1.5):
            self.assertRaises(ValueError, byteSize, bad)
        self.assertTrue(yesNo("yes") and yesNo(True) and yesNo("true") and yesNo("On"))
        self.assertFalse(yesNo("no") or yesNo(False) or yesNo("off") or yesNo("0"))
        for bad in ("maybe", 1, None):
            self.assertRaises(ValueError, yesNo, bad)


class FailureTests(FileTestCase):
    def test_fullDiskIsLoggedOnceRetriedAndLosesNothing(self) -> None:
        """
        A full disk is logged once, counted per failed call, retried with backoff;
        when space returns every line is written once, in order.
        """
        self.fs.space = 0
        output = self.start()
        for turn in range(5):
            self.send(output, *[f"{turn}-{i}" for i in range(10)])
            self.clock.advance(0.05)
        pump(self.clock, 30)
        self.assertEqual(len(self.logged("error", "cannot write")), 1)
        self.assertGreater(output.failedWrites, 5)
        self.assertEqual((output.bufferedLines, output.written), (50, 0))
        self.assertEqual(self.outcomes.results, [])
        self.fs.space = None
        pump(self.clock, RETRY_MAX + 0.1)
        expected = [f"{turn}-{i}" for turn in range(5) for i in range(10)]
        self.assertEqual(self.fs.lines(), expected)
        self.assertEqual(self.fs.durableLines(), expected)
        self.assertEqual(self.outcomes.acked(), expected)
        self.assertEqual((output.bufferedLines, output.bufferedBytes), (0, 0))
        self.assertEqual(len(self.logged("info", "written again")), 1)

    def test_retriesBackOff(self) -> None:
        """Retries come ever later, up to a ceiling, and start afresh after recovery."""
        self.fs.failing["write"] = errno.EIO
        output = self.start()
        self.send(output, "x")
        pump(self.clock, 30, step=0.01)
        times = self.fs.writeTimes
        gaps = [round(b - a, 1) for a, b in zip(times, times[1:], strict=False)]
        self.assertEqual(gaps[:4], [RETRY_FIRST, RETRY_FIRST * 2, RETRY_FIRST * 4, RETRY_FIRST * 8])
        self.assertEqual(max(gaps), RETRY_MAX)
        self.assertEqual(gaps[-1], RETRY_MAX)
        del self.fs.failing["write"]
        pump(self.clock, RETRY_MAX + 0.1)
        self.assertEqual(self.outcomes.acked(), ["x"])
        self.fs.failing["write"] = errno.EIO
        self.send(output, "y")
        pump(self.clock, 1, step=0.01)
        gaps = [round(b - a, 1) for a, b in zip(times, times[1:], strict=False)]
        self.assertEqual(gaps[-3:], [RETRY_FIRST, RETRY_FIRST * 2, RETRY_FIRST * 4])

    def test_partialWriteThenFullDiskKeepsRecordsWhole(self) -> None:
        """A disk filling mid-record leaves no torn record once space returns."""
        self.fs.space = 100
        output = self.start()
        self.send(output, *[f"line {i}" for i in range(10)])
        self.clock.advance(0)
        self.assertEqual(self.fs.paths[PATH].data.count(b"\n"), 1)
        self.fs.space = None
        self.clock.advance(1)
        self.assertEqual(self.fs.lines(), [f"line {i}" for i in range(10)])
        self.assertEqual(len(self.fs.paths[PATH].data.split(b"\n")), 11)

    def test_failedFsyncWritesTheLinesAgain(self) -> None:
        """
        After a failed fsync the lines it should have covered are written again (the
        kernel may have dropped them) and acknowledged only after a good fsync.
        """
        output = self.start()
        self.send(output, "a", "b")
        self.fs.failing["fsync"] = errno.EIO
        self.clock.advance(0)
        self.assertEqual(self.outcomes.results, [])
        self.assertEqual(output.failedWrites, 1)
        self.assertEqual(output.bufferedLines, 2)
        del self.fs.failing["fsync"]
        self.clock.advance(1)
        self.assertEqual(self.outcomes.acked(), ["a", "b"])
        self.assertEqual(self.fs.durableLines(), ["a", "b"])

    def test_failedFsyncMayDuplicateNeverLose(self) -> None:
        """If a failed fsync did keep the data, the rewrite duplicates lines; none are lost."""
        self.fs.dropUnsyncedOnFailedFsync = False
        output = self.start()
        self.send(output, "a")
        self.fs.failing["fsync"] = errno.EIO
        self.clock.advance(0)
        del self.fs.failing["fsync"]
        self.clock.advance(1)
        self.assertEqual(self.fs.durableLines(), ["a", "a"])
        self.assertEqual(self.outcomes.acked(), ["a"])
        self.assertEqual(output.bufferedLines, 0)

    def test_aFileEndingMidRecordIsMended(self) -> None:
        """A file left ending in part of a record (a crash) gets a newline before new records."""
        self.fs.paths[PATH] = FakeFile()
        self.fs.paths[PATH].data += record("whole") + b'{"time":0.0,"li'
        output = self.start()
        self.send(output, "next")
        self.clock.advance(0)
        self.assertEqual(self.fs.lines(), ["whole", "next"])
        self.assertEqual(bytes(self.fs.paths[PATH].data).count(b"\n"), 3)
        output.reopen()
        self.send(output, "after reopen")
        self.clock.advance(0)
        self.assertEqual(self.fs.lines(), ["whole", "next", "after reopen"])

    def test_fileThatCannotBeOpenedIsRetried(self) -> None:
        """A file that cannot be opened at start is logged and retried; lines wait."""
        self.fs.failing["open"] = errno.EACCES
        output = self.start()
        self.send(output, "waited")
        self.clock.advance(3)
        self.assertEqual(len(self.logged("error", "cannot write")), 1)
        del self.fs.failing["open"]
        pump(self.clock, RETRY_MAX + 0.1)
        self.assertEqual(self.fs.lines(), ["waited"])
        self.assertEqual(self.outcomes.acked(), ["waited"])


class BoundTests(FileTestCase):
    def test_overTheBoundLinesAreDroppedCountedLoggedOnce(self) -> None:
        """Past the bound a line is refused: counted, reported not durable, logged once a minute."""
        self.fs.space = 0
        line = record("0123456789")
        output = self.start(maxBuffer=len(line) * 3)
        self.send(output, *[str(i).rjust(10, "0") for i in range(10)])
        self.assertEqual((output.bufferedLines, output.bufferedBytes), (3, len(line) * 3))
        self.assertEqual(output.dropped, 7)
        self.assertEqual(len(self.outcomes.refused()), 7)
        self.assertFalse(output.hasRoom(len(line)))
        [warning] = self.logged("warn", "dropped")
        self.assertEqual(warning["repeats"], 1)
        self.fs.space = None
        pump(self.clock, RETRY_MAX + 0.1)
        self.assertEqual(self.fs.lines(), ["0000000000", "0000000001", "0000000002"])

    def test_waitersAreToldWhenHalfDrained(self) -> None:
        """A reader waiting for room is called back once, when half the bound is free."""
        self.fs.space = 0
        line = record("x")
        output = self.start(maxBuffer=len(line) * 4)
        self.send(output, "1", "2", "3", "4")
        called: list[int] = []
        output.whenRoom(lambda: called.append(output.bufferedLines))
        self.clock.advance(1)
        self.assertEqual(called, [])
        self.fs.space = None
        pump(self.clock, RETRY_MAX + 0.1)
        self.assertEqual(called, [0])

    def test_anEmptyBufferTakesAnyLine(self) -> None:
        """A line bigger than the whole bound still goes through an empty buffer."""
        output = self.start(maxBuffer=10)
        self.assertTrue(output.hasRoom(1000))
        self.send(output, "much longer than ten bytes")
        self.clock.advance(0)
        self.assertEqual(self.outcomes.acked(), ["much longer than ten bytes"])

    def test_forcedLinesGoOverTheBound(self) -> None:
        """A line already in memory whose connection is gone is kept even over the bound."""
        self.fs.space = 0
        output = self.start(maxBuffer=10)
        self.send(output, "first")
        self.assertTrue(output.write(record("forced"), force=True))
        self.assertEqual(output.dropped, 0)


class ReopenTests(FileTestCase):
    def test_reopenMovesWritingToTheNewFile(self) -> None:
        """After logrotate moves the file, reopen finishes the old one and writes a new one."""
        output = self.start(fsyncPolicy("interval=1000"))
        self.send(output, "old 1")
        self.clock.advance(0)
        self.clock.advance(0.1)
        self.send(output, "old 2")
        self.clock.advance(0)
        self.send(output, "old 3")
        self.fs.rename(PATH, PATH + ".1")
        output.reopen()
        self.send(output, "new 1")
        self.clock.advance(0)
        self.assertEqual(self.fs.durableLines(PATH + ".1"), ["old 1", "old 2", "old 3"])
        self.assertEqual(self.fs.lines(), ["new 1"])
        self.assertEqual(self.fs.fds.keys(), {4})
        self.clock.advance(1)
        self.assertEqual(self.outcomes.acked(), ["old 1", "old 2", "old 3", "new 1"])
        self.assertEqual(len(self.logged("info", "reopened")), 1)

    def test_reopenWithAFullOldDiskMovesWholeLinesToTheNewFile(self) -> None:
        """Lines the old file will not take are written whole to the new one."""
        self.fs.space = 100
        output = self.start()
        self.send(output, *[f"line {i}" for i in range(5)])
        self.clock.advance(0)
        self.fs.rename(PATH, PATH + ".1")
        self.fs.space = None
        self.fs.failing["write"] = errno.ENOSPC
        output.reopen()
        del self.fs.failing["write"]
        pump(self.clock, RETRY_MAX + 0.1)
        old, new = self.fs.lines(PATH + ".1"), self.fs.lines()
        self.assertEqual(old + new, [f"line {i}" for i in range(5)])
        self.assertEqual(old, ["line 0"])
        self.assertEqual(self.outcomes.acked(), [f"line {i}" for i in range(5)])

    def test_reopenWhenTheNewFileCannotBeOpened(self) -> None:
        """If the new file cannot be opened, lines wait and opening is retried."""
        output = self.start()
        self.fs.rename(PATH, PATH + ".1")
        self.fs.failing["open"] = errno.ENOENT
        output.reopen()
        self.send(output, "later")
        self.clock.advance(1)
        del self.fs.failing["open"]
        pump(self.clock, RETRY_MAX + 0.1)
        self.assertEqual(self.fs.lines(), ["later"])


class StopTests(FileTestCase):
    def test_stopWritesAndFsyncsEverything(self) -> None:
        """Stopping writes, fsyncs and closes: every accepted line is durable and reported so."""
        output = self.start(fsyncPolicy("interval=60000"))
        self.send(output, "a")
        self.clock.advance(0)
        self.send(output, "b")
        self.clock.advance(0)
        self.send(output, "c")
        output.stopService()
        self.assertEqual(self.fs.durableLines(), ["a", "b", "c"])
        self.assertEqual(self.outcomes.acked(), ["a", "b", "c"])
        self.assertEqual(self.fs.fds, {})
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_linesThatCannotBeWrittenAtStopAreReported(self) -> None:
        """On a full disk at stop the lost lines are counted, reported and logged."""
        self.fs.space = 0
        output = self.start()
        self.send(output, "a", "b")
        output.stopService()
        self.assertEqual(output.dropped, 2)
        self.assertEqual(self.outcomes.refused(), ["a", "b"])
        self.assertEqual(len(self.logged("error", "could not be written before stopping")), 1)
        self.assertEqual(output.bufferedLines, 0)

    def test_closedFileRefusesLines(self) -> None:
        """A line offered to a stopped file is dropped and reported so, never lost silently."""
        output = self.start()
        output.stopService()
        self.assertFalse(output.write(record("late"), self.outcomes.done("late")))
        self.assertEqual(self.outcomes.refused(), ["late"])
        self.assertEqual(output.counters()["dropped"], 1)
