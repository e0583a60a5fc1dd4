"""
netd's reactors: Twisted's epoll, poll and select reactors with eager-write server
transports (L{netd.fastpath.transport}), and for epoll a leaner event dispatch.

Twisted's C{doPoll} wraps every ready descriptor in C{log.callWithLogger}, which builds
and pushes a logging context per event (measured at about a fifth of the CPU of an
echo request).  netd logs through C{twisted.logger} namespaces, not that context, so
the epoll reactor here dispatches directly; C{_doReadOrWrite} still catches and logs
whatever a protocol raises.  Everything else is Twisted's reactor unchanged.
"""

from __future__ import annotations

import errno
import socket
from typing import Any

from twisted.internet import epollreactor, pollreactor, selectreactor
from twisted.internet.main import installReactor
from twisted.python import log

from netd.fastpath.transport import EagerTCPPort, EagerUNIXPort, FastUDPPort

__all__ = ["NetdEPollReactor", "NetdPollReactor", "NetdSelectReactor", "install"]


class EagerPortsMixin:
    """
    Listen (and adopt systemd's sockets) with the eager-write stream transports and the
    lighter UDP port.
    """

    def listenTCP(self, port: int, factory: Any, backlog: int = 50, interface: str = "") -> Any:
        p = EagerTCPPort(port, factory, backlog, interface, self)
        p.startListening()
        return p

    def listenUNIX(
        self, address: Any, factory: Any, backlog: int = 50, mode: int = 0o666, wantPID: int = 0
    ) -> Any:
        p = EagerUNIXPort(address, factory, backlog, mode, self, wantPID)
        p.startListening()
        return p

    def listenUDP(
        self, port: int, protocol: Any, interface: str = "", maxPacketSize: int = 8192
    ) -> Any:
        p = FastUDPPort(port, protocol, interface, maxPacketSize, self)
        p.startListening()
        return p

    def adoptDatagramPort(
        self, fileDescriptor: int, addressFamily: Any, protocol: Any, maxPacketSize: int = 8192
    ) -> Any:
        if addressFamily not in (socket.AF_INET, socket.AF_INET6):
            return super().adoptDatagramPort(fileDescriptor, addressFamily, protocol, maxPacketSize)  # type: ignore[misc]
        p = FastUDPPort._fromListeningDescriptor(
            self, fileDescriptor, addressFamily, protocol, maxPacketSize=maxPacketSize
        )
        p.startListening()
        return p

    def adoptStreamPort(self, fileDescriptor: int, addressFamily: Any, factory: Any) -> Any:
        if addressFamily not in self._supportedAddressFamilies:  # type: ignore[attr-defined]
            return super().adoptStreamPort(fileDescriptor, addressFamily, factory)  # type: ignore[misc]
        if addressFamily == socket.AF_UNIX:
            p = EagerUNIXPort._fromListeningDescriptor(self, fileDescriptor, factory)
        else:
            p = EagerTCPPort._fromListeningDescriptor(self, fileDescriptor, addressFamily, factory)
        p.startListening()
        return p


class NetdEPollReactor(EagerPortsMixin, epollreactor.EPollReactor):
    """epoll, eager writes, direct dispatch."""

    def doPoll(self, timeout: float | None) -> None:
        try:
            events = self._poller.poll(-1 if timeout is None else timeout, len(self._selectables))
        except OSError as err:
            if err.errno == errno.EINTR:
                return
            raise
        selectables = self._selectables
        dispatch = self._doReadOrWrite
        for fd, event in events:
            selectable = selectables.get(fd)
            if selectable is None:
                continue
            try:
                dispatch(selectable, fd, event)
            except BaseException:
                log.err(None, "unhandled error dispatching an event")

    doIteration = doPoll


class NetdPollReactor(EagerPortsMixin, pollreactor.PollReactor):
    """poll with eager writes."""


class NetdSelectReactor(EagerPortsMixin, selectreactor.SelectReactor):
    """select with eager writes."""


_CLASSES = {"epoll": NetdEPollReactor, "poll": NetdPollReactor, "select": NetdSelectReactor}


def install(name: str) -> None:
    """Install netd's variant of reactor C{name} (epoll, poll or select)."""
    installReactor(_CLASSES[name]())
