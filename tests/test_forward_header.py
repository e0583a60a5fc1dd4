"""
Tests for L{netd.forward.header}: the PROXY header a forward service writes, checked
byte for byte against the specification's layout and read back by netd's own parser
(L{netd.admission.proxyheader}) and by Twisted's own C{haproxy:} endpoint (L{proxyEndpoint}).
"""

from __future__ import annotations

import ipaddress
import struct

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactor, StringTransport
from twisted.protocols.haproxy import proxyEndpoint
from twisted.trial.unittest import SynchronousTestCase

from netd.admission.proxyheader import ProxyHeaderParser
from netd.forward.header import SIGNATURE, proxyHeader

V4_CLIENT = IPv4Address("TCP", "198.51.100.7", 40000)
V4_SERVER = IPv4Address("TCP", "192.0.2.1", 443)
V6_CLIENT = IPv6Address("TCP", "2001:db8::7", 40000)
V6_SERVER = IPv6Address("TCP", "2001:db8::1", 443)


def readBack(header: bytes) -> tuple[object, object, object, object]:
    """What netd's parser reads from C{header}: source and destination IPs and ports."""
    info, rest = ProxyHeaderParser().feed(header + b"payload")
    assert rest == b"payload"
    return (
        ipaddress.ip_address(info.source.host),
        info.source.port,
        ipaddress.ip_address(info.destination.host),
        info.destination.port,
    )


class Received(Protocol):
    """Records the ends its transport reports and the bytes it receives."""

    def dataReceived(self, data: bytes) -> None:
        self.ends = (self.transport.getPeer(), self.transport.getHost())
        self.data = data


def throughTwisted(header: bytes) -> Received:
    """
    C{header} and one payload byte into a server behind Twisted's public C{haproxy:}
    endpoint wrapper (on a memory reactor), as a backend built with Twisted receives them.
    """
    reactor = MemoryReactor()
    proxyEndpoint(TCP4ServerEndpoint(reactor, 0)).listen(Factory.forProtocol(Received))
    factory = reactor.tcpServers[0][1]
    wrapper = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 50000))
    wrapper.makeConnection(StringTransport())
    wrapper.dataReceived(header + b"x")
    received: Received = wrapper.wrappedProtocol
    return received


class V1Tests(SynchronousTestCase):
    def test_ipv4(self) -> None:
        """An IPv4 connection is one TCP4 line: source, destination, then their ports."""
        self.assertEqual(
            proxyHeader("v1", V4_CLIENT, V4_SERVER),
            b"PROXY TCP4 198.51.100.7 192.0.2.1 40000 443\r\n",
        )

    def test_ipv6(self) -> None:
        """An IPv6 connection is one TCP6 line with the addresses in their short form."""
        self.assertEqual(
            proxyHeader("v1", V6_CLIENT, V6_SERVER),
            b"PROXY TCP6 2001:db8::7 2001:db8::1 40000 443\r\n",
        )

    def test_twistedReadsIt(self) -> None:
        """A server behind Twisted's haproxy: endpoint sees the client and destination of the line."""
        received = throughTwisted(proxyHeader("v1", V4_CLIENT, V4_SERVER))
        self.assertEqual((received.ends, received.data), ((V4_CLIENT, V4_SERVER), b"x"))

    def test_unixIsUnknown(self) -> None:
        """A client without an IP address is announced as UNKNOWN."""
        self.assertEqual(
            proxyHeader("v1", UNIXAddress(None), UNIXAddress(b"/run/x")), b"PROXY UNKNOWN\r\n"
        )


