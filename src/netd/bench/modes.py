"""
The modes by name, and what a worker needs of one.

A mode sets up (connections opened and verified, untimed), then measures one window;
both phases run inside the worker's event loop and count into the worker's L{Tally}.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from netd.bench.bulk import Bulk
from netd.bench.connrate import ConnectionRate
from netd.bench.idle import Idle
from netd.bench.job import Job, Window
from netd.bench.rr import RequestResponse
from netd.bench.tally import Tally
from netd.bench.udp import Udp

__all__ = ["MODE_CLASSES", "Mode", "makeMode"]


class Mode(Protocol):
    """One worker's share of one mode."""

    async def setup(self) -> None:
        """Prepare before the clock starts (the parent waits for every worker)."""

    async def measure(self, window: Window) -> None:
        """Load from C{window.start}, stop at C{window.end}, drain, check."""


MODE_CLASSES: dict[str, Callable[[Job, Tally], Mode]] = {
    "rr": RequestResponse,
    "bulk": Bulk,
    "connrate": ConnectionRate,
    "udp": Udp,
    "idle": Idle,
}


def makeMode(job: Job, tally: Tally) -> Mode:
    """The mode C{job.options.mode} for C{job}, counting into C{tally}."""
    return MODE_CLASSES[job.options.mode](job, tally)
