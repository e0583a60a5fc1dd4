"""
The line log's settings as values: when its file is fsynced, how much it may buffer.

Apart from the file itself (L{netd.logs.output}) so that declaring the C{linelogger}
plugin, which happens on every plugin scan, reads these without importing the file code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["ALWAYS", "DEFAULT_FSYNC", "DEFAULT_MAX_BUFFER", "NEVER", "FsyncPolicy", "fsyncPolicy"]

#: Bytes of lines held in memory (not yet durable) before readers are paused.
DEFAULT_MAX_BUFFER = 16 * 1024 * 1024


@dataclass(frozen=True)
class FsyncPolicy:
    """
    When the file is fsynced.

    @ivar interval: seconds between two fsyncs at most; C{0} for every batch
        (C{always}), C{None} for C{never}.
    """

    interval: float | None

    def __str__(self) -> str:
        if self.interval is None:
            return "never"
        if self.interval == 0:
            return "always"
        return f"interval={round(self.interval * 1000)}"

    # What --help shows as the default, and what a status page shows.
    __repr__ = __str__


ALWAYS = FsyncPolicy(0.0)
NEVER = FsyncPolicy(None)
DEFAULT_FSYNC = FsyncPolicy(1.0)
_INTERVAL = re.compile(r"interval=(\d+)")


def fsyncPolicy(value: object) -> FsyncPolicy:
    """
    Coerce C{always}, C{never} or C{interval=MS} (MS a whole number > 0).

    @raise ValueError: with a message fit for the user.
    """
    if isinstance(value, FsyncPolicy):
        return value
    if isinstance(value, str):
        if value == "always":
            return ALWAYS
        if value == "never":
            return NEVER
        match = _INTERVAL.fullmatch(value)
        if match and int(match.group(1)) > 0:
            return FsyncPolicy(int(match.group(1)) / 1000)
    raise ValueError(f"expected always, never or interval=MS (MS > 0), got {value!r}")
