"""
One function per service: each talks over a connected L{Channel}, prints its report,
and returns the exit status.  Failures are raised as L{ClientError} and printed by the
caller as one line.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO, TextIO

from netd.client.channel import RECEIVE_SIZE, Channel, ClientError
from netd.client.chargen import ChargenError, ChargenVerifier, verifyDatagram
from netd.client.clock import BadTime, decodeTime, offsetFrom, parseDaytime
from netd.client.ping import Pinger

__all__ = [
    "Console",
    "echoOnce",
    "echoPing",
    "readChargen",
    "readDaytime",
    "readTime",
    "sendDiscard",
    "sendLines",
    "shown",
]

#: The largest datagram the UDP discard client sends: well under any path MTU.
DISCARD_DATAGRAM = 1024
#: How long to listen for an ICMP "port unreachable" after sending datagrams that get
#: no reply: long enough on a LAN to turn a closed port into an error.
SETTLE = 0.2
#: Control characters a terminal would act on: all but tab, newline and CRLF's CR.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]|\r(?!\n)")


@dataclass
class Console:
    """
    What the client reads and writes besides the network, and the clocks it measures
    with: passed in so that tests can drive it without a terminal.
    """

    stdin: BinaryIO = field(default_factory=lambda: sys.stdin.buffer)
    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)
    monotonic: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time

    def say(self, line: str) -> None:
        """One line of the report, flushed at once so a ping shows each reply live."""
        self.stdout.write(line + "\n")
        self.stdout.flush()

    def warn(self, line: str) -> None:
        self.stderr.write(f"netd client: {line}\n")
        self.stderr.flush()


def shown(data: bytes) -> str:
    """
    Bytes from the network as text safe for a terminal: control characters (an escape
    sequence a server could send) and invalid UTF-8 become C{\\xNN}.
    """
    return _CONTROL.sub(lambda m: f"\\x{ord(m[0]):02x}", data.decode("utf-8", "backslashreplace"))


def _milliseconds(elapsed: float) -> str:
    return f"{elapsed * 1000:.3f} ms"


def _throughput(size: int, elapsed: float) -> str:
    elapsed = max(elapsed, 1e-9)
    return (
        f"{size} bytes in {elapsed:.3f} s: {size / elapsed / 2**20:.1f} MiB/s, "
        f"{size * 8 / elapsed / 1e6:.1f} Mbit/s"
    )


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _difference(sent: bytes, reply: bytes) -> str:
    for index, (a, b) in enumerate(zip(sent, reply, strict=False)):
        if a != b:
            return f"differs at byte {index}: sent {bytes([a])!r}, got {bytes([b])!r}"
    return f"is {len(reply)} bytes, {len(sent)} were sent"


def echoOnce(channel: Channel, console: Console, message: bytes) -> int:
    """Send C{message}, check the echo is exactly it, print it and the round trip."""
    if not message and not channel.datagram:
        raise ClientError("nothing to echo: the message is empty")
    started = console.monotonic()
    if channel.datagram:
        channel.send(message)
        reply = channel.expect("echo reply")
    else:
        received = bytearray()
        channel.exchange(message, received.extend)
        while len(received) < len(message):
            data = channel.expect("echo reply", len(message) - len(received))
            if not data:
                raise ClientError(
                    f"{channel.peer} closed the connection after echoing {len(received)} "
                    f"of {len(message)} bytes"
                )
            received += data
        reply = bytes(received)
    elapsed = console.monotonic() - started
    if reply != message:
        raise ClientError(f"the echo from {channel.peer} {_difference(message, reply)}")
    console.say(shown(message).removesuffix("\n"))
    console.say(f"{len(reply)} bytes from {channel.peer} in {_milliseconds(elapsed)}")
    return 0


def echoPing(
    channel: Channel, console: Console, message: bytes, count: int, interval: float, tag: int
) -> int:
    """
    Ping with C{count} numbered probes: every reply on a line, then statistics.  The exit
    status is 1 if any probe went unanswered within the timeout.
    """
    kind = "udp" if channel.datagram else "stream"
    console.say(
        f"echo {channel.peer} ({kind}): {count} probes of {len(message) + 25} bytes, "
        f"every {interval:g} s, timeout {channel.timeout:g} s"
    )
    stats = Pinger(channel, message, tag, console.monotonic, console.say).run(count, interval)
    console.say(f"--- {channel.peer} echo statistics ---")
    for line in stats.summary():
        console.say(line)
    return 0 if stats.received == stats.sent else 1


def _readClock(
    channel: Channel, console: Console, what: str, limit: int
) -> tuple[bytes, float, float]:
    """
    Ask for the time; returns the answer, our clock halfway through the exchange, and
    the round trip.  Over a stream the server answers as soon as it accepts, so the
    exchange began when we started connecting.
    """
    if channel.datagram:
        channel.started = console.monotonic()
        channel.send(b"")  # RFC 867 and 868: any datagram, the empty one included
    data = channel.readToEnd(what, limit)
    now, wall = console.monotonic(), console.wall()
    elapsed = now - channel.started
    return data, wall - elapsed / 2, elapsed


def readTime(channel: Channel, console: Console) -> int:
    """RFC 868: print the server's time and its offset from our clock, like C{rdate -p}."""
    data, local, elapsed = _readClock(channel, console, "time", 64)
    try:
        server = decodeTime(data, local)
    except BadTime as e:
        raise ClientError(f"time from {channel.peer}: {e}") from None
    utc = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(server))
    console.say(f"time from {channel.peer}: {utc} ({time.ctime(server)} local)")
    console.say(
        f"offset {round(offsetFrom(server, local)):+d} s (server minus local clock; "
        f"resolution 1 s), round trip {_milliseconds(elapsed)}"
    )
    return 0


