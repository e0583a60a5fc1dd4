"""
Reading a server's clock: RFC 868's 32-bit seconds and RFC 867's C{ctime()} line.

Both carry whole seconds, so an offset is only ever good to about a second; the
estimates here say so rather than print false precision.
"""

from __future__ import annotations

import struct
import time

__all__ = [
    "EPOCH_OFFSET",
    "ERA",
    "BadTime",
    "decodeTime",
    "offsetFrom",
    "parseDaytime",
]

#: Seconds from RFC 868's epoch, 1900-01-01T00:00Z, to the Unix epoch.
EPOCH_OFFSET = 2208988800
#: RFC 868 counts modulo 2**32: the count wraps on 2036-02-07T06:28:16Z.
ERA = 2**32

_MONTHS = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
        start=1,
    )
}
_WEEKDAYS = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"}


class BadTime(ValueError):
    """What the server sent is not a time in the expected form; the message says why."""


def decodeTime(data: bytes, localNow: float) -> int:
    """
    The Unix time for RFC 868's 4 bytes: the era (the count wraps every 2**32 s, next in
    2036) is the one that puts the answer nearest C{localNow}, as RFC 868 suggests, so a
    server just past the wrap is not read as 1900.

    @raise BadTime: unless C{data} is exactly 4 bytes.
    """
    if len(data) != 4:
        raise BadTime(f"{len(data)} bytes instead of RFC 868's 4")
    (count,) = struct.unpack("!I", data)
    base = count - EPOCH_OFFSET
    return base + ERA * round((localNow - base) / ERA)


def parseDaytime(line: bytes) -> int:
    """
    The Unix time for a C{time.ctime()} line (C{Thu Jan  2 03:04:05 2025}, then CRLF),
    read as the local time zone: that is what netd and most inetds send, and the line
    names no zone.  Parsed by hand rather than with C{strptime}, whose names follow the
    locale while C{ctime()}'s are always English.

    @raise BadTime: for anything else.
    """
    text = line.decode("ascii", "replace").strip()
    fields = text.split()
    try:
        weekday, month, day, clock, year = fields
        hour, minute, second = (int(part) for part in clock.split(":"))
        parts = (int(year), _MONTHS[month], int(day), hour, minute, second)
        if weekday not in _WEEKDAYS:
            raise ValueError(weekday)
        local = time.struct_time((*parts, 0, 0, -1))
        stamp = time.mktime(local)
    except (ValueError, KeyError, OverflowError):
        raise BadTime(f"{text!r} is not a time.ctime() line") from None
    if time.localtime(stamp)[:6] != parts:
        raise BadTime(f"{text!r} is not a valid local time")
    return int(stamp)


def offsetFrom(serverSeconds: int, localMidpoint: float) -> float:
    """
    The server's clock minus ours, from whole C{serverSeconds} read at C{localMidpoint}
    (ours, halfway through the exchange).

    The server truncated its clock, so its true time lies somewhere in the second after
    C{serverSeconds}: the middle of that second is the best estimate.
    """
    return serverSeconds + 0.5 - localMidpoint
