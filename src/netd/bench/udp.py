"""
C{udp}: datagram echo.

One connected socket per worker sends S-byte datagrams, each carrying its sequence number
and the pattern, with at most W unanswered.  A datagram not echoed within the loss timeout
(C{--timeout}, 200 ms) is lost and frees its place in the window; an echo arriving later
is counted as C{late}, a second echo of one datagram as C{unexpected_reply}.  The
bookkeeping is C{loadgen.c}'s ring, indexed by sequence number: the send time while
outstanding, L{LOST} once timed out, 0 once echoed.
"""

from __future__ import annotations

import asyncio
import socket
import time
from array import array

from netd.bench.job import Job, Window, sleepUntil
from netd.bench.pattern import datagram
from netd.bench.tally import Tally, errorKind

__all__ = ["LOST", "RING", "Datagrams", "Udp"]

RING = 1 << 20
LOST = 1
TICK = 0.005  # seconds between loss checks when nothing arrives
RCVBUF = 4 << 20


class Datagrams(asyncio.DatagramProtocol):
    """Hands every echoed datagram and socket error to the L{Udp} mode."""

    def __init__(self, owner: Udp) -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr: object) -> None:
        self.owner.received(data)

    def error_received(self, exc: Exception) -> None:
        self.owner.tally.error(errorKind(exc))


class Udp:
    """The C{udp} mode for one worker: C{job.count} datagrams in flight."""

    def __init__(self, job: Job, tally: Tally) -> None:
        self.job = job
        self.tally = tally
        self.size = job.options.size
        self.timeoutNs = int(job.options.timeout * 1e9)
        self.ring = array("Q", bytes(8 * RING))
        self.seq = self.lo = self.out = 0
        self.sending = False
        self.window: Window | None = None
        self.transport: asyncio.DatagramTransport | None = None

    async def setup(self) -> None:
        options = self.job.options
        family = socket.AF_INET6 if ":" in options.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        sock.connect((options.host, options.port))
        loop = asyncio.get_running_loop()
        self.transport, _ = await loop.create_datagram_endpoint(lambda: Datagrams(self), sock=sock)

    async def measure(self, window: Window) -> None:
        self.window = window
        self.sending = True
        self.tick()
        await sleepUntil(window.end)
        self.sending = False
        drainEnd = time.monotonic_ns() + self.timeoutNs + 1_000_000
        while self.out and time.monotonic_ns() < drainEnd:
            await asyncio.sleep(0.001)
            self.expire(time.monotonic_ns())
        self.tally.lost += self.out  # still outstanding after the drain
        self.out = 0
        self.tally.sent = self.seq
        self.tally.bytesSent = self.seq * self.size
        self.tally.bytesEchoed = self.tally.echoed * self.size
        if self.transport is not None:
            self.transport.close()

    def tick(self) -> None:
        """Time out old datagrams and refill the window, also when nothing comes back."""
        if not self.sending:
            return
        now = time.monotonic_ns()
        self.expire(now)
        self.fill(now)
        asyncio.get_running_loop().call_later(TICK, self.tick)

    def fill(self, now: int) -> None:
        """Send datagrams until C{job.count} are unanswered."""
        assert self.transport is not None
        while self.sending and self.out < self.job.count:
            seq = self.seq
            self.transport.sendto(datagram(seq, self.size))
            self.ring[seq & (RING - 1)] = now
            self.seq = seq + 1
            self.out += 1

    def expire(self, now: int) -> None:
        """Mark the oldest outstanding datagrams older than the loss timeout as lost."""
        ring, mask = self.ring, RING - 1
        while self.lo < self.seq:
            sentAt = ring[self.lo & mask]
            if sentAt > LOST:
                if now - sentAt <= self.timeoutNs:
                    break
                ring[self.lo & mask] = LOST
                self.out -= 1
                self.tally.lost += 1
            self.lo += 1

    def received(self, data: bytes) -> None:
        """Check one echoed datagram against what was sent, then refill the window."""
        now = time.monotonic_ns()
        tally = self.tally
        if len(data) != self.size:
            tally.error("bad_size")
            return
        seq = int.from_bytes(data[:8], "little")
        if seq >= self.seq or self.seq - seq >= RING:
            tally.error("unexpected_reply")
            return
        if data != datagram(seq, self.size):
            tally.error("mismatch")
            return
        slot = seq & (RING - 1)
        sentAt = self.ring[slot]
        if sentAt == LOST:
            tally.late += 1
            return
        if sentAt == 0:
            tally.error("unexpected_reply")  # a duplicate
            return
        window = self.window
        if window is not None and window.contains(now):
            tally.latency.append(now - sentAt)
            tally.done += 1
        self.ring[slot] = 0
        self.out -= 1
        tally.echoed += 1
        self.expire(now)
        self.fill(now)
