"""
Tests for L{netd.admission.datagram}: the checks in front of every datagram service, around a
real echo on a recording transport.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import Logger
from twisted.trial.unittest import SynchronousTestCase

from netd.admission.datagram import GuardedDatagram, SharedLimits, badSourceAddress, badSourcePort
from netd.config.policy import buildPolicy
from netd.protocols import simple
from netd.stats import ServiceStats
from tests.support import FakeDatagramTransport, makeContext

CLIENT = ("192.0.2.7", 40000)


def bind(
    clock: Clock | None = None,
    shared: SharedLimits | None = None,
    stats: ServiceStats | None = None,
    inner: Any = None,
    **values: Any,
) -> tuple[GuardedDatagram, FakeDatagramTransport]:
    """A guarded UDP echo, bound (as a port does) to a recording transport."""
    clock = clock or Clock()
    inner = inner or simple.buildEcho(makeContext("echo", clock=clock)).datagram()  # type: ignore[misc]
    guarded = GuardedDatagram(
        "echo",
        inner,
        buildPolicy({k.replace("_", "-"): v for k, v in values.items()}),
        clock,
        stats or ServiceStats(),
        shared or SharedLimits(clock),
    )
    transport = FakeDatagramTransport()
    guarded.makeConnection(transport)
    return guarded, transport


def answered(guarded: GuardedDatagram, transport: FakeDatagramTransport, addr: Any) -> bool:
    """Send one datagram from C{addr}; whether it was answered."""
    before = len(transport.written)
    guarded.datagramReceived(b"ping", addr)
    return len(transport.written) > before


class SourcePortTests(SynchronousTestCase):
    def test_serverPortsNeverAnswered(self) -> None:
        """Datagrams from privileged ports or NFS are dropped as C{source-port}: no echo loops."""
        guarded, transport = bind()
        for port in (0, 7, 19, 37, 53, 123, 1023, 2049):
            self.assertFalse(answered(guarded, transport, ("192.0.2.7", port)), port)
        self.assertEqual(guarded.stats.dropped, {"source-port": 8})

    def test_clientPortAnswered(self) -> None:
        """A datagram from an ordinary client port is echoed back to it."""
        guarded, transport = bind()
        guarded.datagramReceived(b"ping", CLIENT)
        self.assertEqual(transport.written, [(b"ping", CLIENT)])
        self.assertTrue(answered(guarded, transport, ("192.0.2.7", 1024)))
        self.assertTrue(answered(guarded, transport, ("192.0.2.7", 65535)))

    def test_ownServicePortsNotAnswered(self) -> None:
        """A datagram from one of this daemon's own UDP ports is dropped, even one bound later."""
        clock = Clock()
        shared = SharedLimits(clock)
        guarded, transport = bind(clock, shared)
        shared.servicePorts.add(40000)
        self.assertFalse(answered(guarded, transport, CLIENT))
        self.assertTrue(answered(guarded, transport, ("192.0.2.7", 40001)))
        self.assertEqual(guarded.stats.dropped, {"source-port": 1})

    def test_answerServicePorts(self) -> None:
        """With C{answer-service-ports} the daemon's own ports are answered, but not privileged ones."""
        clock = Clock()
        shared = SharedLimits(clock)
        shared.servicePorts.add(40000)
        guarded, transport = bind(clock, shared, answer_service_ports=True)
        self.assertTrue(answered(guarded, transport, CLIENT))
        self.assertFalse(answered(guarded, transport, ("192.0.2.7", 7)))

    def test_badSourcePort(self) -> None:
        """The helper names the same ports: below 1024, NFS, and the daemon's own."""
        self.assertTrue(badSourcePort(1023, set()))
        self.assertTrue(badSourcePort(2049, set()))
        self.assertTrue(badSourcePort(5000, {5000}))
        self.assertFalse(badSourcePort(1024, {5000}))


