"""
Where the client connects: C{[tcp:|udp:|tls:]HOST[:PORT]} or C{unix:PATH}.

Hosts are IP literals or C{localhost}: the client never asks a resolver, so what it
prints is exactly the address it talked to and a slow DNS server cannot stall it.
Omitting the port picks netd's default port for the service (the classic port plus
10000), so C{netd client echo localhost} reaches C{netd --proto echo} out of the box;
give C{:7} to reach a classic inetd.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

__all__ = ["BadEndpoint", "DEFAULT_PORTS", "Endpoint", "TRANSPORTS", "parseEndpoint"]

#: netd's default ports: the classic port (RFC 862-868, syslog) plus 10000.
DEFAULT_PORTS: dict[str, int] = {
    "echo": 10007,
    "discard": 10009,
    "daytime": 10013,
    "chargen": 10019,
    "time": 10037,
    "logger": 10514,
    "linelogger": 10601,
}

#: Endpoint prefixes; C{ssl} is accepted as Twisted's name for C{tls}.
TRANSPORTS = {"tcp": "tcp", "udp": "udp", "tls": "tls", "ssl": "tls", "unix": "unix"}

#: The one name the client maps itself, without a resolver.
LOCALHOST = "127.0.0.1"


class BadEndpoint(ValueError):
    """An endpoint the client cannot use; the message names it and says why."""


@dataclass(frozen=True)
class Endpoint:
    """
    A parsed endpoint.

    @ivar transport: C{tcp}, C{udp}, C{tls} or C{unix}.
    @ivar host: an IP literal (empty for unix).
    @ivar port: the port (0 for unix).
    @ivar path: the socket path (unix only).
    @ivar serverName: the host as typed, which a TLS certificate must name.
    """

    transport: str
    host: str = ""
    port: int = 0
    path: str = ""
    serverName: str = ""

    @property
    def datagram(self) -> bool:
        """Whether each message is a datagram (UDP) rather than part of a stream."""
        return self.transport == "udp"

    @property
    def family(self) -> socket.AddressFamily:
        if self.transport == "unix":
            return socket.AF_UNIX
        return socket.AF_INET6 if ":" in self.host else socket.AF_INET

    @property
    def address(self) -> str | tuple[str, int]:
        """What C{socket.connect} takes."""
        return self.path if self.transport == "unix" else (self.host, self.port)

    def __str__(self) -> str:
        if self.transport == "unix":
            return f"unix:{self.path}"
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parseEndpoint(text: str, defaultPort: int | None = None) -> Endpoint:
    """
    Parse C{text}; C{defaultPort} is used when it names no port.

    @raise BadEndpoint: for an unknown prefix, a host that is not an IP literal or
        C{localhost}, a missing or bad port, an empty unix path.
    """
    prefix, sep, rest = text.partition(":")
    transport = TRANSPORTS.get(prefix.lower()) if sep else None
    if transport is None:
        transport, rest = "tcp", text
    if transport == "unix":
        if not rest:
            raise BadEndpoint(f"bad endpoint {text!r}: no socket path after 'unix:'")
        return Endpoint("unix", path=rest)
    hostText, portText = _splitHostPort(text, rest)
    host = _literalHost(text, hostText)
    return Endpoint(transport, host, _port(text, portText, defaultPort), serverName=hostText)


def _splitHostPort(text: str, rest: str) -> tuple[str, str | None]:
    """Split C{rest} into host and port text; IPv6 needs brackets to carry a port."""
    if rest.startswith("["):
        host, bracket, after = rest[1:].partition("]")
        if not bracket or (after and not after.startswith(":")):
            raise BadEndpoint(f"bad endpoint {text!r}: expected [IPV6]:PORT")
        return host, after[1:] if after else None
    if rest.count(":") > 1:
        # An unbracketed IPv6 literal: all of it is the host.
        return rest, None
    host, sep, port = rest.partition(":")
    return host, port if sep else None


def _literalHost(text: str, host: str) -> str:
    if not host:
        raise BadEndpoint(f"bad endpoint {text!r}: no host")
    if host.lower() == "localhost":
        return LOCALHOST
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        raise BadEndpoint(
            f"bad endpoint {text!r}: {host!r} is not an IP address "
            "(netd client never uses DNS: give an IP literal or localhost; IPv6 as [::1]:PORT)"
        ) from None


def _port(text: str, port: str | None, default: int | None) -> int:
    if port is None:
        if default is None:
            raise BadEndpoint(f"bad endpoint {text!r}: no port")
        return default
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise BadEndpoint(f"bad endpoint {text!r}: port {port!r} is not in 1-65535")
    return int(port)
