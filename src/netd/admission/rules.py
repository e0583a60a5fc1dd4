"""
Whether a new connection may start: the access list and the limits, one small rule each.

Each rule is a check, C{admit(host, key) -> reason or None}, run in order, cheapest
and most decisive first.  The live counts the limits read are kept apart, in
L{LiveCounts}, which outlives any one configuration: after a reload the new rules see
the connections opened before it, and each connection releases exactly what it took.
"""

from __future__ import annotations

import sys
from typing import Any, Protocol

from netd.admission.access import AccessRules
from netd.admission.policy import Policy
from netd.admission.ratelimit import BucketMap, ConcurrencyMap, sourceKey

__all__ = [
    "AccessRule",
    "Admission",
    "LiveCounts",
    "RateRule",
    "SourceLimitRule",
    "TotalLimitRule",
]


class LiveCounts:
    """The connections a service holds now: in total, and per source key."""

    def __init__(self) -> None:
        self.total = 0
        self.bySource = ConcurrencyMap(sys.maxsize)

    def acquire(self, key: str | None) -> None:
        self.total += 1
        if key is not None:
            self.bySource.acquire(key)

    def release(self, key: str | None) -> None:
        self.total -= 1
        if key is not None:
            self.bySource.release(key)


class Rule(Protocol):
    def admit(self, host: str, key: str) -> str | None: ...


class AccessRule:
    """Refuse peers the allow/deny lists refuse (reason C{denied})."""

    def __init__(self, rules: AccessRules) -> None:
        self.rules = rules

    def admit(self, host: str, key: str) -> str | None:
        return None if self.rules.allows(host) else "denied"


class TotalLimitRule:
    """Refuse once the service holds its maximum of connections (reason C{max-connections})."""

    def __init__(self, limit: int, counts: LiveCounts) -> None:
        self.limit = limit
        self.counts = counts

    def admit(self, host: str, key: str) -> str | None:
        return "max-connections" if self.counts.total >= self.limit else None


class SourceLimitRule:
    """Refuse a source already holding its share of connections (reason C{max-per-source})."""

    def __init__(self, limit: int, counts: LiveCounts) -> None:
        self.limit = limit
        self.counts = counts

    def admit(self, host: str, key: str) -> str | None:
        return "max-per-source" if self.counts.bySource.count(key) >= self.limit else None


class RateRule:
    """
    Refuse a source opening connections faster than its token bucket refills (reason
    C{rate}).  It recovers by itself: never systemd's permanent "trigger limit hit".
    """

    def __init__(self, rate: float, burst: int, clock: Any) -> None:
        self.rate, self.burst = rate, burst
        self.buckets = BucketMap(rate, burst, clock)

    def admit(self, host: str, key: str) -> str | None:
        return None if self.buckets.take(key) else "rate"


class Admission:
    """
    One service's rules, built from its L{Policy}; rules switched off (an empty access
    list, a limit of 0) are left out and cost nothing.

    Per-source rules apply to IP peers only: a unix-socket peer has no address to count
    (file permissions guard those); the service-wide limit applies to every peer.

    @param counts: the service's live counts, shared with the admissions before and
        after this one.
    @param previous: the admission this one replaces on reload; its token buckets are
        kept when the rate is unchanged, so a reload cannot reset a flooder's budget.
    """

    def __init__(
        self, policy: Policy, clock: Any, counts: LiveCounts, previous: Admission | None = None
    ) -> None:
        self.policy = policy
        self.counts = counts
        rules: list[Rule] = []
        if not policy.access.empty:
            rules.append(AccessRule(policy.access))
        if policy.maxConnections:
            rules.append(TotalLimitRule(policy.maxConnections, counts))
        if policy.maxPerSource:
            rules.append(SourceLimitRule(policy.maxPerSource, counts))
        if policy.rate:
            old = previous.rateRule() if previous is not None else None
            same = old is not None and (old.rate, old.burst) == (policy.rate, policy.burst)
            rules.append(
                old if same and old is not None else RateRule(policy.rate, policy.burst, clock)
            )
        self.rules = rules
        self._perSource = any(isinstance(rule, (SourceLimitRule, RateRule)) for rule in rules)

    def rateRule(self) -> RateRule | None:
        return next((rule for rule in self.rules if isinstance(rule, RateRule)), None)

    def key(self, host: str | None) -> str | None:
        """The source key of C{host}, when a per-source rule needs one."""
        if host is None or not self._perSource:
            return None
        return sourceKey(host, self.policy.ipv6Prefix)

    def admit(self, host: str | None, key: str | None) -> str | None:
        """
        Admit a connection from C{host} (counted under C{key}, from L{key}) or say why
        not.  An admitted connection is counted and must be L{release}d with C{key}.
        """
        for rule in self.rules:
            if host is None and not isinstance(rule, TotalLimitRule):
                continue
            reason = rule.admit(host or "", key or "")
            if reason is not None:
                return reason
        self.counts.acquire(key)
        return None

    def release(self, key: str | None) -> None:
        self.counts.release(key)
