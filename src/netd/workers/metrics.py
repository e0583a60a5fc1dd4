"""
Metrics with workers: every service's counters summed over the worker processes, and
the supervisor's own (workers serving, restarts).

Each worker sends its parent a snapshot of its counters (L{netd.stats.ServiceStats},
bytes of open connections included) whenever they change, at most every
L{netd.workers.worker.REPORT_INTERVAL} seconds, and a last one when it stops.
L{WorkerTotals} writes the sums into the parent's own L{ServiceStats}: the parent never
serves a connection, so its counters are free to hold the totals, and C{/metrics} and
C{/services} show them through the very code that shows a single process's.

The totals never go back: a worker that ends leaves its last snapshot's counters
behind (what it counted after its last report is lost when it is killed), and only the
gauge of open connections drops with it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from twisted.logger import Logger

from netd.stats import ServiceStats

if TYPE_CHECKING:
    from netd.serving.daemon import ServiceRuntime

__all__ = ["WorkerTotals", "WorkersCollector", "addSnapshot", "copyStats"]


class Reporting(Protocol):
    """A worker as the totals know it: by its slot (L{netd.workers.supervisor.Worker})."""

    @property
    def slot(self) -> int: ...


class Supervising(Protocol):
    """What the collector reads from L{netd.workers.supervisor.Supervisor}."""

    @property
    def count(self) -> int: ...

    @property
    def restarts(self) -> int: ...

    def serving(self) -> list[Any]: ...


_COUNTS = ("accepted", "bytesIn", "bytesOut", "datagramsIn", "datagramsOut")
_REASONS = ("refused", "closed", "dropped")


def addSnapshot(stats: ServiceStats, snapshot: Mapping[str, Any], gauges: bool = True) -> None:
    """
    Add C{snapshot} (a L{ServiceStats.snapshot}, as a worker sends it) to C{stats}.

    @param gauges: add the open connections too (not for a worker that has ended).
    @raise ValueError: for a snapshot that is not one (a value of the wrong type).
    """
    try:
        for name in _COUNTS:
            setattr(stats, name, getattr(stats, name) + int(snapshot.get(name, 0)))
        for name in _REASONS:
            counts = getattr(stats, name)
            for reason, count in dict(snapshot.get(name, {})).items():
                counts[str(reason)] += int(count)
        durations = list(snapshot.get("durationCounts", []))
        if len(durations) == len(stats.durationCounts):
            stats.durationCounts = [
                a + int(b) for a, b in zip(stats.durationCounts, durations, strict=True)
            ]
        stats.durationSum += float(snapshot.get("durationSum", 0.0))
        if gauges:
            stats.active += int(snapshot.get("active", 0))
    except (TypeError, AttributeError) as e:
        raise ValueError(f"not a counters snapshot: {e}") from None


def copyStats(source: ServiceStats, target: ServiceStats) -> None:
    """Make C{target}'s counters those of C{source} (C{target} stays the same object)."""
    for name in (*_COUNTS, "active", "durationSum"):
        setattr(target, name, getattr(source, name))
    for name in _REASONS:
        counts = getattr(target, name)
        counts.clear()
        counts.update(getattr(source, name))
    target.durationCounts = list(source.durationCounts)


class WorkerTotals:
    """
    The workers' counters, summed per service into the parent's services.

    @param runtimes: the parent's services now (their C{guard.stats} receive the sums).
    """

    log = Logger()

    def __init__(self, runtimes: Callable[[], Iterable[ServiceRuntime]]) -> None:
        self.runtimes = runtimes
        #: The last snapshot of each running worker: service name -> snapshot.
        self.latest: dict[Reporting, dict[str, ServiceStats]] = {}
        #: What workers that have ended counted, per service.
        self.retired: dict[str, ServiceStats] = {}

    def report(self, worker: Reporting, services: Any) -> None:
        """C{worker}'s counters now: service name -> snapshot.  A malformed report is ignored."""
        try:
            parsed = {str(name): _parsed(snapshot) for name, snapshot in dict(services).items()}
        except (TypeError, ValueError) as e:
            self.log.warn(
                "ignored counters from worker {worker}: {error}", worker=worker.slot, error=e
            )
            return
        self.latest[worker] = parsed
        self.publish()

    def retire(self, worker: Reporting) -> None:
        """C{worker} has ended: keep its counters, drop its open connections."""
        services = self.latest.pop(worker, None)
        if services is None:
            return
        for name, stats in services.items():
            addSnapshot(self.retired.setdefault(name, ServiceStats()), stats.snapshot(), False)
        self.publish()

    def total(self, name: str) -> ServiceStats:
        """Service C{name}'s counters across every worker, past and present."""
        total = ServiceStats()
        retired = self.retired.get(name)
        if retired is not None:
            addSnapshot(total, retired.snapshot())
        for services in self.latest.values():
            stats = services.get(name)
            if stats is not None:
                addSnapshot(total, stats.snapshot())
        return total

    def publish(self) -> None:
        """Write the totals into the parent's services."""
        for runtime in self.runtimes():
            copyStats(self.total(runtime.name), runtime.guard.stats)


def _parsed(snapshot: Any) -> ServiceStats:
    stats = ServiceStats()
    addSnapshot(stats, snapshot)
    return stats


class WorkersCollector(Collector):
    """The supervisor's metrics: C{netd_workers} serving, C{netd_worker_restarts_total}."""

    def __init__(self, supervisor: Supervising) -> None:
        self.supervisor = supervisor

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "netd_workers",
            "Worker processes serving now.",
            value=len(self.supervisor.serving()),
        )
        yield GaugeMetricFamily(
            "netd_workers_configured",
            "Worker processes asked for (--workers).",
            value=self.supervisor.count,
        )
        yield CounterMetricFamily(
            "netd_worker_restarts",
            "Workers restarted after an unexpected exit.",
            value=self.supervisor.restarts,
        )
