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
from errno import EWOULDBLOCK
from typing import Any

from twisted.internet import main, tcp, unix

__all__ = ["EagerTCPPort", "EagerTCPServer", "EagerUNIXPort", "EagerUNIXServer"]


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
