"""
The policy in front of every datagram service: never loop, never reflect much.

UDP sources are trivially spoofed, so a datagram service is only as safe as the replies
it refuses to send (CERT CA-1996-01, CVE-1999-0103, US-CERT TA14-017A, CVE-2024-2169).
A datagram is dropped, and counted by reason, when:

  - its source port is below 1024 or is 2049 (NFS): another server's port, so a reply
    could start a loop between two services (what OpenBSD inetd refuses too);
  - its source port is one of this daemon's own UDP service ports, unless the service
    allows it: two netd instances must not be able to play echo ping-pong;
  - its source address is unspecified, broadcast or multicast (no legitimate client);
  - the access list refuses the source;
  - the source exceeds its reply rate (a token bucket per source key);
  - the daemon's global reply budget for this second is spent (a ceiling on what any
    number of spoofed sources can make netd reflect).

Debian's xinetd and GNU inetd answer a UDP echo from source port 19; netd does not.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Set
from functools import lru_cache
from typing import Any

from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from netd.admission.policy import Policy
from netd.admission.ratelimit import BucketMap, TokenBucket, sourceKey
from netd.logs.throttled import ThrottledLog
from netd.stats import ServiceStats

__all__ = ["GuardedDatagram", "SharedLimits", "badSourceAddress", "badSourcePort"]

#: NFS: not privileged, but a server port all the same.
NFS_PORT = 2049


def badSourcePort(port: int, servicePorts: Set[int]) -> bool:
    """Whether a reply to C{port} could reach another server rather than a client."""
    return port < 1024 or port == NFS_PORT or port in servicePorts


@lru_cache(maxsize=4096)
def badSourceAddress(host: str) -> bool:
    """Whether C{host} cannot be a real client: unspecified, broadcast or multicast."""
    try:
        address = ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return True
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_unspecified or address.is_multicast:
        return True
    return isinstance(address, ipaddress.IPv4Address) and address == ipaddress.IPv4Address(
        "255.255.255.255"
    )


class SharedLimits:
    """
    What all of a daemon's datagram services share: its own UDP service ports (filled in
    as listeners bind, so C{udp:0} ports count too) and its global reply budget.
    """

    def __init__(self, clock: Any, budget: float = 0.0) -> None:
        self.clock = clock
        self.servicePorts: set[int] = set()
        self.setBudget(budget)

    def setBudget(self, rate: float) -> None:
        """Replies per second for the whole daemon (0: unlimited); a second's worth may burst."""
        self.budget = TokenBucket(rate, max(1.0, rate), self.clock) if rate else None


class CountingTransport:
    """The port as the wrapped protocol sees it: every reply is counted."""

    def __init__(self, transport: Any, stats: ServiceStats) -> None:
        self._transport = transport
        self._stats = stats

    def write(self, data: bytes, addr: Any = None) -> None:
        self._stats.datagramsOut += 1
        self._stats.bytesOut += len(data)
        self._transport.write(data, addr)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class GuardedDatagram(DatagramProtocol):
    """
    Wraps a service's datagram protocol with the checks above.

    @param shared: the daemon's L{SharedLimits}.
    """

    log = Logger()
    noisy = False
    _rate = _burst = 0.0

    def __init__(
        self,
        name: str,
        inner: DatagramProtocol,
        policy: Policy,
        clock: Any,
        stats: ServiceStats,
        shared: SharedLimits,
    ) -> None:
        self.name = name
        self.inner = inner
        self.clock = clock
        self.stats = stats
        self.shared = shared
        self.drops = ThrottledLog(self.log, clock)
        self._rates: BucketMap | None = None
        self.update(policy)

    def update(self, policy: Policy, inner: DatagramProtocol | None = None) -> None:
        """Apply a new policy (and protocol) on reload; the port stays bound."""
        old = self._rates
        self.policy = policy
        keep = old is not None and (self._rate, self._burst) == (policy.udpRate, policy.udpBurst)
        self._rate, self._burst = policy.udpRate, policy.udpBurst
        self._rates = (
            old
            if keep
            else (
                BucketMap(policy.udpRate, policy.udpBurst, self.clock) if policy.udpRate else None
            )
        )
        self._blocked: Set[int] = (
            frozenset() if policy.answerServicePorts else self.shared.servicePorts
        )
        if inner is not None and inner is not self.inner:
            previous, self.inner = self.inner, inner
            if self.transport is not None:
                inner.makeConnection(self._replyTransport())
                previous.doStop()

    def logPrefix(self) -> str:
        return self.name

    def startProtocol(self) -> None:
        self.inner.makeConnection(self._replyTransport())

    def _replyTransport(self) -> Any:
        """
        What the wrapped protocol writes to: netd's UDP port itself when it can count
        replies (no extra call per reply), else a counting proxy.
        """
        transport = self.transport
        if getattr(type(transport), "countsReplies", False):
            transport.stats = self.stats
            return transport
        return CountingTransport(transport, self.stats)

    def stopProtocol(self) -> None:
        self.inner.doStop()

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        self.stats.datagramsIn += 1
        self.stats.bytesIn += len(datagram)
        reason = self._check(addr[0], addr[1])
        if reason is None:
            self.inner.datagramReceived(datagram, addr)
            return
        self.stats.dropped[reason] += 1
        self.drops.warn(
            (addr[0], reason),
            "{service} dropped datagrams from {peer}: {reason} ({repeats} since the last report)",
            service=self.name,
            peer=addr[0],
            reason=reason,
        )

    def _check(self, host: str, port: int) -> str | None:
        if port < 1024 or port == NFS_PORT or port in self._blocked:
            return "source-port"
        if badSourceAddress(host):
            return "source-address"
        policy = self.policy
        if not policy.access.empty and not policy.access.allows(host):
            return "denied"
        if self._rates is not None and not self._rates.take(sourceKey(host, policy.ipv6Prefix)):
            return "rate"
        budget = self.shared.budget
        if budget is not None and not budget.take():
            return "budget"
        return None
