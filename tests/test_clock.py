"""
Daytime (RFC 867) and time (RFC 868) at known instants.
"""

from __future__ import annotations

import struct
import time

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from netd.protocols import clock as netdclock
from tests.support import bindDatagram, connect, makeContext


class TimeTests(SynchronousTestCase):
    def test_unixEpochIsRfc868Offset(self) -> None:
        """1970-01-01T00:00Z is 2208988800 seconds after RFC 868's 1900 epoch."""
        self.assertEqual(netdclock.rfc868Bytes(0), struct.pack("!I", 2208988800))
        self.assertEqual(netdclock.rfc868Bytes(0), b"\x83\xaa\x7e\x80")

    def test_knownInstant(self) -> None:
        """2024-01-01T00:00:00Z (1704067200) is sent as 3913056000, big-endian and unsigned."""
        self.assertEqual(netdclock.rfc868Bytes(1704067200), struct.pack("!I", 3913056000))
        self.assertEqual(netdclock.rfc868Bytes(1704067200.9), struct.pack("!I", 3913056000))

    def test_wrapsIn2036(self) -> None:
        """At 2036-02-07T06:28:16Z the 32-bit counter wraps to zero and counts on."""
        wrap = 2**32 - 2208988800
        self.assertEqual(netdclock.rfc868Bytes(wrap - 1), b"\xff\xff\xff\xff")
        self.assertEqual(netdclock.rfc868Bytes(wrap), b"\x00\x00\x00\x00")
        self.assertEqual(netdclock.rfc868Bytes(wrap + 5), b"\x00\x00\x00\x05")

    def test_tcpSendsFourBytesThenCloses(self) -> None:
        """Over TCP the server sends exactly 4 bytes from its clock, then closes."""
        fake = Clock()
        fake.advance(1704067200)
        protocol, transport = connect(netdclock.buildTime(makeContext(clock=fake)))
        self.assertEqual(transport.value(), struct.pack("!I", 3913056000))
        self.assertTrue(transport.disconnecting)

    def test_udpAnswersAnyDatagramEmptyIncluded(self) -> None:
        """Any datagram, the empty one included, gets the 4 bytes back."""
        fake = Clock()
        fake.advance(1704067200)
        protocol, transport = bindDatagram(netdclock.buildTime(makeContext(clock=fake)))
        protocol.datagramReceived(b"", ("192.0.2.7", 5000))
        protocol.datagramReceived(b"junk", ("192.0.2.7", 5000))
        self.assertEqual([d for d, _ in transport.written], [struct.pack("!I", 3913056000)] * 2)


class DaytimeTests(SynchronousTestCase):
    def test_ctimeLineThenClose(self) -> None:
        """Over TCP the server sends time.ctime() of its clock plus CRLF, then closes."""
        fake = Clock()
        fake.advance(1704067200)
        protocol, transport = connect(netdclock.buildDaytime(makeContext(clock=fake)))
        self.assertEqual(transport.value(), time.ctime(1704067200).encode() + b"\r\n")
        self.assertTrue(transport.disconnecting)

    def test_udpReplyIsTheSameLine(self) -> None:
        """Over UDP the same line answers each datagram, to its source."""
        fake = Clock()
        fake.advance(1704067200)
        protocol, transport = bindDatagram(netdclock.buildDaytime(makeContext(clock=fake)))
        protocol.datagramReceived(b"", ("192.0.2.7", 5000))
        self.assertEqual(
            transport.written, [(time.ctime(1704067200).encode() + b"\r\n", ("192.0.2.7", 5000))]
        )
