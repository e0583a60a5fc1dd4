"""
What the admin metrics cost the hot path: echo round trips through netd's real
connection path (L{GuardedFactory} around the echo protocol, admission, accounting, the
closing log line and the duration histogram) on in-memory transports, without and with
an L{AdminService} whose collector is registered, and registered and scraped.

A measurement, not a test: run it and read the ratio.

    .venv/bin/python benchmarks/metrics_overhead.py [--round-trips N] [--scrape-every K]

Each round trip is one connection: connect, send a payload, read the echo, close.  The
variants alternate for C{--repeats} rounds and the fastest round of each counts
(the least disturbed by the rest of the machine).  "scraped" scrapes C{/metrics}'s registry
every C{--scrape-every} round trips, far more often than any Prometheus would (one
scrape per 15 s), so its scrape cost is an upper bound; it is also timed on its own.
"""

from __future__ import annotations

import argparse
import gc
import time
from typing import Any

from prometheus_client import generate_latest
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure

from netd.admin import AdminService
from netd.admission.guard import GuardedFactory
from netd.config.model import DaemonConfig, ServiceConfig
from netd.config.policy import buildPolicy
from netd.listen.endpoint import parseListen
from netd.registry import Registry
from netd.serving.daemon import Daemon

PEER = IPv4Address("TCP", "192.0.2.7", 40000)
PAYLOAD = b"x" * 64
DONE = Failure(ConnectionDone())
LABELS = {
    "without": "without admin:",
    "registered": "admin collector registered:",
    "scraped": "registered and scraped:",
}


def buildDaemon() -> Daemon:
    """One echo service, its rate limits off so one peer can connect as often as it likes."""
    echo = Registry.discover().lookup("echo")
    service = ServiceConfig(
        "echo",
        echo,
        (parseListen("tcp:7:interface=127.0.0.1"),),
        policy=buildPolicy({"rate": 0, "max-per-source": 0, "max-connections": 0}),
    )
    return Daemon(DaemonConfig((service,)), MemoryReactorClock(), stderr=None)


def roundTrips(factory: GuardedFactory, count: int, scrape: Any, every: int) -> float:
    """C{count} echo round trips, C{scrape()} every C{every}; the seconds they took."""
    start = time.perf_counter()
    for i in range(count):
        protocol = factory.buildProtocol(PEER)
        transport = StringTransport(peerAddress=PEER)
        protocol.makeConnection(transport)
        protocol.dataReceived(PAYLOAD)
        if transport.value() != PAYLOAD:
            raise AssertionError("echo did not echo")
        protocol.connectionLost(DONE)
        if scrape is not None and i % every == 0:
            scrape()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--round-trips", type=int, default=50_000)
    parser.add_argument("--scrape-every", type=int, default=1_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    without = buildDaemon()
    withAdmin = buildDaemon()
    admin = AdminService(withAdmin, "tcp:0:interface=127.0.0.1", withAdmin.reactor)

    def scrape() -> None:
        generate_latest(admin.registry)

    variants = {
        "without": (without, None),
        "registered": (withAdmin, None),
        "scraped": (withAdmin, scrape),
    }
    best = {name: float("inf") for name in variants}
    order = list(variants)
    gc.disable()
    try:
        for _ in range(args.repeats):
            order.reverse()  # neither variant always runs first
            for name in order:
                daemon, scraper = variants[name]
                [runtime] = daemon.runtimes()
                factory = GuardedFactory(runtime.guard, runtime.served.stream)
                elapsed = roundTrips(factory, args.round_trips, scraper, args.scrape_every)
                best[name] = min(best[name], elapsed)
                gc.collect()
    finally:
        gc.enable()

    scrapes = 200
    start = time.perf_counter()
    for _ in range(scrapes):
        scrape()
    scrapeSeconds = (time.perf_counter() - start) / scrapes
    counted = withAdmin.runtimes()[0].guard.stats.accepted

    n = args.round_trips
    print(f"round trips per run: {n}, runs: {args.repeats}, best run counts")
    for name, what in LABELS.items():
        print(f"{what:<38} {best[name]:.3f} s, {best[name] / n * 1e6:.2f} us per round trip")
    for name in ("registered", "scraped"):
        print(f"ratio {name}/without: {best[name] / best['without']:.3f}")
    print(
        f"one scrape of /metrics' registry: {scrapeSeconds * 1e3:.3f} ms "
        f"(the scraped runs scraped every {args.scrape_every} round trips; "
        f"{counted} connections counted by the scraped service)"
    )


if __name__ == "__main__":
    main()
