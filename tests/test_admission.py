"""
Tests for L{netd.admission.rules}: the rules a new connection must pass, and the live counts.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from netd.admission.access import AccessRules
from netd.admission.rules import (
    AccessRule,
    Admission,
    LiveCounts,
    RateRule,
    SourceLimitRule,
    TotalLimitRule,
)
from netd.config.policy import buildPolicy

#: Every limit off: an admission built from this has no rules at all.
NOTHING: dict[str, Any] = {"max-connections": 0, "max-per-source": 0, "rate": 0}


def admission(
    clock: Clock | None = None, counts: LiveCounts | None = None, **values: Any
) -> Admission:
    """An admission from policy keys spelled as in a config file (C{max_per_source})."""
    policy = buildPolicy({**NOTHING, **{k.replace("_", "-"): v for k, v in values.items()}})
    return Admission(policy, clock or Clock(), counts or LiveCounts())


class AccessRuleTests(SynchronousTestCase):
    def test_refusesDeniedPeers(self) -> None:
        """A peer the deny list names is refused as C{denied}; others pass."""
        rule = AccessRule(AccessRules.parse([], ["192.0.2.0/24"]))
        self.assertEqual(rule.admit("192.0.2.7", "192.0.2.7"), "denied")
        self.assertIsNone(rule.admit("198.51.100.1", "198.51.100.1"))

    def test_allowListMeansOnlyThese(self) -> None:
        """With an allow list, a peer outside it is refused as C{denied}."""
        rule = AccessRule(AccessRules.parse(["10.0.0.0/8"], []))
        self.assertIsNone(rule.admit("10.1.2.3", "10.1.2.3"))
        self.assertEqual(rule.admit("192.0.2.7", "192.0.2.7"), "denied")


class TotalLimitRuleTests(SynchronousTestCase):
    def test_refusesAtTheLimit(self) -> None:
        """Once the service holds its maximum, any new peer is refused as C{max-connections}."""
        counts = LiveCounts()
        rule = TotalLimitRule(2, counts)
        counts.acquire("a")
        self.assertIsNone(rule.admit("192.0.2.7", "192.0.2.7"))
        counts.acquire("b")
        self.assertEqual(rule.admit("192.0.2.7", "192.0.2.7"), "max-connections")
        counts.release("a")
        self.assertIsNone(rule.admit("192.0.2.7", "192.0.2.7"))


class SourceLimitRuleTests(SynchronousTestCase):
    def test_refusesABusySourceOnly(self) -> None:
        """A source at its share is refused as C{max-per-source}; another source is not."""
        counts = LiveCounts()
        rule = SourceLimitRule(1, counts)
        counts.acquire("192.0.2.7")
        self.assertEqual(rule.admit("192.0.2.7", "192.0.2.7"), "max-per-source")
        self.assertIsNone(rule.admit("192.0.2.8", "192.0.2.8"))
        counts.release("192.0.2.7")
        self.assertIsNone(rule.admit("192.0.2.7", "192.0.2.7"))


class RateRuleTests(SynchronousTestCase):
    def test_refusesWhileEmptyAndRecovers(self) -> None:
        """A source over its burst is refused as C{rate} until the bucket refills."""
        clock = Clock()
        rule = RateRule(1.0, 2, clock)
        self.assertIsNone(rule.admit("192.0.2.7", "192.0.2.7"))
        self.assertIsNone(rule.admit("192.0.2.7", "192.0.2.7"))
        self.assertEqual(rule.admit("192.0.2.7", "192.0.2.7"), "rate")
        self.assertIsNone(rule.admit("192.0.2.8", "192.0.2.8"))
        clock.advance(0.5)
        self.assertEqual(rule.admit("192.0.2.7", "192.0.2.7"), "rate")
        clock.advance(0.5)
        self.assertIsNone(rule.admit("192.0.2.7", "192.0.2.7"))


class AdmissionTests(SynchronousTestCase):
    def test_rulesRunInOrderCheapestFirst(self) -> None:
        """The rules run access, total, per-source, rate: a denied peer never spends a rate token."""
        clock = Clock()
        gate = admission(
            clock, deny=["192.0.2.7"], max_connections=5, max_per_source=2, rate=1, burst=1
        )
        self.assertEqual(
            [type(rule) for rule in gate.rules],
            [AccessRule, TotalLimitRule, SourceLimitRule, RateRule],
        )
        host = "192.0.2.7"
        for _ in range(3):
            self.assertEqual(gate.admit(host, gate.key(host)), "denied")
        rate = gate.rateRule()
        assert rate is not None
        self.assertEqual(len(rate.buckets), 0)
        self.assertEqual(gate.counts.total, 0)

    def test_admittedIsCountedUntilReleased(self) -> None:
        """An admitted connection is counted in total and per source until it is released."""
        gate = admission(max_connections=10, max_per_source=5)
        key = gate.key("192.0.2.7")
        self.assertIsNone(gate.admit("192.0.2.7", key))
        self.assertEqual(gate.counts.total, 1)
        self.assertEqual(gate.counts.bySource.count("192.0.2.7"), 1)
        gate.release(key)
        self.assertEqual(gate.counts.total, 0)
        self.assertEqual(gate.counts.bySource.count("192.0.2.7"), 0)

    def test_refusedIsNotCounted(self) -> None:
        """A refused connection leaves the counts as they were."""
        gate = admission(max_connections=1)
        self.assertIsNone(gate.admit("192.0.2.7", gate.key("192.0.2.7")))
        self.assertEqual(gate.admit("192.0.2.8", gate.key("192.0.2.8")), "max-connections")
        self.assertEqual(gate.counts.total, 1)

    def test_denialComesBeforeLimits(self) -> None:
        """A peer both denied and over a limit is refused as C{denied}."""
        gate = admission(deny=["192.0.2.0/24"], max_connections=1)
        gate.admit("198.51.100.1", gate.key("198.51.100.1"))
        self.assertEqual(gate.admit("192.0.2.7", gate.key("192.0.2.7")), "denied")

    def test_rateTokenSpentOnlyWhenOtherRulesPass(self) -> None:
        """A connection refused by the per-source limit does not use up the source's rate budget."""
        clock = Clock()
        gate = admission(clock, max_per_source=1, rate=1, burst=1)
        key = gate.key("192.0.2.7")
        self.assertIsNone(gate.admit("192.0.2.7", key))
        for _ in range(5):
            self.assertEqual(gate.admit("192.0.2.7", key), "max-per-source")
        gate.release(key)
        clock.advance(1)
        self.assertIsNone(gate.admit("192.0.2.7", key))

    def test_switchedOffRulesCostNothing(self) -> None:
        """With every rule off there are no rule objects and no source key is computed."""
        gate = admission()
        self.assertEqual(gate.rules, [])
        self.assertIsNone(gate.key("192.0.2.7"))
        self.assertIsNone(gate.admit("192.0.2.7", None))
        self.assertEqual(gate.counts.total, 1)
        self.assertEqual(len(gate.counts.bySource), 0)

    def test_noKeyWithoutPerSourceRule(self) -> None:
        """Access and total limits alone need no source key."""
        gate = admission(deny=["10.0.0.0/8"], max_connections=3)
        self.assertIsNone(gate.key("192.0.2.7"))
        self.assertEqual(admission(rate=5).key("192.0.2.7"), "192.0.2.7")
        self.assertEqual(admission(max_per_source=5).key("192.0.2.7"), "192.0.2.7")

    def test_unixPeersSeeOnlyTheTotalLimit(self) -> None:
        """A unix-socket peer (no host) skips access and per-source rules but not the total limit."""
        clock = Clock()
        gate = admission(
            clock, allow=["10.0.0.0/8"], max_connections=2, max_per_source=1, rate=1, burst=1
        )
        self.assertIsNone(gate.key(None))
        self.assertIsNone(gate.admit(None, None))
        self.assertIsNone(gate.admit(None, None))
        self.assertEqual(gate.admit(None, None), "max-connections")
        self.assertEqual(len(gate.counts.bySource), 0)

    def test_ipv6CountedPerSlash64(self) -> None:
        """Two addresses in one IPv6 /64 share one per-source allowance; another /64 has its own."""
        gate = admission(max_per_source=1)
        first, sibling, stranger = "2001:db8::1", "2001:db8::ffff:2", "2001:db8:0:1::1"
        self.assertEqual(gate.key(first), "2001:db8::/64")
        self.assertIsNone(gate.admit(first, gate.key(first)))
        self.assertEqual(gate.admit(sibling, gate.key(sibling)), "max-per-source")
        self.assertIsNone(gate.admit(stranger, gate.key(stranger)))

    def test_ipv6PrefixIsConfigurable(self) -> None:
        """With C{ipv6-prefix} 128 each IPv6 address is its own source."""
        gate = admission(max_per_source=1, ipv6_prefix=128)
        self.assertIsNone(gate.admit("2001:db8::1", gate.key("2001:db8::1")))
        self.assertIsNone(gate.admit("2001:db8::2", gate.key("2001:db8::2")))


