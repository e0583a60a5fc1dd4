"""
The two connections of one forwarded connection, each relaying what it reads to the
other, with backpressure and half-close both ways.

Twisted's own L{twisted.protocols.portforward} shows the shape but reads without limit
(a fast client and a slow backend grow netd's memory without bound) and turns a
half-close into a full close (a client that shuts down its sending side to say "that
was the whole request" never gets the answer).  Here each side is registered as the
streaming producer of the other side's transport: when a transport's write buffer is
full, Twisted pauses reading on the other connection until it drains.  An end of input
on one side shuts down the sending side of the other (C{loseWriteConnection}), and a
connection is closed once both of its directions are done.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IHalfCloseableProtocol, INegotiated, IPushProducer
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from zope.interface import implementer

__all__ = ["BackendSide", "Side", "canHalfClose"]


def canHalfClose(transport: Any) -> bool:
    """
    Whether C{transport} can shut down only its sending direction.  Twisted's TLS layer
    cannot (the C{loseWriteConnection} it would reach belongs to the TCP socket beneath
    the TLS records, and would cut them); it is recognised by L{INegotiated}, which every
    Twisted TLS transport provides and no plain one does.
    """
    return not INegotiated.providedBy(transport) and hasattr(transport, "loseWriteConnection")


@implementer(IHalfCloseableProtocol, IPushProducer)
class Side(Protocol):
    """
    One connection of a relay: what it reads is written to its peer's transport.

    As the registered producer of the peer's transport, it is paused when that
    transport cannot take more.  Reading can also be paused for reasons of the
    subclass (L{pauseReading}); it resumes when no reason is left.

    @ivar peer: the other side, once both are connected.
    @ivar readClosed: the connection will deliver no more bytes.
    @ivar writeClosed: the connection's sending direction is shut down.
    """

    #: A stream transport that is also a consumer and a push producer (TCP, unix,
    #: TLS, or netd's guard in front of one of them).
    transport: Any
    peer: Side | None = None
    readClosed = False
    writeClosed = False
    _writeShutting = False

    def __init__(self) -> None:
        self._pausedFor: set[str] = set()

    def link(self, peer: Side) -> None:
        """Relay to C{peer}; reading here pauses whenever C{peer}'s transport is full."""
        self.peer = peer
        peer.transport.registerProducer(self, True)

    def relayed(self, count: int) -> None:
        """Called with the size of each chunk relayed to the peer (for counters)."""

    def dataReceived(self, data: bytes) -> None:
        peer = self.peer
        if peer is not None:
            self.relayed(len(data))
            peer.transport.write(data)

    # -- reading paused for a reason; the peer's transport pauses us as a producer

    def pauseReading(self, reason: str) -> None:
        if not self._pausedFor and not self.readClosed:
            self.transport.pauseProducing()
        self._pausedFor.add(reason)

    def resumeReading(self, reason: str) -> None:
        if reason not in self._pausedFor:
            return
        self._pausedFor.discard(reason)
        if not self._pausedFor and not self.readClosed and self.connected:
            self.transport.resumeProducing()

    def pauseProducing(self) -> None:
        self.pauseReading("peer")

    def resumeProducing(self) -> None:
        self.resumeReading("peer")

    def stopProducing(self) -> None:
        """The peer's transport is gone: nothing read here can be delivered any more."""
        self.close()

    # -- the ends of each direction

    def readConnectionLost(self) -> None:
        """No more input: let the peer send what it has, then shut down its sending side."""
        self.readClosed = True
        if self.peer is not None:
            self.peer.shutdownWrite()
        self._closeIfDone()

    def writeConnectionLost(self) -> None:
        self.writeClosed = True
        self._closeIfDone()

    def shutdownWrite(self) -> None:
        """
        The peer's input ended: send what is buffered, then shut down this sending
        direction (or close, where a half-close is impossible).
        """
        if self._writeShutting or not self.connected:
            return
        self._writeShutting = True
        transport = self.transport
        transport.unregisterProducer()  # the peer reads no more: it produces nothing
        if canHalfClose(transport):
            transport.loseWriteConnection()
        else:
            transport.loseConnection()

    def _closeIfDone(self) -> None:
        if self.readClosed and self.writeClosed:
            self.close()

    def close(self) -> None:
        """Close this connection once its buffered output is sent."""
        if self.connected and not getattr(self.transport, "disconnecting", False):
            self.transport.loseConnection()

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.connected = False
        peer, self.peer = self.peer, None
        if peer is not None:
            peer.peer = None
            peer.close()


class BackendSide(Side):
    """
    The connection netd opened to the backend; its factory's C{stats} count the bytes
    relayed to the client.
    """

    factory: Any

    def relayed(self, count: int) -> None:
        self.factory.stats.toClient += count
