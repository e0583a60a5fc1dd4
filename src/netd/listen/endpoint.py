"""
Listen descriptions: Twisted's server endpoint strings plus netd's own C{udp:} and
C{systemd-udp:}.

Twisted has no datagram endpoint string, so C{udp:PORT[:interface=ADDR]} is parsed here
with the same escaping rules (C{\\:} for a literal colon, as in C{tcp6:}), and so is
C{systemd-udp:name=NAME} (or C{index=N}): a datagram socket inherited from systemd, the
counterpart of Twisted's C{systemd:} for streams.  Every description is validated when
the options are parsed, before any reactor exists, so a typo is a usage error rather
than a failure after half the listeners are up.

C{ssl:} keeps Twisted's syntax but is netd's own (L{netd.listen.tls}): a TLS 1.2 floor, modern
ciphers, and client certificates when the service policy asks for them.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from twisted.internet import defer, fdesc
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IListeningPort, IReactorUDP, IStreamServerEndpoint
from twisted.internet.protocol import DatagramProtocol, Factory
from twisted.python.systemd import ListenFDs

from netd.interfaces import DATAGRAM, STREAM
from netd.listen.inherited import (
    NotInherited,
    inheritedDescriptor,
    inheritedFamily,
    processListenFDs,
)

if TYPE_CHECKING:
    from netd.listen.tls import ClientAuthorities, TLSListen

__all__ = [
    "BadListen",
    "DatagramServerEndpoint",
    "InheritedDatagramEndpoint",
    "InheritedStreamEndpoint",
    "ListenSpec",
    "parseListen",
    "splitDescription",
]

#: Bigger than any UDP payload, so an echoed datagram is never silently truncated
#: (Twisted's default C{maxPacketSize} is 8192).
MAX_DATAGRAM = 65535
#: The listen backlog of a C{tcp:}, C{tcp6:}, C{unix:} or C{ssl:} listener that names
#: none.  Twisted's 50 overflowed at any burst of connections faster than the reactor
#: accepts them: the kernel then drops the SYN and the client waits for a retransmission
#: (1 s, then 3 s); 2,500 connections opened in a row took 23 s instead of 0.07 s.  The
#: kernel caps it at C{net.core.somaxconn}.
DEFAULT_BACKLOG = 1024


class BadListen(ValueError):
    """A listen description netd cannot use; the message says why."""


def splitDescription(description: str) -> tuple[list[str], dict[str, str]]:
    """
    Split C{description} at unescaped colons into positional and C{key=value} parts,
    honouring backslash escapes as Twisted's endpoint parser does.
    """
    parts: list[str] = []
    current: list[str] = []
    chars = iter(description)
    for char in chars:
        if char == "\\":
            current.append(next(chars, ""))
        elif char == ":":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    args: list[str] = []
    kwargs: dict[str, str] = {}
    for part in parts[1:]:
        key, sep, value = part.partition("=")
        if sep:
            kwargs[key] = value
        else:
            args.append(part)
    return [parts[0], *args], kwargs


@dataclass(frozen=True)
class DatagramServerEndpoint:
    """
    The missing C{udp:} endpoint: binds a L{DatagramProtocol} with C{listenUDP}.

    Mirrors L{IStreamServerEndpoint.listen} (a L{Deferred} firing with the port) so a
    listener service treats both kinds alike.
    """

    reactor: IReactorUDP
    port: int
    interface: str = ""

    def listen(self, protocol: DatagramProtocol) -> defer.Deferred[IListeningPort]:
        try:
            port = self.reactor.listenUDP(
                self.port, protocol, interface=self.interface, maxPacketSize=MAX_DATAGRAM
            )
        except Exception:
            return defer.fail()
        return defer.succeed(port)


@dataclass(frozen=True)
class InheritedDatagramEndpoint:
    """
    C{systemd-udp:}: serve a datagram socket systemd bound (C{ListenDatagram=}) and passed
    down, found by its C{FileDescriptorName=} or its position.  Twisted adopts only
    stream sockets from an endpoint string.

    Whether the socket exists and is a datagram socket is checked when listening, so a
    mistake is a one-line startup error naming the listener.  The inherited descriptor
    stays open (Twisted serves a duplicate): a reload can adopt it again, and its number
    is never reused for an unrelated file while netd runs.

    @ivar inherited: the sockets to choose from (default: this process's).
    """

    reactor: Any
    name: str | None = None
    index: int | None = None
    inherited: ListenFDs = field(default_factory=processListenFDs)

    def listen(self, protocol: DatagramProtocol) -> defer.Deferred[IListeningPort]:
        try:
            fd = inheritedDescriptor(self.inherited, self.name, self.index)
            family = inheritedFamily(fd, socket.SOCK_DGRAM)
            if family not in (socket.AF_INET, socket.AF_INET6):
                raise NotInherited(
                    f"inherited descriptor {fd} is not an IPv4 or IPv6 socket "
                    f"({socket.AddressFamily(family).name}): netd serves UDP only"
                )
            fdesc.setNonBlocking(fd)
            port = self.reactor.adoptDatagramPort(fd, family, protocol, maxPacketSize=MAX_DATAGRAM)
        except Exception:
            return defer.fail()
        return defer.succeed(port)


@dataclass(frozen=True)
class InheritedStreamEndpoint:
    """
    C{systemd:}: Twisted's endpoint finds the descriptor; this one serves it.

    Unlike Twisted's L{AdoptedStreamServerEndpoint}, it takes the address family from the
    socket (C{ListenStream=7} is IPv6 dual-stack on most hosts, whatever C{domain=} says),
    refuses a datagram socket with a clear error, and leaves the inherited descriptor
    open, so a reload that moves the listener to another service can adopt it again.
    """

    reactor: Any
    fileno: int

    def listen(self, factory: Factory[Any]) -> defer.Deferred[IListeningPort]:
        try:
            family = inheritedFamily(self.fileno, socket.SOCK_STREAM)
            fdesc.setNonBlocking(self.fileno)
            port = self.reactor.adoptStreamPort(self.fileno, family, factory)
        except Exception:
            return defer.fail()
        return defer.succeed(port)


@dataclass(frozen=True)
class ListenSpec:
    """
    One validated C{--listen} value.

    @ivar kind: L{STREAM} or L{DATAGRAM}.
    """

    description: str
    kind: str

    def bindKey(self) -> tuple[str, ...] | None:
        """
        What this listener binds, so two services cannot claim one address:
        C{("TCP", "", "7")} for C{tcp:7} (all interfaces), the path for C{unix:}, or
        C{None} when nothing fixed is bound (port 0, inherited C{systemd:} sockets).
        """
        inner = self.description.removeprefix("haproxy:")
        (kind, *args), kwargs = splitDescription(inner)
        if kind in ("tcp", "tcp6", "ssl", "udp"):
            port = kwargs.get("port", args[0] if args else "0")
            if int(port) == 0:
                return None
            family = "UDP" if kind == "udp" else "TCP"
            interface = kwargs.get("interface") or ("::" if kind == "tcp6" else "0.0.0.0")
            return (family, str(ipaddress.ip_address(interface)), str(int(port)))
        if kind == "unix":
            return ("UNIX", kwargs.get("address", args[0] if args else ""))
        return None

    @property
    def proxied(self) -> bool:
        """
        Whether clients arrive through a PROXY-protocol proxy (C{haproxy:...}).  netd
        reads the header itself (L{netd.admission.proxyheader}), so rules see the real client.
        """
        return self.description.startswith("haproxy:")

    def endpoint(
        self, reactor: Any, clientCA: Callable[[], ClientAuthorities | None] | None = None
    ) -> IStreamServerEndpoint | DatagramServerEndpoint | InheritedDatagramEndpoint:
        """
        The endpoint for C{reactor}, which is only known once it is installed.

        @param clientCA: returns the CAs in force for the service (its policy's, which a
            reload may change), read per C{ssl:} connection; default: no client CA.
        """
        if self.kind == DATAGRAM:
            if self.description.startswith("systemd-udp:"):
                name, index = _systemdSelector(self.description)
                return InheritedDatagramEndpoint(reactor, name, index)
            return _datagramEndpoint(reactor, self.description)
        inner = self.description.removeprefix("haproxy:")
        if inner.startswith("ssl:"):
            from netd.listen.tls import TLSServerEndpoint

            tls = TLSServerEndpoint(reactor, _tlsListen(inner), clientCA or (lambda: None))
            return cast(IStreamServerEndpoint, tls)
        endpoint = serverFromString(reactor, _withBacklog(inner))
        if inner.startswith("systemd:"):
            return cast(IStreamServerEndpoint, InheritedStreamEndpoint(reactor, endpoint.fileno))
        return cast(IStreamServerEndpoint, endpoint)


def parseListen(description: str) -> ListenSpec:
    """
    Validate a listen description.

    @raise BadListen: naming the description and the problem.
    """
    if not description or ":" not in description:
        raise BadListen(f"bad listen endpoint {description!r}: expected TYPE:ARGS, e.g. tcp:7")
    scheme = description.split(":", 1)[0]
    if scheme == "udp":
        _datagramEndpoint(None, description)
        return ListenSpec(description, DATAGRAM)
    if scheme == "systemd-udp":
        _systemdSelector(description)
        return ListenSpec(description, DATAGRAM)
    _checkAddress(description.removeprefix("haproxy:"))
    if scheme == "ssl":
        _checkTLS(description)
        return ListenSpec(description, STREAM)
    if description.startswith("haproxy:ssl:"):
        raise BadListen(
            f"bad listen endpoint {description!r}: haproxy:ssl: is not supported "
            "(a proxy sends its PROXY header before the TLS handshake); "
            "terminate TLS at the proxy, or listen on ssl: directly"
        )
    _checkInherited(description)
    try:
        # The reactor is only stored, not used, while parsing: validate now, bind later.
        serverFromString(cast(Any, None), description)
    except Exception as e:
        raise BadListen(f"bad listen endpoint {description!r}: {_oneLine(e)}") from None
    return ListenSpec(description, STREAM)


def _datagramEndpoint(reactor: Any, description: str) -> DatagramServerEndpoint:
    (_, *args), kwargs = splitDescription(description)
    unknown = set(kwargs) - {"port", "interface"}
    if unknown or len(args) + ("port" in kwargs) != 1:
        raise BadListen(f"bad listen endpoint {description!r}: expected udp:PORT[:interface=ADDR]")
    port = _port(description, kwargs.get("port", args[0] if args else ""))
    interface = _interface(description, kwargs.get("interface", ""))
    return DatagramServerEndpoint(reactor, port, interface)


#: What netd's C{ssl:} takes: Twisted's options less C{sslmethod} (netd sets the
#: versions) and C{dhParameters} (netd offers no finite-field DHE, only ECDHE).
_TLS_OPTIONS = ("port", "interface", "backlog", "privateKey", "certKey", "extraCertChain")
_TLS_REFUSED = {
    "sslmethod": "netd allows TLS 1.2 and 1.3 only",
    "dhParameters": "netd offers ECDHE key exchange only, which needs no parameters",
}


def _withBacklog(description: str) -> str:
    """C{description} (tcp, tcp6, unix) with C{backlog=}L{DEFAULT_BACKLOG} unless it names one."""
    (kind, *_), kwargs = splitDescription(description)
    if kind in ("tcp", "tcp6", "unix") and "backlog" not in kwargs:
        return f"{description}:backlog={DEFAULT_BACKLOG}"
    return description


def _tlsListen(description: str) -> TLSListen:
    """
    C{ssl:PORT:privateKey=KEY[:certKey=CERT][:interface=ADDR][:backlog=N]
    [:extraCertChain=FILE]}, parsed; no file is read.
    C{certKey} defaults to C{privateKey}, as in Twisted (one file holding both).
    """
    from netd.listen.tls import TLSListen

    (_, *args), kwargs = splitDescription(description)
    for option, why in _TLS_REFUSED.items():
        if option in kwargs:
            raise BadListen(
                f"bad listen endpoint {description!r}: {option} is not supported: {why}"
            )
    unknown = sorted(set(kwargs) - set(_TLS_OPTIONS))
    if unknown:
        raise BadListen(
            f"bad listen endpoint {description!r}: unknown option {unknown[0]!r} "
            f"(ssl: takes {', '.join(_TLS_OPTIONS)})"
        )
    if len(args) + ("port" in kwargs) != 1 or not kwargs.get("privateKey"):
        raise BadListen(
            f"bad listen endpoint {description!r}: "
            "expected ssl:PORT:privateKey=KEY:certKey=CERT[:interface=ADDR]"
        )
    backlog = kwargs.get("backlog", str(DEFAULT_BACKLOG))
    if not backlog.isdigit() or int(backlog) < 1:
        raise BadListen(
            f"bad listen endpoint {description!r}: backlog {backlog!r} is not a number >= 1"
        )
    return TLSListen(
        port=_port(description, kwargs.get("port", args[0] if args else "")),
        privateKey=kwargs["privateKey"],
        certKey=kwargs.get("certKey") or kwargs["privateKey"],
        interface=_interface(description, kwargs.get("interface", "")),
        backlog=int(backlog),
        extraCertChain=kwargs.get("extraCertChain"),
    )


def _checkTLS(description: str) -> None:
    """Read every file of an C{ssl:} description now: a bad one is a usage error."""
    from netd.listen.tls import BadCredentials

    try:
        _tlsListen(description).load()
    except BadCredentials as e:
        raise BadListen(f"bad listen endpoint {description!r}: {_oneLine(e)}") from None


def _systemdSelector(description: str) -> tuple[str | None, int | None]:
    """The C{(name, index)} of a C{systemd-udp:} description, exactly one of them set."""
    (_, *args), kwargs = splitDescription(description)
    name, index = kwargs.get("name"), kwargs.get("index")
    if args or set(kwargs) - {"name", "index"} or (name is None) == (index is None) or name == "":
        raise BadListen(
            f"bad listen endpoint {description!r}: "
            "expected systemd-udp:name=NAME or systemd-udp:index=N"
        )
    if index is None:
        return name, None
    if not index.isdigit():
        raise BadListen(
            f"bad listen endpoint {description!r}: index {index!r} is not a number >= 0"
        )
    return None, int(index)


def _checkInherited(description: str) -> None:
    """
    For C{systemd:}, say clearly when the socket was not inherited (Twisted's own parser
    fails with a bare C{KeyError}); malformed descriptions are left to Twisted's parser.
    """
    (kind, *args), kwargs = splitDescription(description.removeprefix("haproxy:"))
    name, index = kwargs.get("name"), kwargs.get("index", "")
    if kind != "systemd" or (name is None) == (index == ""):
        return
    if name is None and not index.isdigit():
        return
    try:
        inheritedDescriptor(processListenFDs(), name, None if name is not None else int(index))
    except NotInherited as e:
        raise BadListen(f"bad listen endpoint {description!r}: {_oneLine(e)}") from None


def _checkAddress(description: str) -> None:
    """Port range and literal interface checks Twisted leaves to bind() time."""
    (kind, *args), kwargs = splitDescription(description)
    if kind not in ("tcp", "tcp6", "ssl"):
        return
    portText = kwargs.get("port", args[0] if args else "")
    _port(description, portText)
    _interface(description, kwargs.get("interface", ""))


def _oneLine(error: Exception) -> str:
    """
    C{error}'s message with its non-printable characters escaped as C{repr} does: the
    messages of Twisted's parser and of file errors quote parts of the description as
    they are, and a CR or ESC there would break the one-line error or reach a terminal.
    """
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(error))


def _port(description: str, text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise BadListen(
            f"bad listen endpoint {description!r}: port {text!r} is not a number"
        ) from None
    if not 0 <= port <= 65535:
        raise BadListen(f"bad listen endpoint {description!r}: port {port} is not in 0-65535")
    return port


def _interface(description: str, text: str) -> str:
    """An interface must be an IP literal: binding to a name would consult the resolver."""
    if text:
        try:
            ipaddress.ip_address(text)
        except ValueError:
            raise BadListen(
                f"bad listen endpoint {description!r}: interface {text!r} is not an IP address"
            ) from None
    return text
