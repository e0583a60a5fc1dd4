"""
Tests for L{netd.forward.relay} and L{netd.forward.connector}: a forwarded connection on
in-memory transports, with Twisted's real client endpoints on a memory reactor and, for
backpressure, Twisted's own consumer logic (L{abstract.FileDescriptor}) deciding when to
pause.
"""

from __future__ import annotations

import ipaddress
import struct
from typing import Any

from twisted.internet import abstract
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.error import (
    ConnectionDone,
    ConnectionLost,
    ConnectionRefusedError,
    DNSLookupError,
    NoRouteError,
    TCPTimedOutError,
    TimeoutError,
)
from twisted.internet.interfaces import IHalfCloseableProtocol, INegotiated, IPushProducer
from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver, MemoryReactorClock, StringTransport
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import alsoProvides
from zope.interface.verify import verifyObject

from netd.admission.guard import GuardedFactory, ServiceGuard
from netd.admission.proxyheader import ProxyHeaderParser
from netd.config.policy import buildPolicy
from netd.forward.connector import PRECONNECT_LIMIT, ClientSide, ForwardFactory, failureReason
from netd.forward.relay import BackendSide
from netd.forward.stats import ForwardStats
from netd.forward.target import parseTarget

CLIENT = IPv4Address("TCP", "198.51.100.7", 40000)
LISTENER = IPv4Address("TCP", "192.0.2.1", 10443)
BACKEND = IPv4Address("TCP", "192.0.2.10", 443)
PROXY = IPv4Address("TCP", "127.0.0.1", 33000)


class HalfTransport(StringTransport):
    """
    A string transport that, like TCP, can shut down its sending side and lets a
    producer be unregistered when none is.
    """

    writeShut = False

    def __init__(self, host: Any = LISTENER, peer: Any = CLIENT) -> None:
        super().__init__(hostAddress=host, peerAddress=peer, lenient=True)

    def loseWriteConnection(self) -> None:
        self.writeShut = True

    def unregisterProducer(self) -> None:
        self.producer = self.streaming = None


class KernelTransport(abstract.FileDescriptor):
    """
    A transport whose socket takes only C{room} bytes: Twisted's own write buffer and
    producer logic decide when the relay is paused and resumed.
    """

    bufferSize = 1024

    def __init__(self, reactor: Any, host: Any = BACKEND, peer: Any = LISTENER) -> None:
        super().__init__(reactor)
        self.connected = 1
        self.room = 0
        self.sent = b""
        self.host, self.peer = host, peer

    def writeSomeData(self, data: bytes) -> int:
        count = min(len(data), self.room)
        self.room -= count
        self.sent += bytes(data[:count])
        return count

    def drain(self) -> None:
        """The peer reads everything: the kernel takes it all, as often as asked."""
        self.room = 1 << 30
        self.doWrite()

    def getHost(self) -> Any:
        return self.host

    def getPeer(self) -> Any:
        return self.peer


def ends(address: Any) -> tuple[Any, int]:
    """An address as (IP, port), whatever spelling of the IP (Twisted writes IPv6 in full)."""
    return ipaddress.ip_address(address.host), address.port


def forwarder(
    target: str = "tcp:192.0.2.10:443", sendProxy: str | None = None
) -> tuple[MemoryReactorClock, ForwardFactory]:
    reactor = MemoryReactorClock()
    return reactor, ForwardFactory("api", parseTarget(target), sendProxy, reactor, ForwardStats())


def arrive(factory: ForwardFactory, transport: Any = None) -> tuple[ClientSide, Any]:
    """A client connects to the forward service (already admitted)."""
    client = factory.buildProtocol(CLIENT)
    transport = transport or HalfTransport()
    client.makeConnection(transport)
    return client, transport


