"""
Where a forward service connects: a Twisted-style client endpoint string restricted to
what needs no resolver.

C{tcp:HOST:PORT} takes an IPv4 or IPv6 literal only (C{tcp:192.0.2.10:443},
C{tcp:[2001:db8::1]:443}, or Twisted's escaped C{tcp:2001\\:db8\\:\\:1:443}); C{unix:PATH}
a socket path.  netd never resolves a name: a slow or hostile resolver would stall every
connection of the service, and the address a name stands for would change behind the
operator's back.  So a host name is refused when the configuration is read.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint, UNIXClientEndpoint
from twisted.internet.interfaces import IStreamClientEndpoint

from netd.listen.endpoint import splitDescription

__all__ = ["CONNECT_TIMEOUT", "BadTarget", "Target", "parseTarget"]

#: Seconds a backend has to accept, unless the target names its own C{timeout=}: long
#: enough for a loaded backend, short enough that a client is not left hanging (Twisted's
#: own default is 30).
CONNECT_TIMEOUT = 10.0


class BadTarget(ValueError):
    """A forward target netd cannot use; the message says why, in one line."""


@dataclass(frozen=True)
class Target:
    """
    A parsed forward target.

    @ivar kind: C{"tcp"} or C{"unix"}.
    @ivar host: the IP literal (C{tcp}), without brackets.
    @ivar port: the TCP port (C{tcp}).
    @ivar path: the socket path (C{unix}).
    @ivar timeout: seconds to wait for the backend to accept.
    @ivar description: the text it was parsed from (for logs and reload comparison).
    """

    kind: str
    description: str
    host: str = ""
    port: int = 0
    path: str = ""
    timeout: float = CONNECT_TIMEOUT

    @property
    def version(self) -> int:
        """4 or 6 for an IP target, 0 for a unix socket."""
        return ipaddress.ip_address(self.host).version if self.kind == "tcp" else 0

    def endpoint(self, reactor: Any) -> IStreamClientEndpoint:
        """
        A client endpoint for this target.  Both TCP endpoints connect to an IP literal
        directly; neither asks a resolver.
        """
        if self.kind == "unix":
            return UNIXClientEndpoint(reactor, self.path, timeout=self.timeout)
        endpoint = TCP6ClientEndpoint if self.version == 6 else TCP4ClientEndpoint
        return endpoint(reactor, self.host, self.port, timeout=self.timeout)


def parseTarget(description: str) -> Target:
    """
    @raise BadTarget: for anything but C{tcp:IP:PORT} or C{unix:PATH} (each with an
        optional C{timeout=SECONDS}), and for a host name in place of an IP literal.
    """
    if not isinstance(description, str) or not description:
        raise BadTarget(f"expected an endpoint string like tcp:192.0.2.10:443, got {description!r}")
    kind, _, rest = description.partition(":")
    if kind == "tcp":
        return _tcp(description, rest)
    if kind == "unix":
        return _unix(description)
    raise BadTarget(f"unsupported forward target {description!r}: use tcp:IP:PORT or unix:PATH")


def _tcp(description: str, rest: str) -> Target:
    if rest.startswith("["):  # tcp:[2001:db8::1]:443
        literal, bracket, after = rest[1:].partition("]")
        if not bracket or not (after == "" or after.startswith(":")):
            raise BadTarget(f"unclosed [ in forward target {description!r}")
        positional, options = splitDescription("tcp:" + after[1:])
        positional = ["tcp", literal, *positional[1:]]
    else:
        positional, options = splitDescription(description)
    timeout = _timeout(description, _pop(options, "timeout"))
    host = _pop(options, "host")
    port = _pop(options, "port")
    _refuseOptions(description, options)
    given = positional[1:]
    if host is None and given:
        host = given.pop(0)
    if port is None and given:
        port = given.pop(0)
    if given or host is None or port is None:
        raise BadTarget(f"expected tcp:IP:PORT, got {description!r}")
    return Target(
        "tcp", description, host=_ipLiteral(host), port=_port(description, port), timeout=timeout
    )


def _unix(description: str) -> Target:
    positional, options = splitDescription(description)
    timeout = _timeout(description, _pop(options, "timeout"))
    path = _pop(options, "path")
    _pop(options, "checkPID")  # Twisted's option; meaningless for a backend socket
    _refuseOptions(description, options)
    given = positional[1:]
    if path is None and len(given) == 1:
        path = given[0]
    elif given:
        raise BadTarget(f"expected unix:PATH, got {description!r}")
    if not path:
        raise BadTarget(f"expected unix:PATH, got {description!r}")
    return Target("unix", description, path=path, timeout=timeout)


def _pop(options: dict[str, str], key: str) -> str | None:
    """Take C{key} out of C{options}: what is left over is unknown."""
    return options.pop(key) if key in options else None


def _ipLiteral(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        raise BadTarget(
            f"{host!r} is not an IP address: netd never resolves names, give the backend's "
            "IPv4 or IPv6 literal"
        ) from None


def _port(description: str, text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 < port < 65536:
        raise BadTarget(f"port {text!r} of {description!r} is not a number from 1 to 65535")
    return port


def _timeout(description: str, text: str | None) -> float:
    if text is None:
        return CONNECT_TIMEOUT
    try:
        timeout = float(text)
    except ValueError:
        timeout = -1.0
    if not 0 < timeout <= 3600:
        raise BadTarget(f"timeout {text!r} of {description!r} is not a number of seconds (0-3600]")
    return timeout


def _refuseOptions(description: str, options: dict[str, str]) -> None:
    if options:
        raise BadTarget(
            f"unknown option {next(iter(options))!r} in forward target {description!r} "
            "(known: timeout)"
        )
