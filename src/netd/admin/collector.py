"""
The daemon's counters as Prometheus metric families, read when scraped.

The hot path only bumps plain integers (L{netd.stats.ServiceStats}); this collector turns
them into metric families when C{/metrics} is fetched, on the reactor thread, so serving
costs nothing extra and needs no lock.  Bytes of open connections are added to those of
finished ones, so a long stream shows up before it ends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from itertools import accumulate
from typing import TYPE_CHECKING, Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from netd.stats import DURATION_BUCKETS, ServiceStats

if TYPE_CHECKING:
    from netd.serving.daemon import Daemon, ServiceRuntime

__all__ = ["DaemonCollector", "liveBytes"]

PREFIX = "netd_"


class DaemonCollector(Collector):
    """
    A C{prometheus_client} collector of one daemon's services; every family carries a
    C{service} label.  Register it in a L{prometheus_client.CollectorRegistry}.
    """

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    def collect(self) -> Iterator[Metric]:
        runtimes = self.daemon.runtimes()
        yield _perService(
            CounterMetricFamily,
            "connections_accepted",
            "Connections admitted.",
            runtimes,
            lambda r: r.guard.stats.accepted,
        )
        yield _perService(
            GaugeMetricFamily,
            "connections_active",
            "Connections open now.",
            runtimes,
            lambda r: r.guard.stats.active,
        )
        yield _byReason(
            "connections_refused", "Connections refused, by reason.", runtimes, lambda s: s.refused
        )
        yield _byReason(
            "connections_closed", "Connections finished, by why.", runtimes, lambda s: s.closed
        )
        yield _perService(
            CounterMetricFamily,
            "received_bytes",
            "Bytes received, open connections included.",
            runtimes,
            lambda r: r.guard.stats.bytesIn + liveBytes(r)[0],
        )
        yield _perService(
            CounterMetricFamily,
            "sent_bytes",
            "Bytes sent, open connections included.",
            runtimes,
            lambda r: r.guard.stats.bytesOut + liveBytes(r)[1],
        )
        yield _perService(
            CounterMetricFamily,
            "datagrams_received",
            "Datagrams received.",
            runtimes,
            lambda r: r.guard.stats.datagramsIn,
        )
        yield _perService(
            CounterMetricFamily,
            "datagrams_sent",
            "Datagrams sent.",
            runtimes,
            lambda r: r.guard.stats.datagramsOut,
        )
        yield _byReason(
            "datagrams_dropped", "Datagrams dropped, by reason.", runtimes, lambda s: s.dropped
        )
        yield _durations(runtimes)
        yield _listenersUp(runtimes)
        yield from _lineLogs(runtimes)
        yield from _forwards(runtimes)
        yield CounterMetricFamily(
            PREFIX + "config_reloads", "Configuration reloads applied.", value=self.daemon.reloads
        )
        yield CounterMetricFamily(
            PREFIX + "config_reload_failures",
            "Configuration reloads rejected (the running one stayed).",
            value=self.daemon.reloadFailures,
        )


#: The line logger's output counters: (counter name, metric, kind, help).
_LINELOG = (
    ("written", "linelog_written_lines", CounterMetricFamily, "Lines written to the output file."),
    ("fsyncs", "linelog_fsyncs", CounterMetricFamily, "fsync calls on the output file."),
    (
        "failedWrites",
        "linelog_failed_writes",
        CounterMetricFamily,
        "Failed open/write/fsync/close calls.",
    ),
    (
        "dropped",
        "linelog_dropped_lines",
        CounterMetricFamily,
        "Lines not accepted (buffer full or file closed).",
    ),
    ("bufferedLines", "linelog_buffered_lines", GaugeMetricFamily, "Lines waiting to be written."),
    ("bufferedBytes", "linelog_buffered_bytes", GaugeMetricFamily, "Bytes waiting to be written."),
)


def _lineLogs(runtimes: list[ServiceRuntime]) -> Iterator[Metric]:
    """The output files' counters, per service (summed over files kept across reloads)."""
    from netd.logs.output import JsonLinesFile

    files = {r.config.name: [s for s in _tree(r) if isinstance(s, JsonLinesFile)] for r in runtimes}
    if not any(files.values()):
        return
    for counter, name, kind, documentation in _LINELOG:
        family = kind(PREFIX + name, documentation, labels=["service"])
        for service, outputs in files.items():
            if outputs:
                family.add_metric([service], sum(o.counters()[counter] for o in outputs))
        yield family