def accept(reactor: MemoryReactorClock, transport: Any = None) -> tuple[Any, Any]:
    """
    The backend accepts the last connect: returns the protocol the reactor would talk to
    (the endpoint's wrapper around the backend side) and its transport.
    """
    host, port, wrapping, _, _ = reactor.tcpClients[-1]
    protocol = wrapping.buildProtocol(IPv4Address("TCP", host, port))
    transport = transport or HalfTransport(host=LISTENER, peer=BACKEND)
    protocol.makeConnection(transport)
    return protocol, transport


def fail(reactor: MemoryReactorClock, error: Exception) -> None:
    """The last connect fails with C{error}."""
    _, _, wrapping, _, _ = reactor.tcpClients[-1]
    wrapping.clientConnectionFailed(reactor.connectors[-1], Failure(error))


class TargetConnectTests(SynchronousTestCase):
    def test_connectsToTheLiteralWithTheTimeout(self) -> None:
        """An admitted client makes netd connect to the target's IP literal and port, with its timeout."""
        reactor, factory = forwarder("tcp:192.0.2.10:443:timeout=3")
        arrive(factory)
        [(host, port, _, timeout, _)] = reactor.tcpClients
        self.assertEqual((host, port, timeout), ("192.0.2.10", 443, 3.0))

    def test_ipv6Target(self) -> None:
        """An IPv6 target is connected to as given, never through a resolver."""
        reactor, factory = forwarder("tcp:[2001:db8::1]:443")
        arrive(factory)
        self.assertEqual(reactor.tcpClients[0][:2], ("2001:db8::1", 443))

    def test_unixTarget(self) -> None:
        """A unix target connects to the socket path."""
        reactor, factory = forwarder("unix:/run/backend.sock")
        arrive(factory)
        self.assertEqual(reactor.unixClients[0][0], "/run/backend.sock")


class RelayTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.reactor, self.factory = forwarder()
        self.client, self.clientTransport = arrive(self.factory)
        self.backendProtocol, self.backendTransport = accept(self.reactor)
        self.backend: BackendSide = self.backendProtocol._wrappedProtocol
        self.stats = self.factory.stats

    def test_sidesProvideTheirInterfaces(self) -> None:
        """Both sides are push producers and half-closeable protocols."""
        for side in (self.client, self.backend):
            verifyObject(IPushProducer, side)
            verifyObject(IHalfCloseableProtocol, side)

    def test_bytesBothWays(self) -> None:
        """Bytes from the client reach the backend and the backend's reach the client, counted."""
        self.client.dataReceived(b"hello")
        self.backendProtocol.dataReceived(b"world!")
        self.assertEqual(self.backendTransport.value(), b"hello")
        self.assertEqual(self.clientTransport.value(), b"world!")
        self.assertEqual(
            (
                self.stats.forwarded,
                self.stats.toBackend,
                self.stats.toClient,
                self.stats.connecting,
            ),
            (1, 5, 6, 0),
        )

    def test_eachSideProducesForTheOther(self) -> None:
        """Each side is registered as the streaming producer of the other side's transport."""
        self.assertIs(self.backendTransport.producer, self.client)
        self.assertIs(self.clientTransport.producer, self.backend)
        self.assertTrue(self.backendTransport.streaming and self.clientTransport.streaming)

    def test_clientEndOfInputHalfClosesTheBackend(self) -> None:
        """A client that shuts down its sending side half-closes the backend and still gets the answer."""
        self.client.dataReceived(b"request")
        self.client.readConnectionLost()
        self.assertTrue(self.backendTransport.writeShut)
        self.assertFalse(self.clientTransport.disconnecting)
        self.assertIsNone(self.backendTransport.producer)
        self.backendProtocol.dataReceived(b"answer")
        self.assertEqual(self.clientTransport.value(), b"answer")
        self.backendProtocol.readConnectionLost()  # the backend is done too
        self.assertTrue(self.clientTransport.writeShut)
        self.client.writeConnectionLost()  # the client's socket has sent everything
        self.backendProtocol.writeConnectionLost()
        self.assertTrue(self.clientTransport.disconnecting)
        self.assertTrue(self.backendTransport.disconnecting)

    def test_backendEndOfInputHalfClosesTheClient(self) -> None:
        """A backend that finishes first half-closes the client, which may still send."""
        self.backendProtocol.readConnectionLost()
        self.assertTrue(self.clientTransport.writeShut)
        self.assertFalse(self.backendTransport.disconnecting)
        self.client.dataReceived(b"more")
        self.assertEqual(self.backendTransport.value(), b"more")

    def test_tlsClientIsClosedNotHalfClosed(self) -> None:
        """Where the client's transport is TLS (no half-close in Twisted), the backend's end closes it."""
        reactor, factory = forwarder()
        transport = HalfTransport()
        alsoProvides(transport, INegotiated)
        arrive(factory, transport)
        backend, _ = accept(reactor)
        backend.readConnectionLost()
        self.assertFalse(transport.writeShut)
        self.assertTrue(transport.disconnecting)

    def test_backendGoneClosesClient(self) -> None:
        """When the backend connection ends, the client's is closed after its buffered output."""
        self.backendProtocol.connectionLost(Failure(ConnectionLost()))
        self.assertTrue(self.clientTransport.disconnecting)
        self.assertFalse(self.clientTransport.disconnected)

    def test_clientGoneClosesBackend(self) -> None:
        """When the client connection ends, the backend's is closed."""
        self.client.connectionLost(Failure(ConnectionDone()))
        self.assertTrue(self.backendTransport.disconnecting)

    def test_producerStoppedClosesSide(self) -> None:
        """A side whose peer's transport stops it as a producer closes its own connection."""
        self.client.stopProducing()
        self.assertTrue(self.clientTransport.disconnecting)


