"""
C{bulk}: streaming throughput.

K connections each keep writing 64 KiB chunks while at most C{--window} bytes (256 KiB by
default) are not yet echoed, and read the echo as it comes.  The bound keeps the server's
and the kernel's buffers from hiding a slow echo; MB/s counts verified echoed bytes that
arrived in the window, in 10^6 bytes per second.
"""

from __future__ import annotations

import time

from netd.bench.job import Job, Window, sleepUntil
from netd.bench.options import DRAIN_SECONDS
from netd.bench.pattern import CHUNK
from netd.bench.tally import Tally
from netd.bench.tcp import Stream, establish, waitIdle

__all__ = ["Bulk"]


class Bulk:
    """The C{bulk} mode for one worker."""

    def __init__(self, job: Job, tally: Tally) -> None:
        self.job = job
        self.tally = tally
        self.limit = job.options.window
        self.streams: list[Stream] = []
        self.accepting = True
        self.window: Window | None = None

    async def setup(self) -> None:
        started = time.monotonic_ns()
        self.streams = await establish(self.job, self.tally, self.job.options.setupLimit)
        self.tally.setupNs = time.monotonic_ns() - started

    async def measure(self, window: Window) -> None:
        self.window = window
        for stream in self.streams:
            if not stream.dead:
                stream.echoed = self.echoed
                stream.busy = True
                self.pump(stream)
        await sleepUntil(window.end)
        self.accepting = False
        for stream in self.streams:
            self.pump(stream)
        for stream in await waitIdle(self.streams, DRAIN_SECONDS):
            stream.fail("incomplete_at_end")

    def echoed(self, stream: Stream, size: int) -> None:
        """Count what arrived in the window and refill the stream's allowance."""
        window = self.window
        if window is not None and window.contains(time.monotonic_ns()):
            self.tally.bytesWindow += size
        self.pump(stream)

    def pump(self, stream: Stream) -> None:
        """Write whole chunks while they fit under the unechoed-bytes bound."""
        if stream.dead:
            return
        if self.accepting:
            while stream.sent - stream.rcvd + CHUNK <= self.limit:
                stream.extend(CHUNK)
        elif stream.rcvd == stream.sent:
            stream.busy = False