class V2Tests(SynchronousTestCase):
    def test_ipv4Layout(self) -> None:
        """An IPv4 connection is the signature, PROXY over TCP4, length 12, addresses, ports."""
        header = proxyHeader("v2", V4_CLIENT, V4_SERVER)
        self.assertEqual(header[:12], SIGNATURE)
        self.assertEqual(
            struct.unpack("!BBH4s4sHH", header[12:]),
            (0x21, 0x11, 12, bytes([198, 51, 100, 7]), bytes([192, 0, 2, 1]), 40000, 443),
        )

    def test_ipv6Layout(self) -> None:
        """An IPv6 connection is PROXY over TCP6 with 36 bytes of addresses and ports."""
        header = proxyHeader("v2", V6_CLIENT, V6_SERVER)
        version, family, length = struct.unpack("!BBH", header[12:16])
        self.assertEqual((version, family, length, len(header)), (0x21, 0x21, 36, 52))
        self.assertEqual(
            readBack(header),
            (ipaddress.ip_address("2001:db8::7"), 40000, ipaddress.ip_address("2001:db8::1"), 443),
        )

    def test_twistedReadsIt(self) -> None:
        """A server behind Twisted's haproxy: endpoint sees the client and destination of the header."""
        received = throughTwisted(proxyHeader("v2", V4_CLIENT, V4_SERVER))
        self.assertEqual((received.ends, received.data), ((V4_CLIENT, V4_SERVER), b"x"))

    def test_unixIsLocal(self) -> None:
        """A client without an IP address is announced with the LOCAL command and no addresses."""
        header = proxyHeader("v2", UNIXAddress(None), V4_SERVER)
        self.assertEqual(header, SIGNATURE + b"\x20\x00\x00\x00")
        info, rest = ProxyHeaderParser().feed(header + b"x")
        self.assertEqual((info.source, rest), (None, b"x"))


class FamilyTests(SynchronousTestCase):
    def test_mappedIPv4IsSentAsIPv4(self) -> None:
        """An IPv4 client seen through a dual-stack listener (::ffff:a.b.c.d) is announced as IPv4."""
        client = IPv6Address("TCP", "::ffff:198.51.100.7", 40000)
        server = IPv6Address("TCP", "::ffff:192.0.2.1", 443)
        for version in ("v1", "v2"):
            header = proxyHeader(version, client, server)
            self.assertEqual(
                readBack(header),
                (
                    ipaddress.ip_address("198.51.100.7"),
                    40000,
                    ipaddress.ip_address("192.0.2.1"),
                    443,
                ),
            )
        self.assertTrue(proxyHeader("v1", client, server).startswith(b"PROXY TCP4 "))

    def test_mixedFamiliesAreSentAsIPv6(self) -> None:
        """An IPv4 client of an IPv6 destination is announced as IPv6, the family holding both."""
        header = proxyHeader("v1", V4_CLIENT, V6_SERVER)
        self.assertEqual(header, b"PROXY TCP6 ::ffff:c633:6407 2001:db8::1 40000 443\r\n")
        self.assertEqual(readBack(header)[0], ipaddress.ip_address("::ffff:198.51.100.7"))

    def test_zoneIndexDropped(self) -> None:
        """A link-local address's zone index (%eth0) is not put on the wire."""
        client = IPv6Address("TCP", "fe80::1%eth0", 40000)
        self.assertEqual(
            proxyHeader("v1", client, V6_SERVER),
            b"PROXY TCP6 fe80::1 2001:db8::1 40000 443\r\n",
        )

    def test_unknownVersionRefused(self) -> None:
        """A version other than v1 or v2 is a ValueError naming the choices."""
        with self.assertRaises(ValueError) as caught:
            proxyHeader("v3", V4_CLIENT, V4_SERVER)
        self.assertIn("v1 or v2", str(caught.exception))


addresses = st.one_of(
    st.builds(ipaddress.IPv4Address, st.integers(0, 2**32 - 1)),
    st.builds(ipaddress.IPv6Address, st.integers(0, 2**128 - 1)),
)
ports = st.integers(0, 65535)


class RoundTripTests(SynchronousTestCase):
    @settings(max_examples=300, deadline=None)
    @given(addresses, ports, addresses, ports, st.sampled_from(["v1", "v2"]))
    def test_anyPairReadsBack(
        self, source: object, sourcePort: int, dest: object, destPort: int, version: str
    ) -> None:
        """Any pair of IP addresses and ports reads back through netd's parser as the same ends."""

        def address(ip: object, port: int) -> IPv4Address | IPv6Address:
            kind = IPv4Address if isinstance(ip, ipaddress.IPv4Address) else IPv6Address
            return kind("TCP", str(ip), port)

        header = proxyHeader(version, address(source, sourcePort), address(dest, destPort))
        src, srcPort, dst, dstPort = readBack(header)
        self.assertEqual((srcPort, dstPort), (sourcePort, destPort))
        self.assertEqual(_unmapped(src), _unmapped(source))
        self.assertEqual(_unmapped(dst), _unmapped(dest))


def _unmapped(ip: object) -> object:
    mapped = getattr(ip, "ipv4_mapped", None)
    return mapped if mapped is not None else ip
