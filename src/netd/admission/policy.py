"""
What a service admits and how much: access rules and limits, as one immutable value.

The value the admission rules and guards enforce; the configuration builds it from its
keys (L{netd.config.policy}).  C{0} switches a numeric limit off.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from netd.admission.access import AccessRules

if TYPE_CHECKING:
    from netd.listen.tls import ClientAuthorities

__all__ = ["Policy"]


@dataclass(frozen=True)
class Policy:
    """
    One service's access rules and limits.  Defaults are safe for a public address and
    generous for real clients; every numeric limit is off at C{0}.

    @ivar maxConnections: concurrent connections for the whole service.
    @ivar maxPerSource: concurrent connections per source (an IPv4 address, or an IPv6
        network of C{ipv6Prefix} bits: one IPv6 client usually owns a whole /64).
    @ivar rate: new connections per second per source (a token bucket of C{burst}).
    @ivar idleTimeout: seconds without a byte either way before a connection is closed.
    @ivar maxLifetime: seconds any connection may last (for streaming services).
    @ivar refusedBanner: text sent to a refused TCP client before the close, if any.
    @ivar udpRate: datagrams answered per second per source (a bucket of C{udpBurst}).
    @ivar allowAmplification: serve UDP for a protocol whose reply outweighs any request
        (chargen); off, because such a service is a reflection amplifier.
    @ivar answerServicePorts: answer datagrams whose source port is one of this daemon's
        own UDP service ports; off, because that is how two servers loop (CVE-2024-2169).
    @ivar trustedProxies: the peers whose PROXY header a C{haproxy:} listener believes
        (loopback by default); anyone else could claim any client address.
    @ivar logConnections: log one line per finished connection (xinetd's
        C{log_on_success DURATION TRAFFIC}); off for a service whose connection rate
        makes the log the bottleneck (the counters and metrics stay).
    @ivar tlsClientCA: for C{ssl:} listeners, the CAs one of which must have issued the
        client's certificate; C{None}: no client certificate is asked for.
    """

    access: AccessRules = field(default_factory=lambda: AccessRules.parse((), ()))
    maxConnections: int = 1000
    maxPerSource: int = 64
    ipv6Prefix: int = 64
    rate: float = 50.0
    burst: int = 100
    idleTimeout: float = 300.0
    maxLifetime: float = 0.0
    refusedBanner: str | None = None
    udpRate: float = 100.0
    udpBurst: int = 200
    allowAmplification: bool = False
    answerServicePorts: bool = False
    trustedProxies: AccessRules = field(
        default_factory=lambda: AccessRules.parse(["127.0.0.0/8", "::1"], ())
    )
    tlsClientCA: ClientAuthorities | None = None
    logConnections: bool = True