def _forwards(runtimes: list[ServiceRuntime]) -> Iterator[Metric]:
    """
    The relays' counters of forward services (summed over the configurations a reload
    replaced, whose counters stay in the service tree).
    """
    from netd.forward.connector import FAILURE_REASONS
    from netd.forward.service import totalStats

    found = [(r.config.name, totalStats(r)) for r in runtimes]
    stats = [(service, total) for service, total in found if total is not None]
    if not stats:
        return
    forwarded = CounterMetricFamily(
        PREFIX + "forward_connections",
        "Connections relayed to the backend (its connect succeeded).",
        labels=["service"],
    )
    failed = CounterMetricFamily(
        PREFIX + "forward_connect_failures",
        "Backend connects that failed, by reason.",
        labels=["service", "reason"],
    )
    relayed = CounterMetricFamily(
        PREFIX + "forward_bytes",
        "Bytes relayed, by direction (to-backend, to-client).",
        labels=["service", "direction"],
    )
    connecting = GaugeMetricFamily(
        PREFIX + "forward_connecting", "Backend connects in progress.", labels=["service"]
    )
    for service, total in stats:
        forwarded.add_metric([service], total.forwarded)
        for reason in sorted({*FAILURE_REASONS, *total.failed}):
            failed.add_metric([service, reason], total.failed[reason])
        relayed.add_metric([service, "to-backend"], total.toBackend)
        relayed.add_metric([service, "to-client"], total.toClient)
        connecting.add_metric([service], total.connecting)
    yield from (forwarded, failed, relayed, connecting)


def _tree(service: Any) -> Iterator[Any]:
    yield service
    for child in getattr(service, "services", ()):
        yield from _tree(child)


def liveBytes(runtime: ServiceRuntime) -> tuple[int, int]:
    """
    Bytes in and out of the open, admitted connections: those whose bytes join the
    service's totals when they end (counting any other would make the counter go back).
    """
    received = sent = 0
    for connection in runtime.guard.connections:
        if connection.peer is not None:
            bytesIn, bytesOut = _traffic(connection)
            received += bytesIn
            sent += bytesOut
    return received, sent


def _traffic(connection: Any) -> tuple[int, int]:
    """A connection's bytes so far, wherever it counts them (itself, or its transport)."""
    traffic = getattr(connection, "traffic", None)
    return traffic() if traffic is not None else (connection.bytesIn, connection.bytesOut)


def _perService(
    kind: Callable[..., Metric],
    name: str,
    documentation: str,
    runtimes: list[ServiceRuntime],
    value: Callable[[ServiceRuntime], float],
) -> Metric:
    family = kind(PREFIX + name, documentation, labels=["service"])
    for runtime in runtimes:
        family.add_metric([runtime.config.name], value(runtime))  # type: ignore[attr-defined]
    return family


def _byReason(
    name: str,
    documentation: str,
    runtimes: list[ServiceRuntime],
    counts: Callable[[ServiceStats], Mapping[str, int]],
) -> Metric:
    family = CounterMetricFamily(PREFIX + name, documentation, labels=["service", "reason"])
    for runtime in runtimes:
        for reason, count in sorted(counts(runtime.guard.stats).items()):
            family.add_metric([runtime.config.name, reason], count)
    return family


def _durations(runtimes: list[ServiceRuntime]) -> Metric:
    """The duration histogram: ServiceStats keeps per-bucket counts, Prometheus wants them cumulative."""
    family = HistogramMetricFamily(
        PREFIX + "connection_duration_seconds",
        "How long finished connections lasted.",
        labels=["service"],
    )
    for runtime in runtimes:
        stats = runtime.guard.stats
        cumulative = list(accumulate(stats.durationCounts))  # the last: above every bound
        buckets = [
            (floatToGoString(b), float(n))
            for b, n in zip(DURATION_BUCKETS, cumulative, strict=False)
        ]
        buckets.append(("+Inf", float(cumulative[-1])))
        family.add_metric([runtime.config.name], buckets, stats.durationSum)
    return family


def _listenersUp(runtimes: list[ServiceRuntime]) -> Metric:
    """1 for each bound listener, 0 for one configured but not bound (or failed on reload)."""
    family = GaugeMetricFamily(
        PREFIX + "listener_up", "Whether a listener is bound.", labels=["service", "listener"]
    )
    for runtime in runtimes:
        for spec in runtime.config.listen:
            listener = runtime.listeners.get(spec.description)
            up = listener is not None and listener.port is not None
            family.add_metric([runtime.config.name, spec.description], 1 if up else 0)
    return family