class BackpressureTests(SynchronousTestCase):
    def test_slowBackendPausesClient(self) -> None:
        """A backend that does not read pauses reading from the client until it drains."""
        reactor, factory = forwarder()
        client, clientTransport = arrive(factory)
        _, kernel = accept(reactor, KernelTransport(reactor))
        client.dataReceived(b"x" * 600)
        self.assertEqual(clientTransport.producerState, "producing")
        client.dataReceived(b"y" * 600)  # over the transport's 1024-byte buffer
        self.assertEqual(clientTransport.producerState, "paused")
        kernel.drain()
        self.assertEqual(clientTransport.producerState, "producing")
        self.assertEqual(kernel.sent, b"x" * 600 + b"y" * 600)

    def test_slowClientPausesBackend(self) -> None:
        """A client that does not read pauses reading from the backend until it drains."""
        reactor, factory = forwarder()
        client, kernel = arrive(factory, KernelTransport(reactor, host=LISTENER, peer=CLIENT))
        backend, backendTransport = accept(reactor)
        backend.dataReceived(b"z" * 2000)
        self.assertEqual(backendTransport.producerState, "paused")
        kernel.drain()
        self.assertEqual(backendTransport.producerState, "producing")
        self.assertEqual(kernel.sent, b"z" * 2000)

    def test_pausedClientStaysPausedOverHeldInput(self) -> None:
        """Held input that fills the backend's buffer at connect leaves the client paused."""
        reactor, factory = forwarder()
        client, clientTransport = arrive(factory)
        client.dataReceived(b"h" * PRECONNECT_LIMIT)
        self.assertEqual(clientTransport.producerState, "paused")
        _, kernel = accept(reactor, KernelTransport(reactor))
        self.assertEqual(clientTransport.producerState, "paused")
        kernel.drain()
        self.assertEqual(clientTransport.producerState, "producing")
        self.assertEqual(len(kernel.sent), PRECONNECT_LIMIT)


