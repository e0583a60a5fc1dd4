"""
Log a recurring event at most once per key per interval, counting what was held back.

A flood of refused connections must not become a flood of log lines (and disk writes):
each peer gets one line a minute, saying how many refusals the line stands for.
"""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger

__all__ = ["ThrottledLog"]


class ThrottledLog:
    """
    @param interval: seconds between two lines for the same key.
    @param maxKeys: keys remembered at most; the oldest are forgotten first, so a flood
        from many sources costs bounded memory (a forgotten key just logs again).
    """

    def __init__(
        self, log: Logger, clock: Any, interval: float = 60.0, maxKeys: int = 4096
    ) -> None:
        self.log = log
        self.clock = clock
        self.interval = interval
        self.maxKeys = maxKeys
        self._seen: dict[Any, list[float]] = {}

    def warn(self, key: Any, format: str, **fields: Any) -> None:
        """
        Log C{format} for C{key} unless it was logged less than C{interval} ago; the line
        carries C{repeats}, how many events it stands for.
        """
        now = self.clock.seconds()
        entry = self._seen.get(key)
        if entry is not None and now - entry[0] < self.interval:
            entry[1] += 1
            return
        repeats = 1 if entry is None else int(entry[1]) + 1
        self._seen.pop(key, None)
        if len(self._seen) >= self.maxKeys:
            del self._seen[next(iter(self._seen))]
        self._seen[key] = [now, 0]
        self.log.warn(format, repeats=repeats, **fields)