def readDaytime(channel: Channel, console: Console) -> int:
    """RFC 867: print the server's line and its offset from our clock, read as local time."""
    data, local, elapsed = _readClock(channel, console, "daytime", 512)
    line = data.rstrip(b"\r\n")
    console.say(f"daytime from {channel.peer}: {shown(line)}")
    try:
        server = parseDaytime(line)
    except BadTime as e:
        raise ClientError(f"daytime from {channel.peer}: {e}") from None
    console.say(
        f"offset {round(offsetFrom(server, local)):+d} s (server minus local clock, the line "
        f"read as local time; daytime has whole seconds: resolution 1 s), "
        f"round trip {_milliseconds(elapsed)}"
    )
    return 0


def readChargen(channel: Channel, console: Console, size: int) -> int:
    """
    Read C{size} bytes of RFC 864's pattern, checking every byte, and print the
    throughput.  Over UDP, one request datagram at a time, each answer whole lines.
    """
    if channel.datagram:
        return _chargenDatagrams(channel, console, size)
    verifier = ChargenVerifier()
    started = console.monotonic()
    while verifier.received < size:
        data = channel.expect("chargen data", min(RECEIVE_SIZE, size - verifier.received))
        if not data:
            raise ClientError(
                f"{channel.peer} closed the connection after {verifier.received} bytes"
            )
        try:
            verifier.feed(data)
        except ChargenError as e:
            raise ClientError(f"chargen from {channel.peer}: {e}") from None
    elapsed = console.monotonic() - started
    console.say(
        f"chargen from {channel.peer}: {_throughput(size, elapsed)}; pattern OK "
        f"({verifier.lines} whole lines from line {verifier.startLine})"
    )
    return 0


def _chargenDatagrams(channel: Channel, console: Console, size: int) -> int:
    received = datagrams = lines = 0
    started = console.monotonic()
    while received < size:
        channel.send(b"")
        data = channel.expect("chargen datagram")
        try:
            lines += verifyDatagram(data)
        except ChargenError as e:
            raise ClientError(
                f"chargen from {channel.peer}, datagram {datagrams + 1}: {e}"
            ) from None
        received, datagrams = received + len(data), datagrams + 1
    elapsed = console.monotonic() - started
    console.say(
        f"chargen from {channel.peer}: {_throughput(received, elapsed)} in {datagrams} "
        f"datagrams; pattern OK ({lines} whole lines)"
    )
    return 0


