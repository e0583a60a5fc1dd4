"""
Eager writes: bytes leave at once when nothing is buffered, and everything else behaves
as Twisted's own transport (ordering, buffering, producer pausing).
"""

from __future__ import annotations

import socket
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from netd.admission.guard import GuardedFactory, ServiceGuard
from netd.config.policy import buildPolicy
from netd.fastpath.reactor import NetdEPollReactor
from netd.fastpath.transport import EagerTCPServer, FastUDPPort
from netd.protocols.simple import buildEcho
from netd.reactor import installedReactorName
from tests.support import makeContext


class RecordingReactor:
    """The reactor calls a transport makes, recorded."""

    def __init__(self) -> None:
        self.readers: set[Any] = set()
        self.writers: set[Any] = set()

    def addReader(self, r: Any) -> None:
        self.readers.add(r)

    def removeReader(self, r: Any) -> None:
        self.readers.discard(r)

    def addWriter(self, w: Any) -> None:
        self.writers.add(w)

    def removeWriter(self, w: Any) -> None:
        self.writers.discard(w)

    def callLater(self, *a: Any, **kw: Any) -> None:
        pass


class FakePort:
    _realPortNumber = 7


@implementer(IPushProducer)
class Producer:
    paused = False

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False

    def stopProducing(self) -> None:
        pass


class EagerWriteTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.ours, self.peer = socket.socketpair()
        self.addCleanup(self.ours.close)
        self.addCleanup(self.peer.close)
        self.peer.settimeout(1)
        self.reactor = RecordingReactor()
        self.transport = EagerTCPServer(
            self.ours, Protocol(), ("192.0.2.7", 4000), FakePort(), 1, self.reactor
        )

    def drain(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            data += self.peer.recv(size - len(data))
        return data

    def test_writeLeavesAtOnce(self) -> None:
        """With nothing buffered, written bytes are on the socket before any reactor turn."""
        self.transport.write(b"hello")
        self.assertEqual(self.drain(5), b"hello")
        self.assertEqual(self.reactor.writers, set())

    def test_partialSendIsBufferedInOrder(self) -> None:
        """What the kernel does not take is buffered, and later writes queue behind it."""
        self.ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        big = bytes(range(256)) * 4096  # 1 MiB: more than the socket takes at once
        self.transport.write(big)
        self.transport.write(b"tail")
        self.assertIn(self.transport, self.reactor.writers)
        received = b""
        while len(received) < len(big) + 4:
            self.transport.doWrite()
            received += self.peer.recv(65536)
        self.assertEqual(received, big + b"tail")

    def test_fullBufferPausesTheProducer(self) -> None:
        """A stuck peer fills the buffer and pauses a streaming producer, as with Twisted's transport."""
        producer = Producer()
        self.transport.registerProducer(producer, True)
        self.ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        for _ in range(64):
            self.transport.write(b"x" * 4096)
        self.assertTrue(producer.paused)

    def test_writeWhileDisconnectingIsBuffered(self) -> None:
        """After loseConnection, writes go through the ordinary buffered path."""
        self.transport.loseConnection()
        self.transport.write(b"late")
        self.assertIn(self.transport, self.reactor.writers)

    def test_writeSequence(self) -> None:
        """writeSequence sends the pieces in order."""
        self.transport.writeSequence([b"a", b"b", b"c"])
        self.assertEqual(self.drain(3), b"abc")

    def test_nonBytesRejected(self) -> None:
        """Text is refused as by Twisted's transport."""
        self.assertRaises(TypeError, self.transport.write, "text")


class Readable:
    """A selectable whose doRead records calls, or raises."""

    def __init__(self, sock: socket.socket, fail: bool = False) -> None:
        self.sock = sock
        self.fail = fail
        self.reads = 0

    def fileno(self) -> int:
        return self.sock.fileno()

    def doRead(self) -> None:
        self.reads += 1
        self.sock.recv(100)
        if self.fail:
            raise RuntimeError("boom")

    def logPrefix(self) -> str:
        return "readable"

    def connectionLost(self, reason: Any) -> None:
        pass


class ReactorTests(SynchronousTestCase):
    def test_dispatchesReadyDescriptors(self) -> None:
        """The epoll reactor calls doRead of a ready descriptor, and logs (not raises) its errors."""
        reactor = NetdEPollReactor()
        self.addCleanup(reactor._poller.close)
        readers = []
        for fail in (False, True):
            ours, theirs = socket.socketpair()
            self.addCleanup(ours.close)
            self.addCleanup(theirs.close)
            readers.append(Readable(ours, fail=fail))
            reactor.addReader(readers[-1])
            theirs.send(b"ready")
        reactor.doPoll(0)
        self.assertEqual([r.reads for r in readers], [1, 1])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_namesMapToNetdVariants(self) -> None:
        """netd's reactor classes are reported under the names users choose them by."""
        from netd import reactor as netdreactor

        self.assertEqual(netdreactor._BY_CLASS["NetdEPollReactor"], "epoll")
        self.assertEqual(netdreactor._BY_CLASS["NetdPollReactor"], "poll")
        self.assertEqual(netdreactor._BY_CLASS["NetdSelectReactor"], "select")
        self.assertIn(installedReactorName(), (None, *netdreactor.REACTORS))


class DirectModeTests(SynchronousTestCase):
    def test_guardStepsOutOfTheDataPath(self) -> None:
        """On an eager TCP transport the guard admits, then the protocol talks to the transport directly."""
        clock = Clock()
        guard = ServiceGuard("echo", buildPolicy({}), clock)
        factory = GuardedFactory(guard, buildEcho(makeContext("echo", clock=clock)).stream)
        ours, peer = socket.socketpair()
        self.addCleanup(peer.close)
        peer.settimeout(1)
        address = ("192.0.2.7", 4000)
        guarded = factory.buildProtocol(IPv4Address("TCP", *address))
        transport = EagerTCPServer(ours, guarded, address, FakePort(), 1, RecordingReactor())
        guarded.makeConnection(transport)
        inner = transport.protocol
        self.assertIsNot(inner, guarded)
        self.assertIs(inner.transport, transport)
        peer.send(b"ping")
        transport.doRead()
        self.assertEqual(peer.recv(4), b"ping")
        self.assertEqual(guarded.traffic(), (4, 4))
        transport.loseConnection()
        transport.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(guard.stats.closed["server closed"], 1)
        self.assertEqual((guard.stats.bytesIn, guard.stats.bytesOut), (4, 4))
        self.assertEqual(guard.connections, set())


class FastUDPPortTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.port = FastUDPPort(0, None, "127.0.0.1", 65535, RecordingReactor())
        self.port.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.port.socket.setblocking(False)
        self.addCleanup(self.port.socket.close)
        self.peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.peer.bind(("127.0.0.1", 0))
        self.peer.settimeout(1)
        self.addCleanup(self.peer.close)

    def test_repliesAreSentAndCounted(self) -> None:
        """A reply reaches its destination and is counted in the service's stats."""
        from netd.stats import ServiceStats

        self.port.stats = ServiceStats()
        self.port.write(b"pong", self.peer.getsockname())
        self.assertEqual(self.peer.recv(100), b"pong")
        self.assertEqual((self.port.stats.datagramsOut, self.port.stats.bytesOut), (1, 4))

    def test_hostNamesAreRefused(self) -> None:
        """A host name is refused before sendto() could resolve it."""
        from twisted.internet.error import InvalidAddressError

        self.assertRaises(InvalidAddressError, self.port.write, b"x", ("localhost", 9))
        self.assertRaises(InvalidAddressError, self.port.write, b"x", ("::1", 9))
