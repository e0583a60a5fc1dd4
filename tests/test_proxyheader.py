"""
Tests for L{netd.admission.proxyheader}: reading a PROXY protocol header however it is split.
"""

from __future__ import annotations

import ipaddress
import struct

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.trial.unittest import SynchronousTestCase

from netd.admission.proxyheader import InvalidProxyHeader, ProxyHeaderParser

V1 = b"PROXY TCP4 203.0.113.9 192.0.2.1 5555 7\r\n"
SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
SOURCE = IPv4Address("TCP", "203.0.113.9", 5555)


def v2(verCmd: int = 0x21, family: int = 0x11, tlvs: bytes = b"") -> bytes:
    """A v2 header for 203.0.113.9:5555 -> 192.0.2.1:7, with optional trailing TLVs."""
    addresses = struct.pack(
        "!4s4sHH",
        ipaddress.IPv4Address("203.0.113.9").packed,
        ipaddress.IPv4Address("192.0.2.1").packed,
        5555,
        7,
    )
    body = addresses + tlvs
    return SIGNATURE + struct.pack("!BBH", verCmd, family, len(body)) + body


def feedInChunks(data: bytes, size: int) -> tuple[object, bytes]:
    """Feed C{data} C{size} bytes at a time; the first complete result and what followed."""
    parser = ProxyHeaderParser()
    info, rest = None, b""
    after = b""
    for i in range(0, len(data), size):
        chunk = data[i : i + size]
        if info is not None:
            after += chunk
            continue
        info, rest = parser.feed(chunk)
    return info, rest + after


class ChunkingTests(SynchronousTestCase):
    def test_v1EveryChunking(self) -> None:
        """A v1 header split anywhere yields the client's address and the bytes after it."""
        data = V1 + b"payload"
        for size in range(1, len(data) + 1):
            info, rest = feedInChunks(data, size)
            self.assertIsNotNone(info, size)
            self.assertEqual(info.source, SOURCE)  # type: ignore[attr-defined]
            self.assertEqual(info.destination, IPv4Address("TCP", "192.0.2.1", 7))  # type: ignore[attr-defined]
            self.assertEqual(rest, b"payload")

    def test_v2EveryChunking(self) -> None:
        """A v2 header split anywhere yields the client's address and the bytes after it."""
        data = v2() + b"payload"
        for size in range(1, len(data) + 1):
            info, rest = feedInChunks(data, size)
            self.assertIsNotNone(info, size)
            self.assertEqual(info.source, SOURCE)  # type: ignore[attr-defined]
            self.assertEqual(rest, b"payload")

    def test_v2WithTlvs(self) -> None:
        """TLVs after the v2 addresses are part of the header, not of the payload."""
        info, rest = ProxyHeaderParser().feed(v2(tlvs=b"\x04\x00\x01\x00") + b"payload")
        self.assertEqual((info.source, rest), (SOURCE, b"payload"))

    def test_v1IPv6(self) -> None:
        """A v1 TCP6 header names an IPv6 client."""
        info, rest = ProxyHeaderParser().feed(b"PROXY TCP6 2001:db8::1 2001:db8::2 5555 7\r\n")
        self.assertEqual(info.source, IPv6Address("TCP", "2001:db8::1", 5555))
        self.assertEqual(rest, b"")

    def test_unknownAndLocalHaveNoSource(self) -> None:
        """v1 UNKNOWN and v2 LOCAL headers name no client (the proxy speaks for itself)."""
        info, rest = ProxyHeaderParser().feed(b"PROXY UNKNOWN\r\nhi")
        self.assertEqual((info.source, rest), (None, b"hi"))
        info, rest = ProxyHeaderParser().feed(SIGNATURE + b"\x20\x00\x00\x00hi")
        self.assertEqual((info.source, rest), (None, b"hi"))

    def test_signaturePrefixWaits(self) -> None:
        """Any prefix of either signature, nothing at all included, waits for more."""
        for data in (
            b"",
            b"P",
            b"PROXY",
            b"PROXY ",
            b"\r",
            b"\r\n\r\n\x00",
            SIGNATURE,
            SIGNATURE + b"\x21\x11",
        ):
            self.assertEqual(ProxyHeaderParser().feed(data), (None, b""), data)

    def test_bytePerByteNeverReturnsEarly(self) -> None:
        """Fed a byte at a time, the parser answers only on the header's last byte."""
        for header in (V1, v2()):
            parser = ProxyHeaderParser()
            for byte in header[:-1]:
                self.assertEqual(parser.feed(bytes([byte])), (None, b""))
            info, rest = parser.feed(header[-1:])
            self.assertEqual((info.source, rest), (SOURCE, b""))


