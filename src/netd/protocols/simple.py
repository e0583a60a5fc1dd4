"""
Echo (RFC 862), Discard (RFC 863) and Character Generator (RFC 864).

Written afresh rather than taken from L{twisted.protocols.wire}: its C{Chargen} writes
one fixed chunk instead of RFC 864's rotating lines and registers no producer.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IAddress, IPushProducer
from twisted.internet.protocol import Protocol
from zope.interface import implementer

from netd.plugin import Served, ServiceContext, ServiceDatagramProtocol, ServiceFactory

__all__ = [
    "Chargen",
    "ChargenDatagram",
    "Discard",
    "DiscardDatagram",
    "Echo",
    "EchoDatagram",
    "chargenLines",
    "buildChargen",
    "buildDiscard",
    "buildEcho",
]

_PRINTABLE = bytes(range(0x20, 0x7F))  # the 95 printable ASCII characters
LINE_WIDTH = 72


def chargenLines() -> bytes:
    """
    One full cycle of RFC 864's pattern: 95 lines of 72 characters plus CRLF, line
    M{i} starting at the M{i}th printable character.  The stream repeats it forever.
    """
    doubled = _PRINTABLE * 2
    return b"".join(doubled[i : i + LINE_WIDTH] + b"\r\n" for i in range(len(_PRINTABLE)))


CYCLE = chargenLines()
#: What the stream writes each time: whole cycles, so every chunk starts at line 0.
_CHUNK = CYCLE * 4
_RING = CYCLE * 2
#: Datagram replies: RFC 864 allows up to 512 bytes; 6 whole lines is 444.
DATAGRAM_LINES = 512 // (LINE_WIDTH + 2)


class Echo(Protocol):
    """
    RFC 862: send back every byte received, until the client closes.

    The transport is registered as its own producer: when the client stops reading and
    the write buffer fills, Twisted pauses reading from that client instead of buffering
    without bound, and resumes once the buffer drains.
    """

    def connectionMade(self) -> None:
        self.transport.registerProducer(self.transport, True)

    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)

    def connectionLost(self, reason: Any = None) -> None:
        self.transport.unregisterProducer()


class Discard(Protocol):
    """RFC 863: read and drop everything, never write."""

    def dataReceived(self, data: bytes) -> None:
        pass


@implementer(IPushProducer)
class Chargen(Protocol):
    """
    RFC 864: stream the rotating pattern until the client closes.

    A push producer: the transport pauses it when its buffer is full and resumes it
    once drained, so a client that stops reading costs one buffer, not unbounded memory.
    Each burst is capped, and a transport that never pushes back (an in-memory test
    transport, say) is fed again on the next reactor turn rather than in a tight loop.
    """

    #: Bytes queued per burst at most; the reactor's transports pause at 64 KiB.
    burst = len(_CHUNK) * 3
    _paused = True
    _pending: Any = None

    def connectionMade(self) -> None:
        self.transport.registerProducer(self, True)
        self.resumeProducing()

    def _produce(self) -> None:
        self._pending = None
        sent = 0
        while not self._paused and sent < self.burst:
            sent += len(_CHUNK)
            self.transport.write(_CHUNK)
        if not self._paused:
            self._pending = self.factory.clock.callLater(0, self._produce)

    def pauseProducing(self) -> None:
        self._paused = True
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None

    def resumeProducing(self) -> None:
        if self._paused:
            self._paused = False
            self._produce()

    def stopProducing(self) -> None:
        self.pauseProducing()

    def connectionLost(self, reason: Any = None) -> None:
        self.pauseProducing()


class EchoDatagram(ServiceDatagramProtocol):
    """RFC 862 over UDP: send each datagram back to where it came from."""

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        self.transport.write(datagram, addr)


class DiscardDatagram(ServiceDatagramProtocol):
    """RFC 863 over UDP: drop every datagram."""

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        pass


class ChargenDatagram(ServiceDatagramProtocol):
    """RFC 864 over UDP: answer any datagram with a few lines of the pattern."""

    _line = 0

    def datagramReceived(self, datagram: bytes, addr: IAddress) -> None:
        width = LINE_WIDTH + 2
        start = self._line * width
        reply = _RING[start : start + DATAGRAM_LINES * width]
        self._line = (self._line + DATAGRAM_LINES) % len(_PRINTABLE)
        self.transport.write(reply, addr)


def buildEcho(context: ServiceContext) -> Served:
    return Served(stream=ServiceFactory(Echo, context), datagram=lambda: EchoDatagram(context))


def buildDiscard(context: ServiceContext) -> Served:
    return Served(
        stream=ServiceFactory(Discard, context), datagram=lambda: DiscardDatagram(context)
    )


def buildChargen(context: ServiceContext) -> Served:
    return Served(
        stream=ServiceFactory(Chargen, context), datagram=lambda: ChargenDatagram(context)
    )
