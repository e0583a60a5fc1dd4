"""
C{rr}: request/response in a closed loop.

Each of C connections sends S bytes, waits for all S back, and sends again at once.  All
connections are opened and verified before the clock starts, so the window measures the
server serving, not accepting.  Every request completed inside the window gives one
latency sample; a connection that completed none is C{stalled_conns} (an error: a server
that starves a client is not fast).
"""

from __future__ import annotations

import time

from netd.bench.job import Job, Window, sleepUntil
from netd.bench.options import DRAIN_SECONDS
from netd.bench.tally import Tally
from netd.bench.tcp import Stream, establish, waitIdle

__all__ = ["ClosedLoop", "RequestResponse"]


class ClosedLoop:
    """
    Drives streams in request/response: the next request leaves as soon as the previous
    echo is complete, until L{stop}.  Shared by C{rr} and C{idle}'s active connection.
    """

    def __init__(self, size: int, window: Window, tally: Tally) -> None:
        self.size = size
        self.window = window
        self.tally = tally
        self.accepting = True

    def start(self, stream: Stream) -> None:
        """Put C{stream} in the loop with its first request."""
        stream.echoed = self.echoed
        stream.request(self.size, time.monotonic_ns())

    def echoed(self, stream: Stream, size: int) -> None:
        """A verified read: when the request is complete, record it and send the next."""
        if stream.rcvd < stream.target:
            return
        t = time.monotonic_ns()
        window = self.window
        if window.warm <= t < window.end:
            self.tally.latency.append(t - stream.t0)
            self.tally.done += 1
            stream.nwin += 1
        if self.accepting:
            stream.request(self.size, t)
        else:
            stream.busy = False

    async def stop(self, streams: list[Stream]) -> None:
        """
        Send no more requests, wait (bounded) for the outstanding echoes; one still missing
        then is C{incomplete_at_end}.
        """
        self.accepting = False
        for stream in await waitIdle(streams, DRAIN_SECONDS):
            stream.fail("incomplete_at_end")


class EstablishedMode:
    """A mode that opens C{job.count} verified connections first (rr and idle)."""

    def __init__(self, job: Job, tally: Tally) -> None:
        self.job = job
        self.tally = tally
        self.streams: list[Stream] = []

    async def setup(self) -> None:
        started = time.monotonic_ns()
        self.streams = await establish(self.job, self.tally, self.job.options.setupLimit)
        self.tally.setupNs = time.monotonic_ns() - started


class RequestResponse(EstablishedMode):
    """The C{rr} mode for one worker: C{job.count} connections in a closed loop."""

    async def measure(self, window: Window) -> None:
        loop = ClosedLoop(self.job.options.size, window, self.tally)
        for stream in self.streams:
            if not stream.dead:
                loop.start(stream)
        await sleepUntil(window.end)
        await loop.stop(self.streams)
        self.tally.error("stalled_conns", sum(not s.dead and s.nwin == 0 for s in self.streams))
