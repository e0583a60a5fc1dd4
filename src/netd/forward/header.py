"""
The PROXY protocol header a forward service writes first when C{send-proxy} is set, so
the backend learns the real client (HAProxy's C{send-proxy} / C{send-proxy-v2}).

The reading side is L{netd.admission.proxyheader}; this is its counterpart, written from the
specification (haproxy's C{doc/proxy-protocol.txt}): version 1 is one text line,
version 2 a 16-byte binary header plus the addresses.  Only what the spec calls the
C{PROXY} command over TCP is sent for IP peers; a peer without an IP address (a unix
socket client) is sent as C{UNKNOWN} (v1) or the C{LOCAL} command (v2), which tells the
backend to use the connection's own addresses.
"""

from __future__ import annotations

import ipaddress
import struct
from typing import Any

__all__ = ["SIGNATURE", "VERSIONS", "proxyHeader"]

#: The v2 signature: it cannot start a valid request of any common text protocol.
SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
VERSIONS = ("v1", "v2")

_V2_PROXY = 0x21  # version 2, command PROXY
_V2_LOCAL = 0x20  # version 2, command LOCAL
_TCP4 = 0x11  # AF_INET, STREAM
_TCP6 = 0x21  # AF_INET6, STREAM
_UNSPEC = 0x00

_IP = ipaddress.IPv4Address | ipaddress.IPv6Address


def proxyHeader(version: str, source: Any, destination: Any) -> bytes:
    """
    The header announcing a connection from C{source} to C{destination}.

    @param version: C{"v1"} or C{"v2"}.
    @param source: the client's address (an L{IAddress}: C{host} and C{port} for IP).
    @param destination: the address the client connected to.
    @raise ValueError: for an unknown version.
    """
    if version not in VERSIONS:
        raise ValueError(f"unknown PROXY protocol version {version!r}; choose v1 or v2")
    pair = _ipPair(source, destination)
    if version == "v1":
        return _v1(pair)
    return _v2(pair)


def _v1(pair: tuple[_IP, int, _IP, int] | None) -> bytes:
    if pair is None:
        return b"PROXY UNKNOWN\r\n"
    src, srcPort, dst, dstPort = pair
    family = "TCP4" if src.version == 4 else "TCP6"
    return f"PROXY {family} {src} {dst} {srcPort} {dstPort}\r\n".encode("ascii")


def _v2(pair: tuple[_IP, int, _IP, int] | None) -> bytes:
    if pair is None:
        return SIGNATURE + struct.pack("!BBH", _V2_LOCAL, _UNSPEC, 0)
    src, srcPort, dst, dstPort = pair
    addresses = src.packed + dst.packed + struct.pack("!HH", srcPort, dstPort)
    family = _TCP4 if src.version == 4 else _TCP6
    return SIGNATURE + struct.pack("!BBH", _V2_PROXY, family, len(addresses)) + addresses


def _ipPair(source: Any, destination: Any) -> tuple[_IP, int, _IP, int] | None:
    """
    Both addresses as IPs of one family, or C{None} when either is not an IP address.

    A dual-stack listener reports an IPv4 client as C{::ffff:a.b.c.d}: sent as IPv4
    when the other side is IPv4 (or mapped too), so a backend's IPv4 rules see it as
    it is; two genuinely different families are both sent as IPv6, the only family
    that holds both.
    """
    src, dst = _ip(source), _ip(destination)
    if src is None or dst is None:
        return None
    src, dst = _unmapped(src), _unmapped(dst)
    if src.version != dst.version:
        src, dst = _asV6(src), _asV6(dst)
    return src, int(source.port), dst, int(destination.port)


def _ip(address: Any) -> _IP | None:
    host = getattr(address, "host", None)
    port = getattr(address, "port", None)
    if not isinstance(host, str) or not isinstance(port, int) or not 0 <= port <= 65535:
        return None
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])  # a zone index has no place on the wire
    except ValueError:
        return None


def _unmapped(ip: _IP) -> _IP:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _asV6(ip: _IP) -> ipaddress.IPv6Address:
    if isinstance(ip, ipaddress.IPv4Address):
        return ipaddress.IPv6Address(f"::ffff:{ip}")
    return ip