def _settle(channel: Channel) -> None:
    """
    After datagrams that get no answer, listen briefly: a closed port answers with ICMP
    port unreachable, which is the only failure UDP can report.

    @raise Refused: if it did.
    """
    channel.receive(min(channel.timeout, SETTLE))


def sendDiscard(channel: Channel, console: Console, size: int) -> int:
    """
    Send C{size} bytes and print the throughput.  Over a stream, confirm the server read
    everything: it must not close or write before our end of data, and must close after.
    """
    started = console.monotonic()
    if channel.datagram:
        chunk = bytes(DISCARD_DATAGRAM)
        for offset in range(0, size, DISCARD_DATAGRAM):
            channel.send(chunk[: size - offset])
        _settle(channel)
        elapsed = console.monotonic() - started
        datagrams = -(-size // DISCARD_DATAGRAM)
        console.say(
            f"discard to {channel.peer}: {_throughput(size, elapsed)} in {datagrams} datagrams "
            "(delivery is not confirmed over UDP)"
        )
        return 0
    chunk, unexpected = bytes(4 * RECEIVE_SIZE), bytearray()
    for offset in range(0, size, len(chunk)):
        channel.exchange(chunk[: size - offset], unexpected.extend)
    unexpected += channel.finish()
    elapsed = console.monotonic() - started
    if unexpected:
        raise ClientError(f"{channel.peer} sent {len(unexpected)} bytes: discard never writes")
    console.say(
        f"discard to {channel.peer}: {_throughput(size, elapsed)}; the server read it all "
        "and closed only after we did"
    )
    return 0


@dataclass
class _Acks:
    """The linelogger's answers: C{OK} once a line is durably written, C{ERR} if dropped."""

    ok: int = 0
    err: int = 0
    buffer: bytearray = field(default_factory=bytearray)

    def receiveFor(self, channel: Channel, number: int) -> None:
        while b"\n" not in self.buffer:
            data = channel.receive()
            if data is None:
                raise ClientError(
                    f"no ack for line {number} from {channel.peer} within {channel.timeout:g} s"
                )
            if not data:
                raise ClientError(
                    f"{channel.peer} closed the connection before acking line {number}"
                )
            self.buffer += data
        reply, _, rest = bytes(self.buffer).partition(b"\n")
        self.buffer[:] = rest
        if reply.rstrip(b"\r") == b"OK":
            self.ok += 1
        elif reply.rstrip(b"\r") == b"ERR":
            self.err += 1
        else:
            raise ClientError(f"{channel.peer} answered line {number} with {shown(reply)!r}")


def sendLines(channel: Channel, console: Console, service: str, ack: bool) -> int:
    """
    Send stdin line by line (one datagram per line over UDP).  With C{ack}, wait for the
    linelogger's C{OK} or C{ERR} after each line; the exit status is 1 for any C{ERR},
    a missing ack, or a connection that broke, after the counts are printed.
    """
    lines = size = 0
    acks = _Acks()
    problem = None
    try:
        for line in iter(console.stdin.readline, b""):
            line = line if line.endswith(b"\n") else line + b"\n"
            channel.send(line)
            lines, size = lines + 1, size + len(line)
            if ack:
                acks.receiveFor(channel, lines)
        if channel.datagram:
            _settle(channel)
        else:
            channel.finish()
    except ClientError as e:
        problem = str(e)
    report = f"{service} {channel.peer}: {_plural(lines, 'line')} ({size} bytes) sent"
    if ack:
        report += f"; {acks.ok} OK, {acks.err} ERR"
        if lines > acks.ok + acks.err:
            report += f", {lines - acks.ok - acks.err} unacknowledged"
    elif channel.datagram:
        report += " (delivery is not confirmed over UDP)"
    elif problem is None:
        report += "; the server read them all and closed only after we did"
    console.say(report)
    if problem is not None:
        console.warn(problem)
        return 1
    return 1 if acks.err else 0
