"""
Per-service counters: plain integers bumped on the hot path, read by whoever reports.

No locks and no per-byte work: the reactor is single-threaded, and a counter is one
attribute increment.  Refusals and drops are counted by reason so an operator can tell
a deny list at work from a limit being hit.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter

__all__ = ["DURATION_BUCKETS", "ServiceStats"]

#: Upper bounds (seconds) of the connection duration histogram: from a probe's
#: milliseconds to an hour-long stream.
DURATION_BUCKETS = (0.001, 0.005, 0.025, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0, 3600.0)


class ServiceStats:
    """
    What one service has done since the daemon started (it survives reloads).

    @ivar refused: connections refused, by reason (C{denied}, C{max-connections},
        C{max-per-source}, C{rate}, C{proxy}...).
    @ivar closed: finished connections, by why they ended.
    @ivar dropped: datagrams dropped, by reason (C{source-port}, C{source-address},
        C{denied}, C{rate}, C{budget}).
    """

    def __init__(self) -> None:
        self.accepted = 0
        self.active = 0
        self.refused: Counter[str] = Counter()
        self.closed: Counter[str] = Counter()
        self.bytesIn = 0
        self.bytesOut = 0
        self.datagramsIn = 0
        self.datagramsOut = 0
        self.dropped: Counter[str] = Counter()
        #: Finished connections per duration bucket (the last counts those above all bounds).
        self.durationCounts = [0] * (len(DURATION_BUCKETS) + 1)
        self.durationSum = 0.0

    def observeDuration(self, seconds: float) -> None:
        """Count a finished connection's duration (once per connection, not per byte)."""
        self.durationCounts[bisect_left(DURATION_BUCKETS, seconds)] += 1
        self.durationSum += seconds

    def snapshot(self) -> dict[str, object]:
        """The counters as plain data (for tests, status pages and metrics)."""
        return {
            "accepted": self.accepted,
            "active": self.active,
            "refused": dict(self.refused),
            "closed": dict(self.closed),
            "bytesIn": self.bytesIn,
            "bytesOut": self.bytesOut,
            "datagramsIn": self.datagramsIn,
            "datagramsOut": self.datagramsOut,
            "dropped": dict(self.dropped),
            "durationCounts": list(self.durationCounts),
            "durationSum": self.durationSum,
        }
