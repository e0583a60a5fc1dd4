"""
One listening socket, many processes: the parent binds and holds, each worker adopts.

The parent binds every listener exactly as a single netd does (the same endpoints, so
privileged ports, C{tcp:0}, C{ssl:} key checks and busy-port errors behave as always)
through L{HoldingReactor}, which stops each port from reading the moment it is bound:
the parent never accepts a connection or reads a datagram.  Each worker is given the
descriptors and serves them through L{AdoptingReactor}, which turns the endpoint's
C{listenTCP}/C{listenUNIX}/C{listenUDP} (or C{adoptStreamPort} for C{systemd:}) into the
adoption of its one inherited descriptor, the mechanism of systemd socket activation.

Both are reached through a listen description's own endpoint (L{HeldListen} and
L{AdoptedListen} are L{ListenSpec}s), so a description means the same thing in every
process: C{haproxy:}, C{ssl:} and the per-listener options need nothing special.

A shared socket must never be shut down by one of its holders (C{shutdown()} ends
listening for every process, where C{close()} only drops one reference), and a shared
unix socket's file belongs to the parent, which removes it when it stops listening.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twisted.internet import defer, tcp
from twisted.internet.interfaces import IListeningPort
from zope.interface import directlyProvides, providedBy

from netd.fastpath.transport import EagerUNIXPort
from netd.listen.endpoint import ListenSpec
from netd.listen.inherited import inheritedFamily

if TYPE_CHECKING:
    from netd.listen.tls import ClientAuthorities

__all__ = [
    "AdoptedListen",
    "AdoptingReactor",
    "HeldListen",
    "HoldingReactor",
    "NotShareable",
    "SharedUNIXPort",
]


class NotShareable(Exception):
    """A listener that did not bind through the reactor, so no worker could adopt it."""


class _ReactorProxy:
    """Everything the wrapped reactor does and provides, except what a subclass overrides."""

    def __init__(self, reactor: Any) -> None:
        self._reactor = reactor
        directlyProvides(self, *providedBy(reactor))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reactor, name)


class HoldingReactor(_ReactorProxy):
    """
    The parent's reactor for one listener: binds as usual, then holds the port without
    reading from it, for the workers to serve.

    @ivar ports: the ports bound through it.
    """

    def __init__(self, reactor: Any) -> None:
        super().__init__(reactor)
        self.ports: list[Any] = []

    def listenTCP(self, *args: Any, **kwargs: Any) -> Any:
        return self._hold(self._reactor.listenTCP(*args, **kwargs))

    def listenUNIX(self, *args: Any, **kwargs: Any) -> Any:
        return self._hold(self._reactor.listenUNIX(*args, **kwargs))

    def listenUDP(self, *args: Any, **kwargs: Any) -> Any:
        return self._hold(self._reactor.listenUDP(*args, **kwargs))

    def adoptStreamPort(self, *args: Any, **kwargs: Any) -> Any:
        return self._hold(self._reactor.adoptStreamPort(*args, **kwargs))

    def adoptDatagramPort(self, *args: Any, **kwargs: Any) -> Any:
        return self._hold(self._reactor.adoptDatagramPort(*args, **kwargs))

    def _hold(self, port: Any) -> Any:
        # Bound in the same reactor turn as the call: no connection was accepted yet.
        port.stopReading()
        # Twisted shuts a stream port's socket down when it stops listening, which would
        # end listening in every worker too; closing the parent's reference is enough.
        port._shouldShutdown = False
        self.ports.append(port)
        return port


@dataclass(frozen=True)
class HeldEndpoint:
    """A listener's own endpoint, bound through a L{HoldingReactor}."""

    inner: Any
    holding: HoldingReactor
    description: str

    def listen(self, target: Any) -> defer.Deferred[IListeningPort]:
        def check(port: IListeningPort) -> IListeningPort:
            if port not in self.holding.ports:
                port.stopListening()
                raise NotShareable(
                    f"{self.description} does not bind through the reactor, "
                    "so it cannot be shared with worker processes"
                )
            return port

        return self.inner.listen(target).addCallback(check)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class HeldListen(ListenSpec):
    """A listen description the parent binds and holds for its workers."""

    def endpoint(
        self, reactor: Any, clientCA: Callable[[], ClientAuthorities | None] | None = None
    ) -> Any:
        holding = HoldingReactor(reactor)
        return HeldEndpoint(super().endpoint(holding, clientCA), holding, self.description)


class SharedUNIXPort(EagerUNIXPort):
    """
    A unix socket adopted from the parent, served as it is: Twisted's adoption would
    C{chmod} the socket file (which a worker running under C{twistd --uid} may not own)
    and C{listen()} again (resetting the backlog the parent chose); when it stops, the
    socket file stays (the parent removes it) and the socket is closed, not shut down.
    """

    _shouldShutdown = False

    def startListening(self) -> None:
        tcp._reservedFD.reserve()  # as Twisted's ports do, for accept() under EMFILE
        skt, self._preexistingSocket = self._preexistingSocket, None
        self.factory.doStart()
        self.connected = True
        self.socket = skt
        self.fileno = skt.fileno
        self.numberAccepts = 100
        self.startReading()

    def connectionLost(self, reason: Any) -> None:
        tcp.Port.connectionLost(self, reason)


class AdoptingReactor(_ReactorProxy):
    """
    A worker's reactor for one listener: whatever the endpoint asks to listen on, the
    port serves the descriptor C{fd} inherited from the parent.  The inherited
    descriptor is closed once adopted (the port holds its own duplicate), so a
    listener the parent drops is closed for good when the workers stop serving it.
    """

    def __init__(self, reactor: Any, fd: int) -> None:
        super().__init__(reactor)
        self.fd = fd

    def listenTCP(self, port: int, factory: Any, backlog: int = 50, interface: str = "") -> Any:
        return self._stream(factory)

    def listenUNIX(self, address: Any, factory: Any, *args: Any, **kwargs: Any) -> Any:
        return self._stream(factory)

    def adoptStreamPort(self, fileDescriptor: int, addressFamily: Any, factory: Any) -> Any:
        return self._stream(factory)

    def listenUDP(
        self, port: int, protocol: Any, interface: str = "", maxPacketSize: int = 8192
    ) -> Any:
        return self._datagram(protocol, maxPacketSize)

    def adoptDatagramPort(
        self, fileDescriptor: int, addressFamily: Any, protocol: Any, maxPacketSize: int = 8192
    ) -> Any:
        return self._datagram(protocol, maxPacketSize)

    def _stream(self, factory: Any) -> Any:
        family = inheritedFamily(self.fd, socket.SOCK_STREAM)
        if family == socket.AF_UNIX:
            port = SharedUNIXPort._fromListeningDescriptor(self._reactor, self.fd, factory)
            port.startListening()
        else:
            port = self._reactor.adoptStreamPort(self.fd, family, factory)
        os.close(self.fd)
        return port

    def _datagram(self, protocol: Any, maxPacketSize: int) -> Any:
        family = inheritedFamily(self.fd, socket.SOCK_DGRAM)
        port = self._reactor.adoptDatagramPort(self.fd, family, protocol, maxPacketSize)
        os.close(self.fd)
        return port


@dataclass(frozen=True)
class AdoptedListen(ListenSpec):
    """A listen description a worker serves on the descriptor C{fd} from its parent."""

    fd: int = -1

    def endpoint(
        self, reactor: Any, clientCA: Callable[[], ClientAuthorities | None] | None = None
    ) -> Any:
        return super().endpoint(AdoptingReactor(reactor, self.fd), clientCA)