class SourceAddressTests(SynchronousTestCase):
    def test_impossibleSourcesNotAnswered(self) -> None:
        """Unspecified, broadcast and multicast sources, mapped ones included, get no reply."""
        guarded, transport = bind()
        hosts = [
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "239.255.255.250",
            "ff02::1",
            "::",
            "::ffff:224.0.0.1",
            "::ffff:255.255.255.255",
            "::ffff:0.0.0.0",
        ]
        for host in hosts:
            self.assertFalse(answered(guarded, transport, (host, 40000)), host)
        self.assertEqual(guarded.stats.dropped, {"source-address": len(hosts)})

    def test_realSourcesAnswered(self) -> None:
        """Ordinary IPv4, IPv6, mapped and scoped sources are answered."""
        guarded, transport = bind()
        for host in (
            "192.0.2.7",
            "2001:db8::1",
            "::ffff:192.0.2.7",
            "fe80::1%eth0",
            "10.255.255.255",
        ):
            self.assertTrue(answered(guarded, transport, (host, 40000)), host)

    def test_badSourceAddress(self) -> None:
        """The helper refuses what is not an address at all."""
        self.assertTrue(badSourceAddress("not-an-address"))
        self.assertFalse(badSourceAddress("192.0.2.7"))


class PolicyTests(SynchronousTestCase):
    def test_accessRules(self) -> None:
        """A source the access rules refuse is dropped as C{denied}."""
        guarded, transport = bind(deny=["192.0.2.0/24"])
        self.assertFalse(answered(guarded, transport, CLIENT))
        self.assertTrue(answered(guarded, transport, ("198.51.100.1", 40000)))
        self.assertEqual(guarded.stats.dropped, {"denied": 1})

    def test_perSourceRateRecovers(self) -> None:
        """A source over its UDP rate is dropped as C{rate} until its bucket refills; others are not."""
        clock = Clock()
        guarded, transport = bind(clock, udp_rate=1, udp_burst=2)
        self.assertTrue(answered(guarded, transport, CLIENT))
        self.assertTrue(answered(guarded, transport, CLIENT))
        self.assertFalse(answered(guarded, transport, CLIENT))
        self.assertTrue(answered(guarded, transport, ("192.0.2.8", 40000)))
        clock.advance(1)
        self.assertTrue(answered(guarded, transport, CLIENT))
        self.assertFalse(answered(guarded, transport, CLIENT))
        self.assertEqual(guarded.stats.dropped, {"rate": 2})

    def test_rateCountsIPv6PerNetwork(self) -> None:
        """IPv6 sources in one /64 share a UDP rate bucket."""
        guarded, transport = bind(udp_rate=1, udp_burst=1)
        self.assertTrue(answered(guarded, transport, ("2001:db8::1", 40000)))
        self.assertFalse(answered(guarded, transport, ("2001:db8::2", 40000)))
        self.assertTrue(answered(guarded, transport, ("2001:db8:0:1::1", 40000)))

    def test_globalBudgetAcrossServices(self) -> None:
        """The daemon's reply budget is shared by all services, whatever the sources."""
        clock = Clock()
        shared = SharedLimits(clock, budget=3)
        stats = ServiceStats()
        first, firstTransport = bind(clock, shared, stats)
        second, secondTransport = bind(clock, shared)
        self.assertTrue(answered(first, firstTransport, ("192.0.2.1", 40000)))
        self.assertTrue(answered(second, secondTransport, ("192.0.2.2", 40000)))
        self.assertTrue(answered(first, firstTransport, ("192.0.2.3", 40000)))
        self.assertFalse(answered(second, secondTransport, ("192.0.2.4", 40000)))
        self.assertFalse(answered(first, firstTransport, ("192.0.2.5", 40000)))
        self.assertEqual(stats.dropped, {"budget": 1})
        self.assertEqual(second.stats.dropped, {"budget": 1})
        clock.advance(1)
        self.assertTrue(answered(second, secondTransport, ("192.0.2.4", 40000)))

    def test_noBudget(self) -> None:
        """A budget of 0 means no daemon-wide ceiling."""
        guarded, transport = bind(shared=SharedLimits(Clock(), budget=0), udp_rate=0)
        for i in range(1000):
            self.assertTrue(answered(guarded, transport, (f"10.0.{i // 250}.{i % 250}", 40000)))


