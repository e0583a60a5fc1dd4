"""
C{idle}: N idle connections held while one more is measured.

The N connections are opened 32 at a time, each verified by a ping (giving up after 64
failures), so the question "can the server hold N?" has a plain answer: C{established},
C{failed}, C{not_attempted}, with errno counts.  Then one more connection does C{rr} for
the window while the N sit idle, which shows what holding them costs an active client;
last, every idle connection is pinged again: C{alive_after}.
"""

from __future__ import annotations

import asyncio
import time

from netd.bench.job import Window, sleepUntil
from netd.bench.pattern import streamBase
from netd.bench.rr import ClosedLoop, EstablishedMode
from netd.bench.tcp import PING, Stream, openStream, waitIdle

__all__ = ["Idle"]


class Idle(EstablishedMode):
    """The C{idle} mode for one worker: C{job.count} idle connections, and the active one
    if C{job.active}."""

    async def measure(self, window: Window) -> None:
        if self.job.active:
            await self.active(window)
        else:
            await sleepUntil(window.end)
        await self.pingAll()

    async def active(self, window: Window) -> None:
        """The one connection doing request/response while the others sit idle."""
        options = self.job.options
        slot = options.idle  # after the N idle ones, as in loadgen.c
        stream = Stream(streamBase(slot), self.tally)
        loop = ClosedLoop(options.size, window, self.tally)
        try:
            async with asyncio.timeout(options.timeout):
                await openStream(options, slot, stream)
        except OSError as e:
            self.tally.failure(e)
            stream.discard()
        else:
            loop.start(stream)
        await sleepUntil(window.end)
        await loop.stop([stream])
        self.tally.error("stalled_conns", int(stream.nwin == 0))

    async def pingAll(self) -> None:
        """Ping every idle connection at once: are they all still served?"""
        now = time.monotonic_ns()
        live = [s for s in self.streams if not s.dead]
        for stream in live:
            stream.request(PING, now)
        for stream in await waitIdle(live, self.job.options.timeout):
            stream.fail("timeout")
        self.tally.alive += sum(not s.dead and s.rcvd == s.sent for s in live)
