"""
The line logger's JSON-lines file, durable: an accepted line is never silently lost.

Each record is one C{json.dumps(ensure_ascii=True)} line: a client's bytes can never
forge a record boundary (newlines are escaped) nor reach a terminal as an escape sequence
(control and non-ASCII characters are written as C{\\uXXXX}).

Lines accepted during one reactor turn go out in one C{write(2)} on an C{O_APPEND}
descriptor (group commit); a short write is continued from where it stopped.  Then the
fsync policy decides when they are on disk:

  - C{always}: one C{fsync} per batch, before any line of it is reported durable;
  - C{interval=MS}: at most one C{fsync} every MS milliseconds;
  - C{never}: netd does not fsync while running (a line is "durable" once written);
    the file is still fsynced when it is closed (reopen, stop).

A failing write or fsync (C{ENOSPC}, C{EIO}, C{EDQUOT}...) is counted, logged once per
failure episode and retried with backoff; meanwhile lines wait in memory, up to
C{maxBuffer} bytes.  After a failed C{fsync} the kernel may have dropped the dirty pages
and will not say so again, so the lines it covered are written again: after an I/O error
a line can appear twice in the file, never zero times.

A crash, or a disk that fills as netd stops, can leave the file ending in part of a
record; the next time the file is opened that fragment is ended with a newline, so it is
one unreadable line and the records after it are whole.  Every filesystem call goes
through an L{IFileSystem}, so tests can fail any of them.
"""

from __future__ import annotations

import errno
import json
import mmap
import os
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from twisted.application.service import Service
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from zope.interface import Interface, implementer

from netd.logs.settings import DEFAULT_FSYNC, DEFAULT_MAX_BUFFER, FsyncPolicy
from netd.logs.throttled import ThrottledLog

__all__ = [
    "IFileSystem",
    "JsonLinesFile",
    "OSFileSystem",
    "jsonLine",
]

#: One write takes this many bytes at most (more than a reactor turn usually brings): the
#: buffer being written is a copy of its lines, so this bounds the memory they take twice.
BATCH_BYTES = 1024 * 1024
#: The first retry after a failed write comes this many seconds later, then doubles...
RETRY_FIRST = 0.1
#: ... up to this.
RETRY_MAX = 5.0
#: Seconds between two log lines about dropped lines.
DROP_LOG_INTERVAL = 60.0

#: Called once per line: C{True} when it is durable, C{False} when it was dropped.
Done = Callable[[bool], None]
_Record = tuple[bytes, Done | None]


def jsonLine(record: dict[str, Any]) -> bytes:
    """One record as an ASCII JSON line."""
    return json.dumps(record, ensure_ascii=True, separators=(",", ":")).encode("ascii") + b"\n"


class IFileSystem(Interface):
    """The four calls the file makes: a seam for tests to fail any of them."""

    def open(path: str) -> int:  # type: ignore[misc]
        """Open C{path} for appending (created if missing); return a descriptor."""

    def write(fd: int, data: memoryview) -> int:  # type: ignore[misc]
        """Write some of C{data}; return how many bytes were written."""

    def fsync(fd: int) -> None:  # type: ignore[misc]
        """Make everything written to C{fd} durable."""

    def close(fd: int) -> None:  # type: ignore[misc]
        """Close C{fd}."""

    def lastByte(path: str) -> bytes:  # type: ignore[misc]
        """The last byte of the file at C{path}; empty if it is empty or unreadable."""


@implementer(IFileSystem)
class OSFileSystem:
    """The real filesystem: C{O_APPEND}, created with mode 0640, never inherited."""

    def open(self, path: str) -> int:
        return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)

    def write(self, fd: int, data: memoryview) -> int:
        return os.write(fd, data)

    def fsync(self, fd: int) -> None:
        os.fsync(fd)

    def close(self, fd: int) -> None:
        os.close(fd)

    def size(self, fd: int) -> tuple[int, int]:
        """The file's size, and the block size its data is written back in."""
        status = os.fstat(fd)
        return status.st_size, max(status.st_blksize, mmap.PAGESIZE)

    def lastByte(self, path: str) -> bytes:
        try:
            with open(path, "rb") as f:
                if f.seek(0, os.SEEK_END) == 0:
                    return b""
                f.seek(-1, os.SEEK_END)
                return f.read(1)
        except OSError:
            return b""