class ReloadTests(SynchronousTestCase):
    def test_newAdmissionSeesLiveCounts(self) -> None:
        """After a reload the new limits count the connections opened before it."""
        clock, counts = Clock(), LiveCounts()
        old = admission(clock, counts, max_connections=10, max_per_source=10)
        key = old.key("192.0.2.7")
        old.admit("192.0.2.7", key)
        old.admit("192.0.2.7", key)
        new = Admission(
            buildPolicy({"max-connections": 2, "max-per-source": 2}), clock, counts, old
        )
        self.assertEqual(new.admit("192.0.2.8", new.key("192.0.2.8")), "max-connections")
        new.release(key)
        self.assertIsNone(new.admit("192.0.2.8", new.key("192.0.2.8")))
        self.assertEqual(counts.total, 2)

    def test_sameRateKeepsTheBucket(self) -> None:
        """A reload with unchanged rate and burst keeps each source's spent tokens."""
        clock, counts = Clock(), LiveCounts()
        policy = buildPolicy({**NOTHING, "rate": 1, "burst": 1})
        old = Admission(policy, clock, counts)
        self.assertIsNone(old.admit("192.0.2.7", old.key("192.0.2.7")))
        new = Admission(buildPolicy({"deny": ["10.0.0.0/8"]}, policy), clock, counts, old)
        self.assertIs(new.rateRule(), old.rateRule())
        self.assertEqual(new.admit("192.0.2.7", new.key("192.0.2.7")), "rate")

    def test_changedRateStartsAfresh(self) -> None:
        """A reload that changes the rate or the burst gives every source a full new bucket."""
        clock, counts = Clock(), LiveCounts()
        policy = buildPolicy({**NOTHING, "rate": 1, "burst": 1})
        old = Admission(policy, clock, counts)
        old.admit("192.0.2.7", old.key("192.0.2.7"))
        for change in ({"rate": 2}, {"burst": 2}):
            new = Admission(buildPolicy(change, policy), clock, counts, old)
            self.assertIsNot(new.rateRule(), old.rateRule())
            self.assertIsNone(new.admit("192.0.2.7", new.key("192.0.2.7")))

    def test_rateSwitchedOffAndOnStartsAfresh(self) -> None:
        """A reload that switches the rate off drops the buckets; switching it back starts full."""
        clock, counts = Clock(), LiveCounts()
        policy = buildPolicy({**NOTHING, "rate": 1, "burst": 1})
        first = Admission(policy, clock, counts)
        first.admit("192.0.2.7", first.key("192.0.2.7"))
        off = Admission(buildPolicy({"rate": 0}, policy), clock, counts, first)
        self.assertIsNone(off.rateRule())
        on = Admission(policy, clock, counts, off)
        self.assertIsNone(on.admit("192.0.2.7", on.key("192.0.2.7")))
