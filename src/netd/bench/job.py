"""
How a run is split between worker processes, and the measured window they share.

Each worker gets a contiguous share of the connections (or, for UDP, of the datagrams in
flight), numbered globally so that source addresses and pattern offsets are the same
whatever the number of workers.  The parent picks one wall-clock start time after every
worker has set up; each worker converts it to its own monotonic clock, so all windows open
at the same instant and latencies are still measured on a clock that never jumps.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from netd.bench.options import BenchOptions

__all__ = ["Job", "Window", "share", "sleepUntil", "splitJobs"]


@dataclass(frozen=True)
class Job:
    """
    One worker's part of a run.

    @ivar first: global number of this worker's first connection (or slot).
    @ivar count: connections (rr, bulk, connrate slots, idle connections) or, for udp,
        datagrams in flight.
    @ivar active: idle mode: this worker also runs the one active connection.
    """

    options: BenchOptions
    index: int
    first: int
    count: int
    active: bool
    conc: int
    maxFail: int


def share(total: int, parts: int, index: int) -> int:
    """Part C{index} of C{total} split as evenly as possible into C{parts} parts."""
    return total // parts + (index < total % parts)


def splitJobs(options: BenchOptions) -> list[Job]:
    """One L{Job} per worker process; limits on establishing are split too."""
    total = {"udp": options.window, "idle": options.idle}.get(options.mode, options.conns)
    procs = options.procs
    jobs, first = [], 0
    for index in range(procs):
        count = share(total, procs, index)
        jobs.append(
            Job(
                options=options,
                index=index,
                first=first,
                count=count,
                active=index == 0,
                conc=max(1, share(options.conc, procs, index)),
                maxFail=max(1, share(options.maxFail, procs, index)),
            )
        )
        first += count
    return jobs


@dataclass(frozen=True)
class Window:
    """
    Load starts at C{start}; completions are measured in [C{warm}, C{end}).

    All three are C{time.monotonic_ns()} values of the worker's clock.
    """

    start: int
    warm: int
    end: int

    @classmethod
    def fromWallClock(cls, startWallNs: int, warmup: float, duration: float) -> Window:
        """The window opening at wall-clock C{startWallNs}, on this process's monotonic clock."""
        start = time.monotonic_ns() + (startWallNs - time.time_ns())
        warm = start + int(warmup * 1e9)
        return cls(start=start, warm=warm, end=warm + int(duration * 1e9))

    def contains(self, t: int) -> bool:
        """Whether a completion at monotonic time C{t} is measured."""
        return self.warm <= t < self.end


async def sleepUntil(t: int) -> None:
    """Sleep until monotonic time C{t} (ns), or not at all when it has passed."""
    delay = (t - time.monotonic_ns()) / 1e9
    if delay > 0:
        await asyncio.sleep(delay)
