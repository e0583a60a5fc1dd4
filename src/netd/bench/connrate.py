"""
C{connrate}: connections per second.

C slots each connect, send S bytes, read them back, close, and start over.  Connections
are spread over source addresses (C{--srcs}, 8 by default): from one address, the ~28k
ephemeral ports fill with TIME_WAIT and C{connect()} itself becomes what is measured.
Two latencies are kept: C{lat_us} from the request to its echo, which is what
C{loadgen.c}'s C{lat_us} times in this mode, and C{exchange_lat_us} from C{connect()} to
the last echoed byte, the whole exchange a client sees.
"""

from __future__ import annotations

import asyncio
import time

from netd.bench.job import Job, Window, sleepUntil
from netd.bench.options import DRAIN_SECONDS
from netd.bench.pattern import streamBase
from netd.bench.tally import Tally
from netd.bench.tcp import Stream, StreamLost, exchange, openStream

__all__ = ["ConnectionRate"]


class ConnectionRate:
    """The C{connrate} mode for one worker: C{job.count} slots."""

    def __init__(self, job: Job, tally: Tally) -> None:
        self.job = job
        self.tally = tally
        self.accepting = True

    async def setup(self) -> None:
        """Nothing: every connection is part of the measurement."""

    async def measure(self, window: Window) -> None:
        slots = [
            asyncio.ensure_future(self.slot(self.job.first + i, window))
            for i in range(self.job.count)
        ]
        await sleepUntil(window.end)
        self.accepting = False
        if slots:
            _, pending = await asyncio.wait(slots, timeout=DRAIN_SECONDS)
            for task in pending:
                task.cancel()
            await asyncio.gather(*slots, return_exceptions=True)

    async def slot(self, slot: int, window: Window) -> None:
        """One slot: exchanges back to back until the window closes."""
        while self.accepting:
            if not await self.once(slot, window):
                await asyncio.sleep(0)  # a refused connect() may fail without yielding

    async def once(self, slot: int, window: Window) -> bool:
        """One connect/send/receive/close; whether it completed."""
        options = self.job.options
        # distinct pattern offsets for successive connections of all workers
        stream = Stream(streamBase(self.tally.opened * options.procs + self.job.index), self.tally)
        self.tally.opened += 1
        connecting = time.monotonic_ns()
        try:
            async with asyncio.timeout(options.timeout):
                await openStream(options, slot, stream)
                await exchange(stream, options.size)
        except asyncio.CancelledError:  # still running when the drain ran out
            self.tally.error("incomplete_at_end")
            stream.discard()
            raise
        except StreamLost:
            return False
        except OSError as e:
            self.tally.failure(e)
            stream.discard()
            return False
        t = time.monotonic_ns()
        stream.close()
        if window.contains(t):
            self.tally.done += 1
            self.tally.latency.append(t - stream.t0)
            self.tally.exchange.append(t - connecting)
        return True
