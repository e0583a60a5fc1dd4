"""
What a forward service's relays have done: plain integers bumped on the hot path and
read by the metrics collector, as L{netd.stats.ServiceStats} is.
"""

from __future__ import annotations

from collections import Counter

__all__ = ["ForwardStats"]


class ForwardStats:
    """
    @ivar forwarded: connections relayed to the backend (its connect succeeded).
    @ivar failed: connects that failed, by reason (C{refused}, C{timeout},
        C{unreachable}, C{error}).
    @ivar toBackend: bytes relayed from clients to the backend (PROXY headers aside).
    @ivar toClient: bytes relayed from the backend to clients.
    @ivar connecting: connects in progress now.
    """

    def __init__(self) -> None:
        self.forwarded = 0
        self.failed: Counter[str] = Counter()
        self.toBackend = 0
        self.toClient = 0
        self.connecting = 0

    def add(self, other: ForwardStats) -> None:
        """Count C{other}'s figures in these too (to sum configurations across reloads)."""
        self.forwarded += other.forwarded
        self.failed.update(other.failed)
        self.toBackend += other.toBackend
        self.toClient += other.toClient
        self.connecting += other.connecting

    def snapshot(self) -> dict[str, object]:
        """The counters as plain data (for tests and status pages)."""
        return {
            "forwarded": self.forwarded,
            "failed": dict(self.failed),
            "toBackend": self.toBackend,
            "toClient": self.toClient,
            "connecting": self.connecting,
        }