class BeforeConnectTests(SynchronousTestCase):
    def test_inputHeldThenSentFirst(self) -> None:
        """What the client sends before the backend accepts is sent first, in order."""
        reactor, factory = forwarder()
        client, _ = arrive(factory)
        client.dataReceived(b"GET / ")
        client.dataReceived(b"HTTP/1.0\r\n")
        _, backendTransport = accept(reactor)
        client.dataReceived(b"\r\n")
        self.assertEqual(backendTransport.value(), b"GET / HTTP/1.0\r\n\r\n")
        self.assertEqual(factory.stats.toBackend, 18)

    def test_heldInputIsBounded(self) -> None:
        """Past the held-input limit, reading from the client pauses until the backend accepts."""
        reactor, factory = forwarder()
        client, clientTransport = arrive(factory)
        client.dataReceived(b"a" * (PRECONNECT_LIMIT - 1))
        self.assertEqual(clientTransport.producerState, "producing")
        client.dataReceived(b"b")
        self.assertEqual(clientTransport.producerState, "paused")
        _, backendTransport = accept(reactor)
        self.assertEqual(clientTransport.producerState, "producing")
        self.assertEqual(len(backendTransport.value()), PRECONNECT_LIMIT)

    def test_endOfInputBeforeConnectPassedOnAfterIt(self) -> None:
        """A client that sends and shuts down before the backend accepts has both passed on, in order."""
        reactor, factory = forwarder()
        client, clientTransport = arrive(factory)
        client.dataReceived(b"all of it")
        client.readConnectionLost()
        self.assertFalse(clientTransport.disconnecting)
        _, backendTransport = accept(reactor)
        self.assertEqual(backendTransport.value(), b"all of it")
        self.assertTrue(backendTransport.writeShut)

    def test_clientLeavesWhileConnecting(self) -> None:
        """A client that leaves before the backend accepts cancels the connect, which is not a failure."""
        reactor, factory = forwarder()
        client, _ = arrive(factory)
        client.connectionLost(Failure(ConnectionDone()))
        self.assertTrue(reactor.connectors[0].stoppedConnecting)
        self.assertEqual((factory.stats.connecting, dict(factory.stats.failed)), (0, {}))


class FailedConnectTests(SynchronousTestCase):
    def test_failureClosesCountsAndLogs(self) -> None:
        """A refused connect closes the client, is counted by reason and logged once a minute."""
        events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        reactor, factory = forwarder()
        for _ in range(3):
            client, transport = arrive(factory)
            client.dataReceived(b"lost")
            fail(reactor, ConnectionRefusedError())
            self.assertTrue(transport.disconnecting)
            self.assertEqual(transport.value(), b"")
        fail_ = [e for e in events if "cannot connect" in e.get("log_format", "")]
        self.assertEqual(len(fail_), 1)
        self.assertEqual(fail_[0]["target"], "tcp:192.0.2.10:443")
        self.assertEqual(fail_[0]["service"], "api")
        self.assertEqual(dict(factory.stats.failed), {"refused": 3})
        self.assertEqual((factory.stats.forwarded, factory.stats.connecting), (0, 0))

    def test_reasons(self) -> None:
        """Each kind of failed connect has its own metric label; anything unforeseen is an error."""
        for error, reason in (
            (ConnectionRefusedError(), "refused"),
            (TimeoutError(), "timeout"),
            (TCPTimedOutError(), "timeout"),
            (NoRouteError(), "unreachable"),
            (DNSLookupError(), "error"),
        ):
            self.assertEqual(failureReason(Failure(error)), reason)

    def test_timeoutCountedApart(self) -> None:
        """A connect that times out is counted as a timeout."""
        reactor, factory = forwarder()
        arrive(factory)
        fail(reactor, TimeoutError())
        self.assertEqual(dict(factory.stats.failed), {"timeout": 1})


