"""
Echo as ping: numbered probes, replies matched by number, statistics at the end.

Each probe carries a random run tag and its sequence number, so a late reply (after its
probe was counted lost), a duplicate, or a stray datagram never passes for the answer
to another probe.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from netd.client.channel import Channel, ClientError, DeadlineExpired, Refused, seconds

__all__ = ["PingStats", "Pinger", "decodeProbe", "encodeProbe", "percentile"]

_PROBE = re.compile(rb"netd ([0-9a-f]{8}) ([0-9]{10}) ")
#: The length of a probe's header: C{netd TAG SEQUENCE }.
HEADER_LENGTH = 25


def encodeProbe(tag: int, sequence: int, message: bytes) -> bytes:
    """Probe C{sequence} of the run tagged C{tag}: a fixed-size header, then C{message}."""
    return b"netd %08x %010d " % (tag, sequence) + message


def decodeProbe(data: bytes, tag: int, message: bytes) -> int | None:
    """The sequence number of a reply to this run's probe, or C{None} for anything else."""
    match = _PROBE.match(data)
    if match is None or int(match[1], 16) != tag or data[HEADER_LENGTH:] != message:
        return None
    return int(match[2])


def percentile(samples: list[float], percent: float) -> float:
    """
    The nearest-rank C{percent}th percentile: the smallest sample at or above which
    C{percent}% of the samples lie.  Always one of the samples, never an interpolation.
    """
    ordered = sorted(samples)
    rank = max(1, math.ceil(percent / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class PingStats:
    """
    What a ping run saw.

    @ivar rtts: round-trip times in seconds of the replies that came in time.
    @ivar late: replies that came after their probe was counted lost.
    @ivar duplicates: second and later replies to one probe.
    @ivar foreign: datagrams that answer no probe of this run.
    """

    sent: int = 0
    rtts: list[float] = field(default_factory=list)
    late: int = 0
    duplicates: int = 0
    foreign: int = 0

    @property
    def received(self) -> int:
        return len(self.rtts)

    @property
    def loss(self) -> float:
        """The percentage of probes not answered in time."""
        return 100 * (self.sent - self.received) / self.sent if self.sent else 0.0

    def summary(self) -> list[str]:
        """Ping's closing lines."""
        lines = [
            f"{self.sent} probes sent, {self.received} replies, {self.loss:.1f}% loss"
            f" ({self.late} late, {self.duplicates} duplicate, {self.foreign} foreign)"
        ]
        if self.rtts:
            values = (
                min(self.rtts),
                sum(self.rtts) / len(self.rtts),
                percentile(self.rtts, 99),
                max(self.rtts),
            )
            lines.append(
                "rtt min/avg/p99/max = " + "/".join(f"{v * 1000:.3f}" for v in values) + " ms"
            )
        return lines


class Pinger:
    """
    Send C{count} probes C{interval} seconds apart without waiting for replies, and
    match each reply to its probe; a probe not answered within the channel's timeout
    is lost.

    Over a stream the replies arrive in order and whole probes are cut from the byte
    stream; over UDP each datagram is one reply.
    """

    def __init__(
        self,
        channel: Channel,
        message: bytes,
        tag: int,
        monotonic: Callable[[], float],
        say: Callable[[str], None],
    ) -> None:
        self.channel = channel
        self.message = message
        self.tag = tag
        self.monotonic = monotonic
        self.say = say
        self.stats = PingStats()
        self.pending: dict[int, float] = {}
        self.answered: set[int] = set()
        self.lost: set[int] = set()
        self.buffer = bytearray()
        self.size = HEADER_LENGTH + len(message)

    def run(self, count: int, interval: float) -> PingStats:
        """
        Ping.  An expired overall deadline, or Ctrl-C as with ping(8), ends the run with
        the statistics of what was seen so far.
        """
        try:
            self._run(count, interval)
        except DeadlineExpired as e:
            self.say(f"{e}: {len(self.pending)} unanswered probes counted lost")
        except KeyboardInterrupt:
            self.say(f"interrupted: {len(self.pending)} unanswered probes counted lost")
        self.pending.clear()
        return self.stats

    def _run(self, count: int, interval: float) -> None:
        nextSequence, nextSend = 1, self.monotonic()
        while True:
            now = self._expire()
            if nextSequence > count and not self.pending:
                return
            if nextSequence <= count and now >= nextSend:
                self._send(nextSequence)
                nextSequence, nextSend = nextSequence + 1, nextSend + interval
                continue
            wakes = [sentAt + self.channel.timeout for sentAt in self.pending.values()]
            if nextSequence <= count:
                wakes.append(nextSend)
            self._receive(min(wakes) - now)

    def _expire(self) -> float:
        now = self.monotonic()
        for sequence, sentAt in sorted(self.pending.items()):
            if now - sentAt >= self.channel.timeout:
                self._lose(sequence, f"timed out after {seconds(self.channel.timeout)}")
        return now

    def _lose(self, sequence: int, why: str) -> None:
        del self.pending[sequence]
        self.lost.add(sequence)
        self.say(f"no reply from {self.channel.peer}: seq={sequence} ({why})")

    def _send(self, sequence: int) -> None:
        probe = encodeProbe(self.tag, sequence, self.message)
        self.stats.sent += 1
        self.pending[sequence] = self.monotonic()
        try:
            if self.channel.datagram:
                self.channel.send(probe)
            else:
                self.channel.exchange(probe, self.buffer.extend)
                self._cutReplies()
        except Refused:
            self._lose(sequence, "port unreachable")

    def _receive(self, wait: float) -> None:
        try:
            data = self.channel.receive(max(wait, 0.0))
        except Refused:
            if self.pending:
                self._lose(min(self.pending), "port unreachable")
            return
        if data is None:
            return
        if self.channel.datagram:
            self._reply(data)
            return
        if not data:
            raise ClientError(f"{self.channel.peer} closed the connection")
        self.buffer += data
        self._cutReplies()

    def _cutReplies(self) -> None:
        while len(self.buffer) >= self.size:
            reply = bytes(self.buffer[: self.size])
            del self.buffer[: self.size]
            if decodeProbe(reply, self.tag, self.message) is None:
                raise ClientError(
                    f"{self.channel.peer} echoed something we did not send: {reply[:40]!r}"
                )
            self._reply(reply)

    def _reply(self, data: bytes) -> None:
        sequence = decodeProbe(data, self.tag, self.message)
        now = self.monotonic()
        if sequence in self.pending:
            rtt = now - self.pending.pop(sequence)
            self.answered.add(sequence)
            self.stats.rtts.append(rtt)
            self.say(
                f"{len(data)} bytes from {self.channel.peer}: seq={sequence} time={rtt * 1000:.3f} ms"
            )
        elif sequence in self.answered:
            self.stats.duplicates += 1
            self.say(f"duplicate reply from {self.channel.peer}: seq={sequence} (ignored)")
        elif sequence in self.lost:
            self.stats.late += 1
            self.say(f"late reply from {self.channel.peer}: seq={sequence} (already counted lost)")
        else:
            self.stats.foreign += 1
