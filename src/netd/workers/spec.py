"""
What a worker is told by its parent, in the environment variable L{WORKER_VARIABLE}:
its slot, the reactor, and which inherited descriptor is which.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

__all__ = ["WORKER_VARIABLE", "WorkerSpec"]

#: The environment variable that makes a process a worker, and describes its descriptors.
WORKER_VARIABLE = "NETD_WORKER"


@dataclass(frozen=True)
class WorkerSpec:
    """
    One worker's start.

    @ivar slot: the worker's number, 1 to C{count}.
    @ivar count: how many workers share the listeners (the UDP limits are divided by it).
    @ivar reactor: the parent's reactor name (C{twistd -r} is not on the netd command line).
    @ivar report: the descriptor the worker writes its reports to.
    @ivar listeners: C{(service, description, descriptor)} for every listener the parent
        holds: the worker serves the socket it inherited as C{descriptor}.
    @ivar config: the descriptor to read the config file's text from, as the parent
        read it (C{None} for a command-line configuration).
    """

    slot: int
    count: int
    reactor: str
    report: int
    listeners: tuple[tuple[str, str, int], ...] = ()
    config: int | None = None

    def toJSON(self) -> str:
        return json.dumps(
            {
                "slot": self.slot,
                "count": self.count,
                "reactor": self.reactor,
                "report": self.report,
                "listeners": [list(listener) for listener in self.listeners],
                "config": self.config,
            },
            separators=(",", ":"),
        )

    @classmethod
    def fromJSON(cls, text: str) -> WorkerSpec:
        """
        @raise ValueError: if C{text} does not describe a worker.
        """
        try:
            data = json.loads(text)
            listeners = tuple(
                (str(service), str(description), int(fd))
                for service, description, fd in data["listeners"]
            )
            config = data["config"]
            return cls(
                int(data["slot"]),
                int(data["count"]),
                str(data["reactor"]),
                int(data["report"]),
                listeners,
                None if config is None else int(config),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"bad {WORKER_VARIABLE}: {e}") from None
