"""
Per-service access control by peer address: C{allow} and C{deny} lists of CIDR networks.

This is the standard library's L{ipaddress} CIDR handling put to work.  A service
carries two lists of networks (C{10.0.0.0/8}, C{2001:db8::/32}) or single addresses
(C{192.0.2.7} meaning C{/32}, C{::1} meaning C{/128}), and each peer is decided as
follows:

  1. B{The most specific matching network wins}: among every rule in either list
     that contains the peer, the one with the longest prefix decides.  So
     C{deny 10.0.0.0/8} with C{allow 10.1.0.0/16} admits C{10.1.2.3} but refuses
     C{10.2.0.1}, and the reverse layering works the same way.  This is what xinetd
     does with C{only_from} and C{no_access}; it lets a wide rule carry narrow
     exceptions without the order of the lists mattering.
  2. B{On a tie, deny wins}: the same network in both lists refuses, because a
     contradictory configuration should fail closed.
  3. B{No match}: refused if the C{allow} list is non-empty (an allow list means
     "only these"), allowed if it is empty (a deny-only list means "all but these").

Peers are compared within their own address family: an IPv4 rule never matches an
IPv6 peer, except that an IPv4-mapped IPv6 peer (C{::ffff:10.1.2.3}, which is what a
dual-stack IPv6 socket reports for an IPv4 client) is decided as the IPv4 address
C{10.1.2.3}.  For the same reason, a rule written inside C{::ffff:0:0/96} is stored as
the IPv4 network it denotes, so C{deny ::ffff:10.0.0.0/104} still refuses C{10.1.2.3}.

Rules are literal networks only.  Host names are rejected rather than resolved: a
decision taken once per connection must not wait on, or be steered by, a resolver.
A network written with host bits set (C{10.0.0.1/8}) is rejected too, since it is
almost always a typo for something narrower or wider than the writer meant.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

__all__ = ["AccessRules", "BadRule", "Network"]

#: Either kind of network a rule may hold.
Network: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network

#: One precompiled rule: C{(network address as int, netmask as int, allowed?)}.
_Compiled: TypeAlias = tuple[int, int, bool]

_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")

#: How many decisions an L{AccessRules} remembers.
_MEMO_SIZE = 4096


class BadRule(ValueError):
    """
    An C{allow} or C{deny} entry that is not a literal IP network; the message is one
    line naming the list and the entry, fit to show the user as-is.
    """


def _parseEntry(listName: str, entry: object) -> Network:
    """
    Turn one configured entry into a network, strictly.

    @param listName: C{"allow"} or C{"deny"}, for the error message.
    @param entry: the configured text.
    @return: the network, with IPv4-mapped IPv6 networks rewritten as IPv4 so they
        can match the IPv4 addresses that mapped peers are decided as.
    @raise BadRule: if C{entry} is not a string holding a network without host bits
        set and without an IPv6 zone.
    """
    if not isinstance(entry, str):
        # ipaddress would happily take an int (167772160 -> 10.0.0.0/32), which from a
        # config file is surely a mistake.
        raise BadRule(f"{listName}: {entry!r} is not an IP network (expected a string)")
    text = entry.strip()
    if "%" in text:
        raise BadRule(
            f"{listName}: {entry!r} has an IPv6 zone; rules match addresses only, "
            "drop the '%...' part"
        )
    try:
        network: Network = ipaddress.ip_network(text)
    except ValueError:
        address, slash, prefix = text.partition("/")
        try:
            loose = ipaddress.ip_network(text, strict=False)
        except ValueError:
            if slash:
                try:
                    ipaddress.ip_address(address)
                except ValueError:
                    pass
                else:
                    raise BadRule(
                        f"{listName}: {entry!r} is not an IP network (bad prefix length /{prefix})"
                    ) from None
            raise BadRule(f"{listName}: {entry!r} is not an IP network") from None
        raise BadRule(
            f"{listName}: {entry!r} is not a network (host bits set; did you mean {loose}?)"
        ) from None
    if (
        isinstance(network, ipaddress.IPv6Network)
        and network.prefixlen >= _MAPPED.prefixlen
        and network.subnet_of(_MAPPED)
    ):
        mapped = network.network_address.ipv4_mapped
        assert mapped is not None
        return ipaddress.IPv4Network((mapped, network.prefixlen - _MAPPED.prefixlen))
    return network


def _compile(
    allow: Sequence[Network], deny: Sequence[Network], version: int
) -> tuple[_Compiled, ...]:
    """
    Precompute one family's rules as integer masks, most specific first.

    Sorting by prefix length, longest first, means the first match in L{AccessRules.allows}
    is the most specific one, so the check is a short loop that stops early.  At equal
    length deny sorts first; two different networks of equal length cannot both contain
    one address, so that only decides the same network listed twice, as "deny wins".

    @param version: 4 or 6; rules of the other family are left out.
    """
    tagged = [(network, True) for network in allow] + [(network, False) for network in deny]
    tagged = [(network, verdict) for network, verdict in tagged if network.version == version]
    tagged.sort(key=lambda item: (-item[0].prefixlen, item[1]))
    return tuple(
        (int(network.network_address), int(network.netmask), verdict) for network, verdict in tagged
    )


@dataclass(frozen=True, slots=True)
class AccessRules:
    """
    An immutable, precompiled pair of C{allow} and C{deny} lists for one service.

    Build it with L{AccessRules.parse} from configuration text; the constructor takes
    already-parsed networks.  Being frozen, one instance can be shared by every
    connection of a service without anyone changing the rules underneath it.

    @ivar allow: the allowed networks, in configured order.
    @ivar deny: the denied networks, in configured order.
    @ivar empty: C{True} when both lists are empty, so every peer is allowed and a
        caller on a hot path may skip L{allows} altogether.
    """

    allow: tuple[Network, ...] = ()
    deny: tuple[Network, ...] = ()
    empty: bool = field(init=False, repr=False, compare=False)
    _v4: tuple[_Compiled, ...] = field(init=False, repr=False, compare=False)
    _v6: tuple[_Compiled, ...] = field(init=False, repr=False, compare=False)
    _default: bool = field(init=False, repr=False, compare=False)
    #: Decisions already taken, by host string: rules never change, and a per-datagram
    #: check must not parse the address every time (bounded: cleared when full).
    _memo: dict[str, bool] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """
        Precompile the rules once, so that per-connection decisions do no parsing or
        sorting.
        """
        allow, deny = tuple(self.allow), tuple(self.deny)
        object.__setattr__(self, "allow", allow)
        object.__setattr__(self, "deny", deny)
        object.__setattr__(self, "empty", not allow and not deny)
        object.__setattr__(self, "_v4", _compile(allow, deny, 4))
        object.__setattr__(self, "_v6", _compile(allow, deny, 6))
        object.__setattr__(self, "_default", not allow)
        object.__setattr__(self, "_memo", {})

    @classmethod
    def parse(cls, allow: Sequence[str], deny: Sequence[str]) -> AccessRules:
        """
        Build rules from configuration text, rejecting anything but literal networks.

        @param allow: networks or single addresses to admit (empty: admit all not denied).
        @param deny: networks or single addresses to refuse.
        @return: the compiled rules.
        @raise BadRule: naming the first bad entry and its list; nothing is resolved,
            so a host name is an error rather than a lookup.
        """
        for listName, entries in (("allow", allow), ("deny", deny)):
            if isinstance(entries, str):
                # A bare string is a Sequence[str] of one-character "networks".
                raise BadRule(
                    f"{listName}: expected a list of networks, not the string {entries!r}"
                )
        return cls(
            allow=tuple(_parseEntry("allow", entry) for entry in allow),
            deny=tuple(_parseEntry("deny", entry) for entry in deny),
        )

    def allows(self, host: str) -> bool:
        """
        Decide whether a peer may connect (or have its datagram answered).

        @param host: the peer address as Twisted reports it (C{"127.0.0.1"},
            C{"::1"}, C{"::ffff:10.1.2.3"}, C{"fe80::1%eth0"}).  An IPv6 zone is
            ignored; an IPv4-mapped IPv6 address is decided as its IPv4 address.
            Anything that is not an IP address (a unix socket path) matches no rule.
        @return: C{True} to serve the peer, C{False} to refuse it.
        """
        if self.empty:
            return True
        memo = self._memo
        verdict = memo.get(host)
        if verdict is None:
            verdict = self._decide(host)
            if len(memo) >= _MEMO_SIZE:
                memo.clear()
            memo[host] = verdict
        return verdict

    def _decide(self, host: str) -> bool:
        address = _peerAddress(host)
        if address is None:
            return self._default
        if isinstance(address, ipaddress.IPv4Address):
            table = self._v4
        elif address.ipv4_mapped is not None:
            address, table = address.ipv4_mapped, self._v4
        else:
            table = self._v6
        value = int(address)
        for network, mask, verdict in table:
            if value & mask == network:
                return verdict
        return self._default

    def describe(self) -> dict[str, list[str]]:
        """
        The rules as normalized text (C{10.0.0.0/8}, C{::1/128}), for status output
        that shows what netd actually enforces rather than what was typed.
        """
        return {
            "allow": [str(network) for network in self.allow],
            "deny": [str(network) for network in self.deny],
        }


def _peerAddress(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """
    Parse a peer address without ever raising, since a bad peer string must not
    break the serving of a connection.

    @return: the address with any IPv6 zone dropped, or C{None} if C{host} is not an
        IP address.
    """
    if not isinstance(host, str):
        return None
    host = host.partition("%")[0]
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None
