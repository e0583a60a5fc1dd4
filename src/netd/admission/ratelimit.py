"""
Per-source limits for a daemon on the open internet.

A single client must not be able to use up the daemon for everyone else, so the
building blocks here count per I{source} (L{sourceKey}), refuse politely when a source
is over its limit, and recover on their own as time passes.  Memory stays bounded even
when every packet claims a different (spoofed) source.

Time comes only from an injected clock (anything with C{seconds() -> float}, such as
Twisted's C{IReactorTime} or C{twisted.internet.task.Clock}), so tests never sleep.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import Dict, Protocol

__all__ = ["BucketMap", "ConcurrencyMap", "TokenBucket", "sourceKey"]


class _Clock(Protocol):
    def seconds(self) -> float: ...


@lru_cache(maxsize=65536)
def sourceKey(host: str, ipv6Prefix: int = 64) -> str:
    """
    The key under which a peer is counted.

    IPv4 addresses count as themselves, IPv4-mapped IPv6 addresses as the IPv4 address
    they carry (a dual-stack socket must not give a v4 client a second allowance), and
    other IPv6 addresses as their C{ipv6Prefix}-bit network: one client usually owns a
    whole /64 and could otherwise dodge a per-address limit by changing address.  A zone
    suffix (C{%eth0}) is dropped.  Anything that is not an IP address (a unix socket
    path) is returned unchanged.  Memoized: it runs for every datagram a rate limit
    checks, and parsing an address each time would dominate the cost.

    @param host: the peer's host as the transport reports it.
    @param ipv6Prefix: how many leading bits of an IPv6 address identify one client.
    @raise ValueError: if C{host} is IPv6 and C{ipv6Prefix} is not in 0..128.
    """
    try:
        address = ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv4Address):
        return str(address)
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(ipaddress.IPv6Network((address, ipv6Prefix), strict=False))


def _checkRates(rate: float, burst: float) -> None:
    if not rate > 0:
        raise ValueError(f"rate must be > 0, not {rate!r}")
    if not burst >= 1:
        raise ValueError(f"burst must be >= 1, not {burst!r}")


class TokenBucket:
    """
    A token bucket: allows bursts of up to C{burst} events, and C{rate} events per
    second on average.

    It starts full and refills continuously.  An empty bucket refuses, but always
    recovers by itself as time passes: there is no permanently disabled state, unlike
    systemd's socket trigger limit, which turns a brief flood into a lasting outage.
    """

    def __init__(self, rate: float, burst: float, clock: _Clock) -> None:
        """
        @param rate: tokens added per second.
        @param burst: capacity, and the initial number of tokens.
        @param clock: the source of time; only its C{seconds()} is used.
        @raise ValueError: if C{rate} is not positive or C{burst} is below 1, since
            such a bucket could never allow a single event.
        """
        _checkRates(rate, burst)
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock.seconds()

    def _refill(self) -> None:
        now = self._clock.seconds()
        # max(): a clock stepping backwards must not drain the bucket.
        elapsed = max(0.0, now - self._last)
        self._last = now
        self._tokens = min(self.burst, self._tokens + elapsed * self.rate)

    def available(self) -> float:
        """The number of tokens in the bucket now."""
        self._refill()
        return self._tokens

    def isFull(self) -> bool:
        """Whether the bucket is back at C{burst}: then it is the same as a new one."""
        return self.available() >= self.burst

    def take(self, n: float = 1.0) -> bool:
        """
        Consume C{n} tokens if there are that many.

        All or nothing: a refused request consumes nothing, so a source that is
        refused is not pushed further into debt and recovers at the normal rate.

        @return: C{True} if the tokens were taken, C{False} otherwise.
        @raise ValueError: if C{n} is negative.
        """
        if n < 0:
            raise ValueError(f"cannot take a negative number of tokens: {n!r}")
        self._refill()
        if self._tokens < n:
            return False
        self._tokens -= n
        return True


class BucketMap:
    """
    One L{TokenBucket} per key (source), in bounded memory.

    Buckets live in an insertion-ordered dict kept in least-recently-used order: every
    L{take}, allowed or refused, moves its key to the end, so a source that keeps
    knocking stays recent.  When a new key would exceed C{maxKeys}, one sweep drops
    every full bucket (a full bucket is the same as a new one, so forgetting it changes
    no decision).  If that frees less than an eighth of the room, the least recently
    used buckets are dropped until it does.  Each O(maxKeys) sweep thus frees
    Omega(maxKeys) slots, which makes insertion amortized O(1) even under a flood of
    spoofed sources, and a busy (non-full) source is evicted only after every full
    bucket and every quieter source, so it cannot reset its own limit by churning
    other keys while it keeps sending.
    """

    def __init__(self, rate: float, burst: float, clock: _Clock, maxKeys: int = 65536) -> None:
        """
        @param rate: tokens per second for each key.
        @param burst: capacity of each key's bucket.
        @param clock: the source of time, shared by all buckets.
        @param maxKeys: the most buckets ever kept at once.
        @raise ValueError: on a bad C{rate} or C{burst} (see L{TokenBucket}), or if
            C{maxKeys} is below 1.
        """
        _checkRates(rate, burst)
        if maxKeys < 1:
            raise ValueError(f"maxKeys must be >= 1, not {maxKeys!r}")
        self.rate = rate
        self.burst = burst
        self.maxKeys = maxKeys
        self._clock = clock
        self._buckets: Dict[str, TokenBucket] = {}

    def __len__(self) -> int:
        return len(self._buckets)

    def _makeRoom(self) -> None:
        buckets = self._buckets
        for key in [k for k, b in buckets.items() if b.isFull()]:
            del buckets[key]
        target = self.maxKeys - max(1, self.maxKeys // 8)
        while len(buckets) > target:
            del buckets[next(iter(buckets))]

    def take(self, key: str, n: float = 1.0) -> bool:
        """
        Consume C{n} tokens from C{key}'s bucket, creating a full one for a new key.

        @return: C{True} if allowed, C{False} if C{key} is over its limit.
        """
        bucket = self._buckets.pop(key, None)
        if bucket is None:
            if len(self._buckets) >= self.maxKeys:
                self._makeRoom()
            bucket = TokenBucket(self.rate, self.burst, self._clock)
        self._buckets[key] = bucket
        return bucket.take(n)


class ConcurrencyMap:
    """
    Counts live connections per key and caps each key at C{limit}.

    A key is removed as soon as its count drops to zero, so memory is bounded by the
    number of live connections rather than by every source ever seen.
    """

    def __init__(self, limit: int) -> None:
        """
        @param limit: the most simultaneous connections per key.
        @raise ValueError: if C{limit} is below 1, which would refuse everyone.
        """
        if limit < 1:
            raise ValueError(f"limit must be >= 1, not {limit!r}")
        self.limit = limit
        self._counts: Dict[str, int] = {}
        self._total = 0

    def __len__(self) -> int:
        return len(self._counts)

    def acquire(self, key: str) -> bool:
        """
        Count one more connection for C{key}, unless it is already at the limit.

        @return: C{True} if acquired (then the caller must L{release}), else C{False}.
        """
        current = self._counts.get(key, 0)
        if current >= self.limit:
            return False
        self._counts[key] = current + 1
        self._total += 1
        return True

    def release(self, key: str) -> None:
        """
        Give back one connection acquired for C{key}.

        @raise KeyError: if C{key} holds nothing: a release without an acquire is a bug
            that would otherwise silently raise the effective limit.
        """
        current = self._counts[key]
        if current <= 1:
            del self._counts[key]
        else:
            self._counts[key] = current - 1
        self._total -= 1

    def count(self, key: str) -> int:
        """The number of live connections for C{key}."""
        return self._counts.get(key, 0)

    def total(self) -> int:
        """The number of live connections over all keys."""
        return self._total