class AccountingTests(SynchronousTestCase):
    def test_countsInAndOut(self) -> None:
        """Every datagram in is counted, dropped or not; every reply out is counted."""
        guarded, transport = bind()
        guarded.datagramReceived(b"hello", CLIENT)
        guarded.datagramReceived(b"abc", ("192.0.2.7", 53))
        stats = guarded.stats
        self.assertEqual((stats.datagramsIn, stats.bytesIn), (2, 8))
        self.assertEqual((stats.datagramsOut, stats.bytesOut), (1, 5))

    def test_dropsLoggedOncePerMinute(self) -> None:
        """Drops from one source are logged once a minute with how many the line stands for."""
        clock = Clock()
        events = EventLoggingObserver()
        guarded, transport = bind(clock)
        guarded.drops.log = Logger(observer=events)
        for _ in range(3):
            guarded.datagramReceived(b"x", ("192.0.2.7", 7))
        [event] = events
        self.assertEqual(
            (event["peer"], event["reason"], event["repeats"]), ("192.0.2.7", "source-port", 1)
        )
        clock.advance(60)
        guarded.datagramReceived(b"x", ("192.0.2.7", 7))
        self.assertEqual([e["repeats"] for e in events], [1, 3])
        self.assertEqual(guarded.stats.dropped, {"source-port": 4})


class UpdateTests(SynchronousTestCase):
    def test_updateSwapsPolicy(self) -> None:
        """A reload's new policy applies at once on the bound port."""
        guarded, transport = bind()
        self.assertTrue(answered(guarded, transport, CLIENT))
        guarded.update(buildPolicy({"deny": ["192.0.2.7"]}))
        self.assertFalse(answered(guarded, transport, CLIENT))

    def test_updateSwapsProtocol(self) -> None:
        """A reload's new protocol serves the bound port; the old one is stopped."""
        clock = Clock()
        guarded, transport = bind(clock)
        old = guarded.inner
        discard = simple.buildDiscard(makeContext("discard", clock=clock)).datagram()  # type: ignore[misc]
        guarded.update(guarded.policy, discard)
        self.assertIs(guarded.inner, discard)
        self.assertIsNone(old.transport)
        self.assertFalse(answered(guarded, transport, CLIENT))
        self.assertEqual(guarded.stats.datagramsIn, 1)

    def test_updateKeepsRateWhenUnchanged(self) -> None:
        """A reload with the same UDP rate keeps each source's spent budget; a new rate resets it."""
        clock = Clock()
        guarded, transport = bind(clock, udp_rate=1, udp_burst=1)
        self.assertTrue(answered(guarded, transport, CLIENT))
        guarded.update(buildPolicy({"udp-rate": 1, "udp-burst": 1, "deny": ["10.0.0.0/8"]}))
        self.assertFalse(answered(guarded, transport, CLIENT))
        guarded.update(buildPolicy({"udp-rate": 2, "udp-burst": 1}))
        self.assertTrue(answered(guarded, transport, CLIENT))

    def test_updateBeforeBinding(self) -> None:
        """A protocol swapped in before the port is bound starts when it binds."""
        clock = Clock()
        inner = simple.buildEcho(makeContext("echo", clock=clock)).datagram()  # type: ignore[misc]
        guarded = GuardedDatagram(
            "echo", inner, buildPolicy({}), clock, ServiceStats(), SharedLimits(clock)
        )
        discard = simple.buildDiscard(makeContext("discard", clock=clock)).datagram()  # type: ignore[misc]
        guarded.update(guarded.policy, discard)
        guarded.makeConnection(FakeDatagramTransport())
        self.assertIsNotNone(discard.transport)
        self.assertIsNone(inner.transport)

    def test_stopStopsInner(self) -> None:
        """When the port stops, the service's protocol stops with it."""
        guarded, transport = bind()
        inner = guarded.inner
        guarded.doStop()
        self.assertIsNone(inner.transport)
