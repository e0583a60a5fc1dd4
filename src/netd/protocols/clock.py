"""
Daytime (RFC 867) and Time (RFC 868).

Written afresh: L{twisted.protocols.wire.Daytime} raises C{TypeError} on Python 3 and
C{wire.Time} sends signed seconds since 1970, where RFC 868 wants unsigned seconds since
1900 modulo 2**32.  Time comes from the factory's clock, so tests pin the instant.
"""

from __future__ import annotations

import struct
import time
from typing import Any

from twisted.internet.protocol import Protocol

from netd.plugin import Served, ServiceContext, ServiceDatagramProtocol, ServiceFactory

__all__ = ["Daytime", "Time", "buildDaytime", "buildTime", "daytimeText", "rfc868Bytes"]

#: Seconds from 1900-01-01T00:00Z (RFC 868's epoch) to 1970-01-01T00:00Z.
EPOCH_OFFSET = 2208988800


def rfc868Bytes(unixSeconds: float) -> bytes:
    """
    The 4 bytes RFC 868 sends for C{unixSeconds}: big-endian unsigned seconds since
    1900, modulo 2**32 (so 2036-02-07T06:28:16Z sends zero again).
    """
    return struct.pack("!I", (int(unixSeconds) + EPOCH_OFFSET) % 2**32)


def daytimeText(unixSeconds: float) -> bytes:
    """RFC 867's line: the local time in C{time.ctime()}'s form, then CRLF."""
    return time.ctime(unixSeconds).encode("ascii") + b"\r\n"


class Daytime(Protocol):
    """Send the daytime line, then close."""

    def connectionMade(self) -> None:
        self.transport.write(daytimeText(self.factory.clock.seconds()))
        self.transport.loseConnection()


class Time(Protocol):
    """Send the 4 time bytes, then close."""

    def connectionMade(self) -> None:
        self.transport.write(rfc868Bytes(self.factory.clock.seconds()))
        self.transport.loseConnection()


class ClockDatagram(ServiceDatagramProtocol):
    """Answer any datagram, the empty one included, with C{render(now)}."""

    def __init__(self, context: ServiceContext, render: Any) -> None:
        super().__init__(context)
        self.render = render

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        self.transport.write(self.render(self.context.clock.seconds()), addr)


def buildDaytime(context: ServiceContext) -> Served:
    return Served(
        stream=ServiceFactory(Daytime, context),
        datagram=lambda: ClockDatagram(context, daytimeText),
    )


def buildTime(context: ServiceContext) -> Served:
    return Served(
        stream=ServiceFactory(Time, context),
        datagram=lambda: ClockDatagram(context, rfc868Bytes),
    )
