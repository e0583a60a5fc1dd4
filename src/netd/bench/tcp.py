"""
One verified TCP connection, and the ways the modes open them.

A L{Stream} writes the pattern (see L{netd.bench.pattern}) and checks every byte that
comes back against what it wrote, at the right stream offset; the first wrong, extra or
missing byte fails the connection with C{loadgen.c}'s error names.  What happens when an
echo completes is the mode's business: it sets L{Stream.echoed}.  Callbacks rather than
a coroutine per connection, because the request/response loop is the hot path and a
Python generator must not become the bottleneck it measures.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from typing import cast

from netd.bench.job import Job
from netd.bench.options import BenchOptions
from netd.bench.pattern import matches, streamBase, streamBytes
from netd.bench.tally import Tally, errorKind

__all__ = [
    "PING",
    "Stream",
    "StreamLost",
    "establish",
    "exchange",
    "openStream",
    "sourceAddress",
    "waitIdle",
]

PING = 8  # bytes of the liveness ping that verifies a new or idle connection
# socket.IP_BIND_ADDRESS_NO_PORT is Linux's 24; Python exposes it from 3.12 only.
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)


class StreamLost(Exception):
    """The connection failed; the failure is already counted in the tally."""


def _settle(stream: Stream, size: int) -> None:
    """The default reaction to an echo: the stream is idle once everything came back."""
    if stream.rcvd >= stream.target:
        stream.busy = False


def _ignore(stream: Stream) -> None:
    pass


class Stream(asyncio.Protocol):
    """
    A client connection whose echo is verified byte by byte.

    @ivar sent: stream bytes written; C{rcvd}: bytes echoed and verified.
    @ivar target: the offset the current request ends at; C{t0}: when it started (ns).
    @ivar busy: a request is outstanding; C{dead}: the connection failed or was dropped.
    @ivar nwin: requests completed inside the measured window.
    @ivar echoed: called with the number of new bytes after each verified read.
    @ivar lost: called once when the connection fails.
    """

    def __init__(self, base: int, tally: Tally) -> None:
        self.base = base
        self.tally = tally
        self.transport: asyncio.Transport | None = None
        self.sent = self.rcvd = self.target = self.t0 = self.nwin = 0
        self.busy = self.dead = self.closing = False
        self.echoed: Callable[[Stream, int], None] = _settle
        self.lost: Callable[[Stream], None] = _ignore

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def request(self, size: int, now: int) -> None:
        """Start a request of C{size} bytes at monotonic time C{now}."""
        self.t0 = now
        self.busy = True
        self.target = self.sent + size
        self.extend(size)

    def extend(self, size: int) -> None:
        """Write C{size} more bytes of the pattern as part of the current request."""
        assert self.transport is not None
        self.target = max(self.target, self.sent + size)
        self.transport.write(streamBytes(self.base + self.sent, size))
        self.sent += size
        self.tally.bytesSent += size

    def data_received(self, data: bytes) -> None:
        size = len(data)
        if self.rcvd + size > self.sent:
            self.fail("excess_bytes")
        elif not matches(self.base + self.rcvd, data):
            self.fail("mismatch")
        else:
            self.rcvd += size
            self.tally.bytesEchoed += size
            self.echoed(self, size)

    def connection_lost(self, exc: Exception | None) -> None:
        if not (self.dead or self.closing):
            self.fail("eof" if exc is None else errorKind(exc))

    def fail(self, kind: str) -> None:
        """Count an error of kind C{kind} and drop the connection (once)."""
        if self.dead:
            return
        self.tally.error(kind)
        self.discard()
        self.lost(self)

    def discard(self) -> None:
        """Drop the connection without counting anything (the caller counted)."""
        self.dead = True
        self.busy = False
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        """Close after a complete exchange: what the server does next is not an error."""
        self.closing = True
        self.busy = False
        if self.transport is not None:
            self.transport.close()


def sourceAddress(slot: int, srcs: int) -> str:
    """Connection number C{slot}'s source address: 127.0.0.1 .. 127.0.0.C{srcs} in turn."""
    return f"127.0.0.{1 + slot % srcs}"


async def openStream(options: BenchOptions, slot: int, stream: Stream) -> None:
    """
    Connect C{stream} to the target, from C{slot}'s source address when there are several.

    The socket is made by hand to set C{IP_BIND_ADDRESS_NO_PORT} before C{bind()}: the
    port is then chosen at C{connect()} from the whole 4-tuple space, not reserved per
    address at bind time.
    @raise OSError: the connection failed.
    """
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in options.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if family == socket.AF_INET and options.srcs > 1:
            sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            sock.bind((sourceAddress(slot, options.srcs), 0))
        await loop.sock_connect(sock, (options.host, options.port))
        await loop.create_connection(lambda: stream, sock=sock)
    except BaseException:
        if stream.transport is None:
            sock.close()
        raise


async def exchange(stream: Stream, size: int) -> None:
    """
    Send C{size} bytes and wait until all are echoed and verified.

    @raise StreamLost: the connection failed (already counted).
    """
    done = asyncio.get_running_loop().create_future()

    def echoed(stream: Stream, n: int) -> None:
        if stream.rcvd >= stream.target:
            stream.busy = False
            if not done.done():
                done.set_result(None)

    def lost(stream: Stream) -> None:
        if not done.done():
            done.set_exception(StreamLost())

    stream.echoed, stream.lost = echoed, lost
    stream.request(size, time.monotonic_ns())
    try:
        await done
    finally:
        stream.echoed, stream.lost = _settle, _ignore


async def _openPinged(job: Job, slot: int, tally: Tally) -> Stream | None:
    """One connection, verified by an echoed ping within the per-operation timeout."""
    stream = Stream(streamBase(slot), tally)
    try:
        async with asyncio.timeout(job.options.timeout):
            await openStream(job.options, slot, stream)
            await exchange(stream, PING)
    except asyncio.CancelledError:  # the establishing phase ran out of time
        tally.error("timeout")
        stream.discard()
        raise
    except StreamLost:
        return None
    except OSError as e:
        tally.failure(e)
        stream.discard()
        return None
    return stream


async def establish(job: Job, tally: Tally, limit: float) -> list[Stream]:
    """
    Open this worker's C{job.count} connections, at most C{job.conc} at once, each verified
    by a ping, so that the measurement starts with every connection accepted and served.

    Gives up after C{job.maxFail} failures or C{limit} seconds (connections still being
    opened then count as C{timeout}).  Counts C{wanted}, C{attempted} and C{established}.
    """
    opened: list[Stream] = []
    cursor = failures = 0

    async def opener() -> None:
        nonlocal cursor, failures
        while cursor < job.count and failures < job.maxFail:
            slot = job.first + cursor
            cursor += 1
            stream = await _openPinged(job, slot, tally)
            if stream is None:
                failures += 1
            else:
                opened.append(stream)

    tasks = [asyncio.ensure_future(opener()) for _ in range(min(job.conc, job.count))]
    if tasks:
        _, pending = await asyncio.wait(tasks, timeout=limit)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    tally.wanted += job.count
    tally.attempted += cursor
    tally.established += len(opened)
    return opened


async def waitIdle(streams: list[Stream], seconds: float) -> list[Stream]:
    """
    Wait up to C{seconds} for every stream's outstanding request; return the ones still
    busy (the caller decides what their failure is called).
    """
    deadline = time.monotonic() + seconds
    while True:
        busy = [s for s in streams if s.busy and not s.dead]
        if not busy or time.monotonic() >= deadline:
            return busy
        await asyncio.sleep(0.002)
