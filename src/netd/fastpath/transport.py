"""
Server transports that write at once when they can, instead of a reactor turn later.

Twisted's C{transport.write()} always buffers and arms write interest, so each echo
costs an extra C{epoll_ctl} pair and a second loop turn before the bytes leave
(measured: 2 C{epoll_wait} + 2 C{epoll_ctl} per request, against asyncio's one
C{epoll_wait}).  Here, a write to a connection with nothing buffered goes straight to
C{send()}; only what the kernel does not take is buffered, through Twisted's own
C{FileDescriptor.write}, so ordering, producer pausing (backpressure), half-close and
TLS (whose encrypted bytes come through this same C{write}) behave exactly as before.

Accepted TCP connections also get C{TCP_NODELAY}, as asyncio and uvloop set it: with
writes leaving at once, Nagle would only hold back the second of two small writes.

An accepted TCP connection also counts its bytes and can tell an observer when it ends
(C{offersDirectMode}), so netd's policy wrapper can step out of the data path after
admission instead of adding two Python calls to every read and write.
"""

from __future__ import annotations

import socket
from errno import EAGAIN, ECONNREFUSED, EINTR, EMSGSIZE, ENOBUFS, EWOULDBLOCK
from typing import Any

from twisted.internet import abstract, error, main, tcp, udp, unix

__all__ = ["EagerTCPPort", "EagerTCPServer", "EagerUNIXPort", "EagerUNIXServer", "FastUDPPort"]


class EagerWriteMixin:
    """C{write} that sends immediately when nothing is waiting to be sent."""

    socket: socket.socket
    dataBuffer: bytes
    _tempDataLen: int
    connected: int
    disconnecting: int
    _writeDisconnecting: bool
    TLS: bool

    bytesOut = 0

    def write(self, data: bytes) -> None:
        self.bytesOut += len(data)
        if (
            type(data) is bytes
            and not self._tempDataLen
            and not self.dataBuffer
            and self.connected
            and not self.disconnecting
            and not self._writeDisconnecting
            and not self.TLS
        ):
            try:
                sent = self.socket.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                # Let the ordinary write path meet the error and report the loss.
                sent = 0
            if sent == len(data):
                return
            data = data[sent:]
        super().write(data)  # type: ignore[misc]

    def writeSequence(self, iovec: Any) -> None:
        self.write(b"".join(iovec))


class EagerTCPServer(EagerWriteMixin, tcp.Server):
    """
    An accepted TCP connection with eager writes and C{TCP_NODELAY}, that counts its
    bytes and calls C{onConnectionLost(reason)} after its protocol's C{connectionLost}.
    """

    offersDirectMode = True
    bytesIn = 0
    onConnectionLost: Any = None

    def __init__(self, sock: socket.socket, *args: Any, **kwargs: Any) -> None:
        super().__init__(sock, *args, **kwargs)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    def doRead(self) -> Any:
        # Twisted's tcp.Connection.doRead, counting what arrives.
        try:
            data = self.socket.recv(self.bufferSize)
        except OSError as se:
            if se.args[0] == EWOULDBLOCK:
                return None
            return main.CONNECTION_LOST
        self.bytesIn += len(data)
        return self._dataReceived(data)

    def connectionLost(self, reason: Any) -> None:
        observer = self.onConnectionLost
        super().connectionLost(reason)
        if observer is not None:
            observer(reason)


class EagerTCPPort(tcp.Port):
    transport = EagerTCPServer


class EagerUNIXServer(EagerWriteMixin, unix.Server):
    """An accepted unix-socket connection with eager writes."""


class EagerUNIXPort(unix.Port):
    transport = EagerUNIXServer


class FastUDPPort(udp.Port):
    """
    A UDP port whose C{write} checks each destination host once, not per datagram.

    Twisted's C{udp.Port.write} parses the destination with C{isIPAddress} and
    C{isIPv6Address} on every datagram (so that a host name never reaches
    C{sendto()}, which would resolve it); for a service answering its sources that
    was a quarter of the CPU per reply.  Here a host, once checked, is remembered (a
    bounded set).  A reply the kernel cannot queue (EAGAIN, ENOBUFS) is dropped and
    counted rather than raised into the protocol: UDP is lossy, and a flood must not
    become a log of tracebacks.

    @ivar stats: a L{netd.stats.ServiceStats} whose datagram and byte counters each
        reply bumps, if set (the datagram guard sets it).
    @ivar sendDropped: replies the kernel refused to queue.
    """

    countsReplies = True
    stats: Any = None
    sendDropped = 0
    _checked: set[str] | None = None

    def write(self, datagram: bytes, addr: Any = None) -> None:
        if self._connectedAddr or addr is None:
            return super().write(datagram, addr)
        checked = self._checked
        if checked is None:
            checked = self._checked = set()
        host = addr[0]
        if host not in checked:
            self._checkHost(host)
            if len(checked) >= 4096:
                checked.clear()
            checked.add(host)
        try:
            self.socket.sendto(datagram, addr)
        except OSError as se:
            no = se.args[0]
            if no == EINTR:
                return self.write(datagram, addr)
            if no == EMSGSIZE:
                raise error.MessageLengthError("message too long") from None
            if no in (EAGAIN, ENOBUFS, ECONNREFUSED):
                self.sendDropped += 1
                return None
            raise
        stats = self.stats
        if stats is not None:
            stats.datagramsOut += 1
            stats.bytesOut += len(datagram)
        return None

    def _checkHost(self, host: str) -> None:
        """Twisted's checks: an IP literal of this port's family, never a name."""
        isV4, isV6 = abstract.isIPAddress(host), abstract.isIPv6Address(host)
        if not (isV4 or isV6):
            raise error.InvalidAddressError(
                host, "write() only accepts IP addresses, not hostnames"
            )
        if isV4 and self.addressFamily == socket.AF_INET6:
            raise error.InvalidAddressError(host, "IPv6 port write() called with IPv4 address")
        if isV6 and self.addressFamily == socket.AF_INET:
            raise error.InvalidAddressError(host, "IPv4 port write() called with IPv6 address")
