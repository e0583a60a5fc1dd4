"""
Per-service counters: plain integers bumped on the hot path, read by whoever reports.

No locks and no per-byte work: the reactor is single-threaded, and a counter is one
attribute increment.  Refusals and drops are counted by reason so an operator can tell
a deny list at work from a limit being hit.
"""

from __future__ import annotations

from collections import Counter

__all__ = ["ServiceStats"]


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
        }
