"""
Which asyncio event loop each worker runs.

uvloop (libuv) does the same work in fewer CPU cycles than the standard selector loop,
which matters because a Python load generator must not become the bottleneck; it is
optional, so the choice is a pure function of what was asked and what is installed.
"""

from __future__ import annotations

import asyncio
from importlib.util import find_spec

__all__ = ["LOOPS", "chooseLoopName", "newEventLoop", "uvloopAvailable"]

LOOPS = ("asyncio", "uvloop")


def uvloopAvailable() -> bool:
    """Whether C{uvloop} can be imported (without importing it)."""
    return find_spec("uvloop") is not None


def chooseLoopName(requested: str | None, haveUvloop: bool) -> str:
    """
    The loop to run: the one requested, else uvloop when installed, else asyncio.

    @raise LookupError: uvloop was requested but is not installed.
    """
    if requested == "uvloop" and not haveUvloop:
        raise LookupError("--loop uvloop: uvloop is not installed (pip install uvloop)")
    return requested or ("uvloop" if haveUvloop else "asyncio")


def newEventLoop(name: str) -> asyncio.AbstractEventLoop:
    """A new event loop of kind C{name} (see L{LOOPS})."""
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()
