"""
The PROXY protocol header (v1 text, v2 binary) as sent by HAProxy in front of netd.

Twisted's own C{haproxy:} wrapper cannot be used as is: it connects the wrapped
protocol before the header arrives (so a rule sees the proxy's address, not the
client's), it drops a header split across reads, and it trusts any peer.  netd reads
the header itself, with Twisted's v1 and v2 parsers doing the parsing, and decides on
the connection only once the real client is known.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from twisted.internet.address import IPv6Address
from twisted.protocols.haproxy._exceptions import InvalidProxyHeader
from twisted.protocols.haproxy._info import ProxyInfo
from twisted.protocols.haproxy._v1parser import V1Parser
from twisted.protocols.haproxy._v2parser import V2Parser

__all__ = ["InvalidProxyHeader", "ProxyHeaderParser"]

_V1 = b"PROXY "
_V2 = V2Parser.PREFIX
_SNIFF = len(_V2) + 4  # the v2 fixed header: signature, version/command, family, length
_V1_MAX = 107  # the longest v1 line, CRLF included


def _checkAddress(addr: Any) -> None:
    """Refuse a v1 address that is not an IP literal of its family with a 16-bit port."""
    if addr is None:
        return
    try:
        host = ipaddress.ip_address(addr.host)
    except ValueError:
        raise InvalidProxyHeader() from None
    if host.version != (6 if isinstance(addr, IPv6Address) else 4):
        raise InvalidProxyHeader()
    if not 0 <= addr.port <= 65535:
        raise InvalidProxyHeader()


class _V1Parser(V1Parser):
    """
    Twisted's v1 parser, held to the spec: it limits only a line still missing its
    CRLF, takes any word as an address and any integer as a port, lets C{int()}'s
    C{ValueError} escape, and refuses the spec's own C{PROXY UNKNOWN} line.
    """

    @classmethod
    def parse(cls, line: bytes) -> ProxyInfo:
        if len(line) + 2 > _V1_MAX:
            raise InvalidProxyHeader()
        if line == b"PROXY UNKNOWN":
            return ProxyInfo(line, None, None)
        try:
            info = super().parse(line)
        except ValueError:  # a port that is not a number, an address that is not ASCII
            raise InvalidProxyHeader() from None
        _checkAddress(info.source)
        _checkAddress(info.destination)
        return info


class ProxyHeaderParser:
    """
    Feed bytes as they arrive; get C{(info, rest)} once the header is complete,
    C{(None, b"")} before.  Memory is bounded by the header's own limits (107 bytes for
    v1, 16 + 65535 for v2).

    @raise InvalidProxyHeader: from L{feed}, for anything that is not a valid header.
    """

    def __init__(self) -> None:
        self._sniffed = b""
        self._parser: V1Parser | V2Parser | None = None

    def feed(self, data: bytes) -> tuple[Any, bytes]:
        if self._parser is None:
            self._sniffed += data
            data, self._sniffed = self._sniffed, b""
            head = data[:_SNIFF]
            if head.startswith(_V2) and len(head) >= _SNIFF:
                if head[12] & 0xF0 != 0x20:
                    raise InvalidProxyHeader()
                self._parser = V2Parser()
            elif head.startswith(_V1):
                self._parser = _V1Parser()
            elif _V2.startswith(head[: len(_V2)]) or _V1.startswith(head[: len(_V1)]):
                self._sniffed = data  # a prefix of a signature: wait for more
                return None, b""
            else:
                raise InvalidProxyHeader()
        info, rest = self._parser.feed(data)
        if info is None:
            return None, b""
        return info, rest or b""