class JsonLinesFile(Service):
    """
    Append JSON lines to C{path} while the service runs; see the module docstring.

    Counters, for status pages: C{written} lines written, C{fsyncs} done,
    C{failedWrites} failed open/write/fsync/close calls, C{dropped} lines refused,
    C{bufferedLines}/C{bufferedBytes} accepted lines held in memory until durable.

    @param fsync: the L{FsyncPolicy}.
    @param maxBuffer: bytes held in memory at most: past it L{hasRoom} is false (a
        stream reader should pause) and L{write} drops.
    @param filesystem: the L{IFileSystem}; the real one by default.
    """

    log = Logger()

    def __init__(
        self,
        path: str,
        clock: IReactorTime,
        fsync: FsyncPolicy = DEFAULT_FSYNC,
        maxBuffer: int = DEFAULT_MAX_BUFFER,
        filesystem: IFileSystem | None = None,
    ) -> None:
        self.path = path
        self.clock = clock
        self.fsync = fsync
        self.maxBuffer = maxBuffer
        self.filesystem: Any = filesystem if filesystem is not None else OSFileSystem()
        self.written = self.fsyncs = self.failedWrites = self.dropped = 0
        self.bufferedLines = self.bufferedBytes = 0
        self._fd: int | None = None
        #: the file ends with a fragment of a record: write a newline first
        self._midLine = False
        #: an fsync failed: start what is written next on a fresh block
        self._realign = False
        #: accepted, not yet written
        self._pending: deque[_Record] = deque()
        #: the records being written as one buffer, and how much of it is written
        self._batch: list[_Record] = []
        self._batchData = b""
        self._batchOffset = 0
        #: written, waiting for an fsync
        self._unsynced: list[_Record] = []
        self._lastSync = float("-inf")
        self._flushCall: IDelayedCall | None = None
        self._syncCall: IDelayedCall | None = None
        self._retryCall: IDelayedCall | None = None
        self._retryDelay = RETRY_FIRST
        #: the error of the current failure episode, and how many calls failed in it
        self._failure: str | None = None
        self._failuresInEpisode = 0
        self._waiters: list[Callable[[], None]] = []
        self._drops = ThrottledLog(self.log, clock, DROP_LOG_INTERVAL)

    def counters(self) -> dict[str, int]:
        """The counters by name."""
        return {
            "written": self.written,
            "fsyncs": self.fsyncs,
            "failedWrites": self.failedWrites,
            "dropped": self.dropped,
            "bufferedLines": self.bufferedLines,
            "bufferedBytes": self.bufferedBytes,
        }

    # Accepting lines

    def hasRoom(self, size: int) -> bool:
        """Whether a line of C{size} bytes fits (an empty buffer takes any line)."""
        return self.bufferedBytes == 0 or self.bufferedBytes + size <= self.maxBuffer

    def whenRoom(self, callback: Callable[[], None]) -> None:
        """Call C{callback} once, when the buffer has drained to half its bound."""
        self._waiters.append(callback)

    def write(self, line: bytes, done: Done | None = None, force: bool = False) -> bool:
        """
        Accept one JSON line (from L{jsonLine}): C{done(True)} is called once it is
        durable, C{done(False)} if it is dropped.

        @param force: accept it even over the bound (a line whose connection is gone:
            it is in memory already, and nobody can be paused for it).
        @return: whether it was accepted; if not it is dropped (counted, logged) and
            C{done(False)} has been called.
        """
        if not self.running:
            self._drop(line, done, "the file is closed")
            return False
        if not force and not self.hasRoom(len(line)):
            self._drop(line, done, f"over {self.maxBuffer} bytes wait to be written")
            return False
        self._pending.append((line, done))
        self.bufferedLines += 1
        self.bufferedBytes += len(line)
        if self._flushCall is None and self._retryCall is None:
            self._flushCall = self.clock.callLater(0, self._flush)
        return True

    def _drop(self, line: bytes, done: Done | None, why: str) -> None:
        self.dropped += 1
        self._drops.warn(
            "dropped",
            "{path}: {repeats} line(s) dropped: {why}",
            path=self.path,
            why=why,
        )
        if done is not None:
            _settle([(line, done)], False)

    # Writing

    def _flush(self) -> None:
        """Write what is pending, then fsync if the policy says so; retry on failure."""
        self._cancelCalls(sync=False)
        try:
            self._writePending()
            self._syncIfDue()
        except OSError as e:
            self._failed(e)
        else:
            self._recovered()

    def _syncDue(self) -> None:
        self._syncCall = None
        if self._retryCall is None:
            self._flush()

    def _writePending(self) -> None:
        """
        Write every pending record, continuing short writes; raise C{OSError} on the
        first failure, keeping what was done.
        """
        if self._fd is None:
            self._open()
        if self._midLine:
            self._writeAll(b"\n")
            self._midLine = False
        if self._realign:
            self._padToBlock()
            self._realign = False
        while self._batch or self._pending:
            if not self._batch:
                self._nextBatch()
            self._writeBatch()

    def _padToBlock(self) -> None:
        """
        After a failed fsync, pad the file with spaces up to the next block, and start
        that block with a newline.

        The blocks whose writeback failed may read back as zeros later (ext4 leaves
        them unwritten), and so does whatever is written into them afterwards, even
        under a successful fsync: the lines written again must start in a fresh block,
        after a newline of their own, so the zeros spoil no line but theirs.  (Only
        with a filesystem that tells the file size: L{OSFileSystem.size}.)
        """
        size = getattr(self.filesystem, "size", None)
        if size is None or self._fd is None:
            return
        offset, block = size(self._fd)
        self._writeAll(b" " * (-offset % block) + b"\n")

    def _nextBatch(self) -> None:
        """Take pending records, up to L{BATCH_BYTES}, as the next buffer to write."""
        size = 0
        while self._pending and size < BATCH_BYTES:
            record = self._pending.popleft()
            self._batch.append(record)
            size += len(record[0])
        self._batchData = b"".join(line for line, _ in self._batch)
        self._batchOffset = 0

    def _open(self) -> None:
        """
        Open the file.  If it ends mid-record (a crash, or a disk that filled as netd
        stopped), that fragment is ended with a newline before the next record, so it
        spoils only itself.
        """
        self._fd = self.filesystem.open(self.path)
        self._midLine = self.filesystem.lastByte(self.path) not in (b"", b"\n")

    def _writeAll(self, data: bytes) -> None:
        assert self._fd is not None
        if self.filesystem.write(self._fd, memoryview(data)) != len(data):
            raise OSError(errno.EIO, "short write")

    def _writeBatch(self) -> None:
        assert self._fd is not None
        view = memoryview(self._batchData)
        while self._batchOffset < len(view):
            count = self.filesystem.write(self._fd, view[self._batchOffset :])
            if count <= 0:
                raise OSError(errno.EIO, "write made no progress")
            self._batchOffset += count
        records = self._batch
        self._batch, self._batchData, self._batchOffset = [], b"", 0
        self._wrote(records)

    def _wrote(self, records: list[_Record]) -> None:
        self.written += len(records)
        if self.fsync.interval is None:
            self._durable(records)
        else:
            self._unsynced.extend(records)

    def _syncIfDue(self) -> None:
        if not self._unsynced or self.fsync.interval is None:
            return
        wait = self._lastSync + self.fsync.interval - self.clock.seconds()
        if wait <= 0:
            self._sync()
        elif self._syncCall is None:
            self._syncCall = self.clock.callLater(wait, self._syncDue)

    def _sync(self) -> None:
        """fsync; on failure the records it should have covered are written again."""
        if self._fd is None or not self._unsynced:
            return
        records, self._unsynced = self._unsynced, []
        try:
            self.filesystem.fsync(self._fd)
        except OSError:
            self._pending.extendleft(reversed(records))
            self._realign = True
            raise
        self.fsyncs += 1
        self._lastSync = self.clock.seconds()
        self._durable(records)

    def _durable(self, records: list[_Record]) -> None:
        self.bufferedLines -= len(records)
        self.bufferedBytes -= sum(len(line) for line, _ in records)
        _settle(records, True)
        if self._waiters and self.bufferedBytes <= self.maxBuffer // 2:
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                waiter()

    # Failing and recovering

    def _failed(self, error: OSError) -> None:
        self.failedWrites += 1
        self._failuresInEpisode += 1
        if self._failure is None:
            self._failure = error.strerror or str(error)
            self.log.error(
                "cannot write {path}: {error}; lines wait in memory (at most {limit} bytes)"
                " and writing is retried",
                path=self.path,
                error=self._failure,
                limit=self.maxBuffer,
            )
        if self.running:
            self._retryCall = self.clock.callLater(self._retryDelay, self._flush)
            self._retryDelay = min(self._retryDelay * 2, RETRY_MAX)

    def _recovered(self) -> None:
        if self._failure is None:
            return
        self.log.info(
            "{path} is written again, after {failures} failed attempts ({error})",
            path=self.path,
            failures=self._failuresInEpisode,
            error=self._failure,
        )
        self._failure = None
        self._failuresInEpisode = 0
        self._retryDelay = RETRY_FIRST

    def _cancelCalls(self, sync: bool = True) -> None:
        """Cancel the timers (the fsync timer too, unless C{sync} is false)."""
        calls = [self._flushCall, self._retryCall]
        if sync:
            calls.append(self._syncCall)
            self._syncCall = None
        for call in calls:
            if call is not None and call.active():
                call.cancel()
        self._flushCall = self._retryCall = None

    # Opening and closing

    def startService(self) -> None:
        """Open the file; if it cannot be, lines wait in memory while opening is retried."""
        super().startService()
        try:
            self._open()
        except OSError as e:
            self._failed(e)

    def reopen(self) -> None:
        """
        For logrotate (SIGUSR1, SIGHUP): finish the old file (write what is buffered,
        fsync, close), then open C{path} anew.  What the old file would not take is
        written to the new one.
        """
        if not self.running:
            return
        self._cancelCalls()
        self._close()
        try:
            self._open()
        except OSError as e:
            self._failed(e)
            return
        self.log.info("{path} reopened", path=self.path)
        self._flush()

    def stopService(self) -> None:
        """Write and fsync every line accepted, whatever the policy; then close."""
        super().stopService()
        self._cancelCalls()
        self._close()
        lost = list(self._pending)
        if lost:
            self._pending.clear()
            self.dropped += len(lost)
            self.bufferedLines -= len(lost)
            self.bufferedBytes -= sum(len(line) for line, _ in lost)
            self.log.error(
                "{path}: {count} lines could not be written before stopping: lost",
                path=self.path,
                count=len(lost),
            )
            _settle(lost, False)

    def _close(self) -> None:
        """
        Write and fsync what is buffered, then close the descriptor.  A record the
        old file took only part of goes back to the pending lines, whole.
        """
        if self._fd is None and not self._pending:
            return
        try:
            self._writePending()
        except OSError as e:
            self._failedClosing(e)
            self._splitBatch()
        try:
            self._sync()
            if self._fd is not None and self.fsync.interval is None:
                self.filesystem.fsync(self._fd)
                self.fsyncs += 1
        except OSError as e:
            self._failedClosing(e)
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                self.filesystem.close(fd)
            except OSError as e:
                self._failedClosing(e)

    def _failedClosing(self, error: OSError) -> None:
        self.failedWrites += 1
        self.log.error(
            "cannot finish writing {path} before closing it: {error}; its lines are kept"
            " for the file opened next",
            path=self.path,
            error=error.strerror or str(error),
        )

    def _splitBatch(self) -> None:
        """The records of a batch wholly written count as written; the rest is pending."""
        size = 0
        whole = 0
        for line, _ in self._batch:
            if size + len(line) > self._batchOffset:
                break
            size += len(line)
            whole += 1
        records, rest = self._batch[:whole], self._batch[whole:]
        self._batch, self._batchData, self._batchOffset = [], b"", 0
        self._pending.extendleft(reversed(rest))
        if records:
            self._wrote(records)


def _settle(records: Iterable[_Record], ok: bool) -> None:
    """Tell each record's owner what became of it; one failing owner spoils nothing."""
    for _, done in records:
        if done is not None:
            try:
                done(ok)
            except Exception:
                JsonLinesFile.log.failure("reporting a line's fate failed")