class InvalidTests(SynchronousTestCase):
    def assertInvalid(self, *chunks: bytes) -> None:
        parser = ProxyHeaderParser()
        with self.assertRaises(InvalidProxyHeader):
            for chunk in chunks:
                parser.feed(chunk)

    def test_garbage(self) -> None:
        """Anything that is not a PROXY header is refused as soon as it cannot become one."""
        self.assertInvalid(b"GET / HTTP/1.0\r\n\r\n")
        self.assertInvalid(b"P", b"R", b"X")
        self.assertInvalid(b"PROXYZ")
        self.assertInvalid(b"\r\n\r\nX")
        self.assertInvalid(b"PROXY TCP9 203.0.113.9 192.0.2.1 5555 7\r\n")
        self.assertInvalid(b"PROXY TCP4 203.0.113.9\r\n")

    def test_tooLongV1Line(self) -> None:
        """A v1 line longer than 107 bytes is refused, in pieces or in one chunk with its CRLF."""
        self.assertInvalid(b"PROXY TCP4 " + b"1" * 200)
        self.assertInvalid(b"PROXY TCP4 ", b"1" * 60, b"1" * 60)
        self.assertInvalid(b"PROXY TCP4 203.0.113.9 192.0.2.1 5555 7" + b" " * 100 + b"\r\n")

    def test_longestV1LineAccepted(self) -> None:
        """The longest legal v1 line (107 bytes with its CRLF) is accepted."""
        address = "ffff:" * 7 + "ffff"
        line = f"PROXY TCP6 {address} {address} 65535 65535\r\n".encode()
        self.assertEqual(len(line), 104)
        info, rest = ProxyHeaderParser().feed(line + b"x")
        self.assertEqual((info.source.port, rest), (65535, b"x"))

    def test_badV1Addresses(self) -> None:
        """A v1 header naming a host name, the wrong family or an impossible port is refused."""
        self.assertInvalid(b"PROXY TCP4 example.com 192.0.2.1 5555 7\r\n")
        self.assertInvalid(b"PROXY TCP4 2001:db8::1 192.0.2.1 5555 7\r\n")
        self.assertInvalid(b"PROXY TCP6 203.0.113.9 2001:db8::2 5555 7\r\n")
        self.assertInvalid(b"PROXY TCP4 203.0.113.9 192.0.2.1 port 7\r\n")
        self.assertInvalid(b"PROXY TCP4 203.0.113.9 192.0.2.1 65536 7\r\n")
        self.assertInvalid(b"PROXY TCP4 203.0.113.9 192.0.2.1 -1 7\r\n")
        self.assertInvalid(b"PROXY TCP4 203.0.113.9 192.0.2.1 5555 99999\r\n")

    def test_wrongV2Version(self) -> None:
        """A v2 signature followed by any version but 2 is refused before the rest arrives."""
        self.assertInvalid(SIGNATURE + b"\x11\x11\x00\x0c")
        self.assertInvalid(SIGNATURE + b"\x31\x11\x00\x0c")

    def test_badV2Command(self) -> None:
        """A v2 header with an unknown command is refused."""
        self.assertInvalid(v2(verCmd=0x2F))

    def test_truncatedV2Addresses(self) -> None:
        """A v2 header whose length is too short for its address family is refused."""
        self.assertInvalid(SIGNATURE + b"\x21\x11\x00\x04" + b"\x00" * 4)