class ProxyHeaderTests(SynchronousTestCase):
    def test_headerFirstThenHeldInput(self) -> None:
        """With send-proxy, the header naming client and listener precedes every client byte."""
        for version in ("v1", "v2"):
            reactor, factory = forwarder(sendProxy=version)
            client, _ = arrive(factory)
            client.dataReceived(b"early")
            _, backendTransport = accept(reactor)
            info, rest = ProxyHeaderParser().feed(backendTransport.value())
            self.assertEqual((info.source, info.destination, rest), (CLIENT, LISTENER, b"early"))

    def test_realClientBehindProxyListener(self) -> None:
        """Behind a PROXY-protocol listener, the header sent on names the real client and destination."""
        clock = Clock()
        reactor, factory = forwarder(sendProxy="v2")
        guard = ServiceGuard("api", buildPolicy({}), clock)
        guarded = GuardedFactory(guard, factory, proxied=True)
        protocol = guarded.buildProtocol(PROXY)
        transport = HalfTransport(host=IPv4Address("TCP", "127.0.0.1", 10443), peer=PROXY)
        protocol.makeConnection(transport)
        source, destination = (
            IPv6Address("TCP", "2001:db8::5", 5555),
            IPv6Address("TCP", "2001:db8::1", 443),
        )
        header = b"\r\n\r\n\x00\r\nQUIT\n" + struct.pack(
            "!BBH16s16sHH",
            0x21,
            0x21,
            36,
            ipaddress.IPv6Address(source.host).packed,
            ipaddress.IPv6Address(destination.host).packed,
            source.port,
            destination.port,
        )
        protocol.dataReceived(header + b"hi")
        _, backendTransport = accept(reactor)
        info, rest = ProxyHeaderParser().feed(backendTransport.value())
        self.assertEqual(
            (ends(info.source), ends(info.destination), rest),
            (ends(source), ends(destination), b"hi"),
        )

    def test_unixClientIsLocal(self) -> None:
        """A client on a unix socket has no address to announce: v2 says LOCAL, v1 UNKNOWN."""
        for version, expected in (("v1", b"PROXY UNKNOWN\r\n"), ("v2", b"\x20\x00\x00\x00")):
            reactor, factory = forwarder(sendProxy=version)
            arrive(factory, HalfTransport(host=UNIXAddress(b"/s"), peer=UNIXAddress(None)))
            _, backendTransport = accept(reactor)
            self.assertTrue(backendTransport.value().endswith(expected), version)


class GuardedRelayTests(SynchronousTestCase):
    """The relay under netd's guard (the non-direct path: the guard wraps the protocol)."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.reactor, self.factory = forwarder()
        self.guard = ServiceGuard("api", buildPolicy({"idle-timeout": 5}), self.clock)
        self.protocol = GuardedFactory(self.guard, self.factory).buildProtocol(CLIENT)
        self.transport = HalfTransport()
        self.protocol.makeConnection(self.transport)
        self.backend, self.backendTransport = accept(self.reactor)

    def test_halfClosePassesThroughTheGuard(self) -> None:
        """The end of the client's input reaches the relay through the guard as a half-close."""
        self.assertTrue(IHalfCloseableProtocol.providedBy(self.protocol))
        self.protocol.readConnectionLost()
        self.assertTrue(self.backendTransport.writeShut)
        self.backend.dataReceived(b"reply")
        self.assertEqual(self.transport.value(), b"reply")
        self.assertEqual(self.protocol.traffic(), (0, 5))

    def test_idleTimeoutClosesBothSides(self) -> None:
        """An idle timeout of the service closes the client and, through it, the backend."""
        self.guard.startSweeping()
        self.addCleanup(self.guard.stopSweeping)
        self.clock.advance(6)
        self.assertTrue(self.transport.disconnecting)
        self.assertTrue(self.backendTransport.disconnecting)

    def test_otherProtocolsStayFullClose(self) -> None:
        """A protocol that is not half-closeable is not offered half-closes by the guard."""
        from netd.protocols import simple
        from tests.support import makeContext

        echo = simple.buildEcho(makeContext("echo", clock=self.clock)).stream
        protocol = GuardedFactory(self.guard, echo).buildProtocol(CLIENT)
        protocol.makeConnection(HalfTransport())
        self.assertFalse(IHalfCloseableProtocol.providedBy(protocol))
