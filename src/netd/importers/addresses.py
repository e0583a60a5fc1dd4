"""
Addresses as the old formats write them, turned into netd's literal forms.

netd never resolves a name (a slow resolver would stall the daemon, and a name's
addresses change behind the configuration's back), so a host or network name has no
equivalent: the converters report it and leave it out, always on the side of serving
fewer clients, never more.
"""

from __future__ import annotations

import ipaddress
import re
import socket

__all__ = [
    "EVERYONE",
    "HostName",
    "escapeColons",
    "forwardTarget",
    "isAddress",
    "listenDescription",
    "narrowAllow",
    "xinetdNetworks",
]

#: The deny list that refuses every client: netd's empty C{allow} means everyone.
EVERYONE = ["0.0.0.0/0", "::/0"]

_FACTORIZED = re.compile(r"^(?P<prefix>(?:\d+\.){0,3})\{(?P<choices>[\d,]+)\}$")


class HostName(ValueError):
    """An address given as a name, which netd will not resolve."""


def isAddress(text: str) -> bool:
    """Whether C{text} is an IPv4 or IPv6 literal."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def xinetdNetworks(token: str) -> list[str]:
    """
    One value of xinetd's C{only_from}/C{no_access}, as CIDR networks, matching as
    xinetd matches it (C{addr.c}): a dotted IPv4 address whose rightmost parts are 0 is
    a network (C{10.0.0.0} is C{10.0.0.0/8}, C{0.0.0.0} everyone); an IPv6 address is
    itself (C{::} everyone); C{ADDR/BITS} is that network, host bits ignored as xinetd
    masks them; C{128.138.{193,194}} is one network per choice.

    @raise HostName: for a host name, a C{.domain} suffix or an C{/etc/networks} name.
    @raise ValueError: for something that is none of these.
    """
    if "/" in token:
        try:
            return [str(ipaddress.ip_network(token, strict=False))]
        except ValueError:
            raise ValueError(f"{token!r} is not an address/prefix") from None
    factorized = _FACTORIZED.match(token)
    if factorized:
        return _factorized(factorized["prefix"], factorized["choices"], token)
    if ":" in token:
        try:
            address = ipaddress.IPv6Address(token)
        except ValueError:
            raise ValueError(f"{token!r} is not an IPv6 address") from None
        return ["::/0"] if int(address) == 0 else [f"{address}/128"]
    if re.fullmatch(r"[\d.]+", token):
        return [_dottedNetwork(token)]
    raise HostName(token)


def _dottedNetwork(token: str) -> str:
    """
    C{128.138.12.0} as xinetd reads it: trailing zero octets are wildcards.  Short forms
    (C{10.1}) are read as C{inet_aton} reads them, which is what xinetd's resolver call
    does with a numeric host.
    """
    try:
        packed = socket.inet_aton(token)
    except OSError:
        raise ValueError(f"{token!r} is not an IPv4 address") from None
    address = ipaddress.IPv4Address(packed)
    value = int(address)
    if value == 0:
        return "0.0.0.0/0"
    prefix = 32
    while prefix > 8 and value & ((1 << (32 - prefix + 8)) - 1) == 0:
        prefix -= 8
    return f"{ipaddress.IPv4Network((value, prefix))}"


def _factorized(prefix: str, choices: str, token: str) -> list[str]:
    """C{a.b.{c,d}}: one network per choice, as long as the address written so far."""
    parts = [int(part) for part in prefix.split(".") if part]
    values = [int(choice) for choice in choices.split(",") if choice != ""]
    if not values or any(v > 255 for v in [*parts, *values]) or ",," in choices:
        raise ValueError(f"{token!r} is not a factorized address")
    bits = 8 * (len(parts) + 1)
    networks = []
    for value in values:
        octets = [*parts, value] + [0] * (3 - len(parts))
        networks.append(str(ipaddress.IPv4Network((".".join(map(str, octets)), bits))))
    return networks


def narrowAllow(allow: list[str], deny: list[str]) -> list[str]:
    """
    The allow list netd needs to refuse what xinetd refuses.  In xinetd a C{no_access}
    match always wins; in netd the most specific rule does, so an allowed network inside
    a denied one would let its clients in.  Such networks are dropped (xinetd refuses
    them anyway).
    """
    denied = [ipaddress.ip_network(d) for d in deny]
    kept = []
    for entry in allow:
        network = ipaddress.ip_network(entry)
        if not any(
            network.version == d.version and network.subnet_of(d)  # type: ignore[arg-type]
            for d in denied
        ):
            kept.append(entry)
    return kept


def escapeColons(address: str) -> str:
    """An address inside an endpoint description, whose separator is the colon."""
    return address.replace(":", "\\:")


def listenDescription(transport: str, port: int, interface: str | None, ipv6: bool) -> str:
    """
    netd's listen string: C{tcp:PORT}, C{tcp6:PORT} (all IPv6 addresses, and IPv4 too:
    Linux sockets are dual-stack), C{udp:PORT}, each with C{:interface=ADDR} when bound to
    one address.
    """
    if interface is not None:
        ipv6 = ":" in interface
    if transport == "udp":
        if interface is None and ipv6:
            interface = "::"
        suffix = f":interface={escapeColons(interface)}" if interface is not None else ""
        return f"udp:{port}{suffix}"
    kind = "tcp6" if ipv6 else "tcp"
    suffix = f":interface={escapeColons(interface)}" if interface is not None else ""
    return f"{kind}:{port}{suffix}"


def forwardTarget(host: str, port: int) -> str:
    """
    netd's C{forward} value for xinetd's C{redirect = HOST PORT}: Twisted's client
    endpoint string, an IPv6 literal with its colons escaped.

    @raise HostName: when C{host} is a name.
    """
    if not isAddress(host):
        raise HostName(host)
    if ":" in host:
        return f"tcp:host={escapeColons(host)}:port={port}"
    return f"tcp:{host}:{port}"
