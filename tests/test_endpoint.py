"""
Listen descriptions, including netd's own udp: endpoint.
"""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.testing import MemoryReactor
from twisted.trial.unittest import SynchronousTestCase

from netd.interfaces import DATAGRAM, STREAM
from netd.listen.endpoint import (
    MAX_DATAGRAM,
    BadListen,
    DatagramServerEndpoint,
    parseListen,
    splitDescription,
)


class ParseListenTests(SynchronousTestCase):
    def test_streamEndpoints(self) -> None:
        """Twisted's stream endpoint strings are accepted as stream listeners."""
        for description in (
            "tcp:7",
            "tcp:0:interface=127.0.0.1",
            "tcp6:7:interface=\\:\\:1",
            "unix:/tmp/netd.sock",
            "haproxy:tcp:7",
            "tcp:port=7",
        ):
            self.assertEqual(parseListen(description).kind, STREAM, description)

    def test_udp(self) -> None:
        """udp:PORT[:interface=ADDR] is a datagram listener, IPv6 interfaces escaped as for tcp6."""
        spec = parseListen("udp:10007:interface=\\:\\:1")
        self.assertEqual(spec.kind, DATAGRAM)
        endpoint = spec.endpoint(MemoryReactor())
        self.assertEqual((endpoint.port, endpoint.interface), (10007, "::1"))

    def test_errorsNameTheDescription(self) -> None:
        """Each error names the description and the problem."""
        cases = {
            "tcp:x": "port 'x' is not a number",
            "udp:65536": "not in 0-65535",
            "udp:7:interface=localhost": "not an IP address",
            "udp:7:ttl=3": "expected udp:PORT[:interface=ADDR]",
            "what:7": "Unknown endpoint type",
        }
        for description, problem in cases.items():
            error = self.assertRaises(BadListen, parseListen, description)
            self.assertIn(repr(description), str(error))
            self.assertIn(problem, str(error))

    def test_errorIsOneLineWhateverTheDescription(self) -> None:
        """A description holding a CR, a record separator or an ESC is refused in one printable line."""
        for description in ("\r:", "\x1e:", "\x1b[31m:7", "a\nb:"):
            message = str(self.assertRaises(BadListen, parseListen, description))
            self.assertEqual(message.splitlines(), [message], description)
            self.assertTrue(message.isprintable(), message)

    def test_split(self) -> None:
        """Descriptions split on unescaped colons into arguments and keywords."""
        self.assertEqual(
            splitDescription("udp:7:interface=\\:\\:1"), (["udp", "7"], {"interface": "::1"})
        )


class FakeUDPPort:
    """A bound UDP port, as far as netd looks at one."""

    def __init__(self, port: int, interface: str) -> None:
        self.address = IPv4Address("UDP", interface or "0.0.0.0", port)
        self.listening = True

    def getHost(self) -> IPv4Address:
        return self.address

    def stopListening(self) -> None:
        self.listening = False


class RecordingUDPReactor:
    """Records listenUDP calls (MemoryReactor has none); fails when told to."""

    def __init__(self, error: Exception | None = None) -> None:
        self.udpCalls: list[tuple[object, ...]] = []
        self.error = error

    def listenUDP(
        self, port: int, protocol: object, interface: str = "", maxPacketSize: int = 8192
    ) -> FakeUDPPort:
        if self.error is not None:
            raise self.error
        self.udpCalls.append((port, protocol, interface, maxPacketSize))
        return FakeUDPPort(port, interface)


class DatagramEndpointTests(SynchronousTestCase):
    def test_listensWithRoomForAnyDatagram(self) -> None:
        """The udp endpoint binds with a buffer big enough that no datagram is truncated."""
        reactor = RecordingUDPReactor()
        protocol = DatagramProtocol()
        port = self.successResultOf(
            DatagramServerEndpoint(reactor, 7, "127.0.0.1").listen(protocol)
        )
        self.assertEqual(port.getHost(), IPv4Address("UDP", "127.0.0.1", 7))
        self.assertEqual(reactor.udpCalls, [(7, protocol, "127.0.0.1", MAX_DATAGRAM)])

    def test_bindFailureIsAFailedDeferred(self) -> None:
        """A bind error arrives as a failed Deferred, as with stream endpoints."""
        reactor = RecordingUDPReactor(OSError(98, "Address already in use"))
        failure = self.failureResultOf(
            DatagramServerEndpoint(reactor, 7).listen(DatagramProtocol())
        )
        failure.trap(OSError)
