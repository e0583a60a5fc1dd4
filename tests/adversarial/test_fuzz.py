"""
Property-based fuzzing (hypothesis) of everything a client or an operator can feed netd:
every protocol behind its guard, the line splitter, the PROXY header, the config file and
the listen descriptions.  Arbitrary bytes in arbitrary chunkings must never raise or log
an error, never grow a buffer without bound, and end the connection by the rules.

Every property runs a fixed, derandomized number of examples with no example database,
so a run is deterministic and bounded in time (CI runs it under trial and pytest).  The
coverage-guided targets of L{tests.adversarial.fuzz_atheris} run here too, briefly.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import math
import os
import re
import struct
import subprocess
import sys
import tempfile
import tomllib
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver, MemoryReactorClock, StringTransport
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from netd.address import formatAddress
from netd.admission.datagram import NFS_PORT, GuardedDatagram, SharedLimits
from netd.admission.guard import (
    MIN_SWEEP,
    PROXY_HEADER_TIMEOUT,
    SWEEPS_PER_TIMEOUT,
    GuardedFactory,
    ServiceGuard,
)
from netd.admission.proxyheader import _V1_MAX
from netd.config.file import ConfigFileError, parseConfig
from netd.config.model import DaemonConfig
from netd.config.policy import buildPolicy
from netd.interfaces import DATAGRAM, STREAM
from netd.listen.endpoint import BadListen, ListenSpec, parseListen
from netd.protocols.clock import daytimeText, rfc868Bytes
from netd.protocols.greeting import banner
from netd.protocols.simple import _CHUNK, CYCLE
from netd.registry import Registry
from netd.stats import ServiceStats
from tests.support import builtins, makeContext

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PATH = "/etc/netd/netd.toml"

#: Client addresses, v4 and v6, as a listening port reports them.
PEERS = (
    IPv4Address("TCP", "192.0.2.7", 40000),
    IPv6Address("TCP", "2001:db8::7", 40000),
    IPv6Address("TCP", "::ffff:192.0.2.9", 40001),
)
#: PROXY-protocol peers netd believes by default (loopback; a unix peer counts as loopback).
TRUSTED = (
    IPv4Address("TCP", "127.0.0.1", 33000),
    IPv6Address("TCP", "::1", 33000),
    UNIXAddress(b"/run/haproxy.sock"),
)
UNTRUSTED = (IPv4Address("TCP", "198.51.100.1", 33000),)
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
_V2_MAX = 16 + 65535
_LINE_LOG = "{service} {peer}: {line!r}"
_DAYTIME = re.compile(rb"[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4}\r\n")

_REGISTRY: Registry | None = None


def registry() -> Registry:
    """The built-in protocols, discovered once (plugin scanning is the slow part)."""
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = builtins()
    return _REGISTRY


def bounded(examples: int) -> settings:
    """A fixed, deterministic number of examples; no example database left in the tree."""
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        print_blob=False,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# ---------------------------------------------------------------------------------------
# The in-memory connection and its driver


class Socket(StringTransport):
    """
    An in-memory connection that behaves as a real TCP transport where these properties
    look: once C{window} written bytes are unread it pauses its registered producer (the
    socket buffer is full) until the client reads; pausing, resuming and unregistering
    are allowed at any time, closed or not; an abort is recorded apart from a close.
    """

    aborted = False

    def __init__(self, peer: Any, window: int | None = None) -> None:
        super().__init__(peerAddress=peer)
        self.window = window
        self.unread = self.mostUnread = 0
        self.full = False

    def write(self, data: bytes) -> None:
        super().write(data)
        self.unread += len(data)
        self.mostUnread = max(self.mostUnread, self.unread)
        if self.window is not None and self.unread >= self.window and not self.full:
            if self.producer is not None:
                self.full = True
                self.producer.pauseProducing()

    def writeSequence(self, data: Any) -> None:
        self.write(b"".join(data))

    def read(self) -> None:
        """The client reads everything written so far."""
        self.unread = 0
        if self.full:
            self.full = False
            if self.producer is not None:
                self.producer.resumeProducing()

    def reading(self) -> bool:
        """Whether the reactor would read from this connection now."""
        return self.producerState == "producing" and not self.disconnecting

    def _checkState(self) -> None:
        """A real transport may be paused or resumed after it is closed: no error."""

    def unregisterProducer(self) -> None:
        self.producer = self.streaming = None

    def abortConnection(self) -> None:
        self.aborted = True
        super().abortConnection()


class ReactorClock(Clock):
    """
    A clock whose L{advance} is one reactor iteration: it runs the calls due when it
    starts, and a call they schedule for now (chargen's C{callLater(0)}) waits for the
    next one, as in a real reactor (L{Clock.advance} would run it at once, forever).
    """

    def advance(self, amount: float) -> None:
        self.rightNow += amount
        self._sortCalls()
        due = [call for call in self.calls if call.getTime() <= self.rightNow]
        for call in due:
            if call in self.calls:  # not cancelled by an earlier one
                self.calls.remove(call)
                call.called = 1
                call.func(*call.args, **call.kw)


@dataclass
class Run:
    """One connection driven through a script: what was delivered, what was logged."""

    protocol: Any
    socket: Socket
    clock: Clock
    events: list[dict[str, Any]]
    delivered: list[bytes] = field(default_factory=list)
    closedByServer: bool = False
    loggedBeforeClose: int = 0

    @property
    def received(self) -> bytes:
        return b"".join(self.delivered)


@contextmanager
def captured() -> Iterator[list[dict[str, Any]]]:
    """Every log event emitted inside the block."""
    observer = EventLoggingObserver()
    globalLogPublisher.addObserver(observer)
    try:
        yield observer  # type: ignore[misc]
    finally:
        globalLogPublisher.removeObserver(observer)


def failures(events: list[dict[str, Any]]) -> list[str]:
    """The logged errors among C{events}, as text."""
    return [
        f"{e.get('log_format')}: {e['log_failure'].getTraceback()}"
        for e in events
        if "log_failure" in e
    ]


def drive(
    factory: Any,
    peer: Any,
    script: list[tuple[str, Any]],
    clock: Clock,
    events: list[dict[str, Any]],
    window: int | None = None,
    late: bool = False,
    step: Callable[[Run], None] | None = None,
) -> Run:
    """
    Connect to C{factory} as a listening port does and play C{script}: C{("data", bytes)}
    arrives from the client; C{("read", None)} the client reads what was written;
    C{("tick", seconds)} time passes.  Data is delivered while the reactor would read
    (not paused, not closing), or always with C{late} (a TLS layer or a racing read
    can deliver after a close).  Then the connection ends: closed by the client unless
    the server closed it first.  C{step} checks invariants after every action.
    """
    socket = Socket(peer, window)
    protocol = factory.buildProtocol(peer)
    run = Run(protocol, socket, clock, events)
    if protocol is None:
        return run
    protocol.makeConnection(socket)
    queue: deque[bytes] = deque()
    for kind, value in script:
        if kind == "data":
            queue.append(value)
        elif kind == "read":
            socket.read()
        else:
            clock.advance(value)
        while queue and (late or socket.reading()):
            chunk = queue.popleft()
            run.delivered.append(chunk)
            protocol.dataReceived(chunk)
        if step is not None:
            step(run)
    run.closedByServer = socket.disconnecting
    run.loggedBeforeClose = len(loggedLines(events))
    protocol.connectionLost(Failure(ConnectionDone()))
    return run


@st.composite
def scripts(
    draw: Any,
    streams: st.SearchStrategy[bytes] | None = None,
    extras: st.SearchStrategy[tuple[str, Any]] | None = None,
    interleave: bool = True,
) -> tuple[bytes, list[tuple[str, Any]]]:
    """
    A byte stream cut at arbitrary points, with client reads and clock ticks (C{extras})
    between the chunks unless not C{interleave}: C{(stream, script)}.
    """
    data = draw(st.binary(max_size=1500) if streams is None else streams)
    cuts: set[int] = (
        draw(st.sets(st.integers(1, len(data) - 1), max_size=24)) if len(data) > 1 else set()
    )
    bounds = [0, *sorted(cuts), len(data)]
    chunks = [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False) if b > a]
    if extras is None:
        extras = st.one_of(
            st.just(("read", None)), st.tuples(st.just("tick"), st.sampled_from([0.0, 0.5, 3.0]))
        )
    script: list[tuple[str, Any]] = []
    between = st.lists(extras, max_size=2 if interleave else 0)
    for chunk in chunks:
        script.extend(draw(between))
        script.append(("data", chunk))
    script.extend(draw(between))
    return data, script


def loggedLines(events: list[dict[str, Any]]) -> list[str]:
    return [e["line"] for e in events if e.get("log_format") == _LINE_LOG]


def tooLongEvents(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if "over the {limit}-byte limit" in e.get("log_format", "")]


def closedEvents(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if "closed after" in e.get("log_format", "")]


def text(data: bytes) -> str:
    """Bytes as the loggers show them."""
    return data.decode("utf-8", "backslashreplace")


def referenceLines(data: bytes, maxLength: int) -> tuple[list[bytes], bool, bool]:
    """
    What a line logger with C{max-line-length = maxLength} must do with C{data}, written
    from the README rather than from the implementation: C{\\n} ends a line and one
    C{\\r} before it is not part of it; the first line over C{maxLength} is reported and
    the connection dropped, nothing after it kept.

    @return: C{(lines, overlongLine, overlongTail)}: the lines to log, whether a complete
        line is over the limit, and whether the unterminated rest already is (more than
        C{maxLength + 1} bytes: the limit plus a CR that a LF may still follow).
    """
    *complete, tail = data.split(b"\n")
    lines: list[bytes] = []
    for line in complete:
        line = line.removesuffix(b"\r")
        if len(line) > maxLength:
            return lines, True, False
        lines.append(line)
    return lines, False, len(tail) >= maxLength + 2


def checkLineLogger(
    test: SynchronousTestCase, run: Run, maxLength: int, ack: bool, pausedAtClose: bool
) -> None:
    """
    The line logger's rules, checked against L{referenceLines} of what was delivered.

    A client that closes while the logger is not reading (its answers unread) leaves
    lines read but not yet handed over: they are logged all the same, but a partial line
    is never judged then.
    """
    lines, overlongLine, overlongTail = referenceLines(run.received, maxLength)
    test.assertEqual(loggedLines(run.events), [text(line) for line in lines])
    reported = len(tooLongEvents(run.events))
    if overlongLine or (overlongTail and not pausedAtClose):
        test.assertEqual(reported, 1)
    elif not overlongTail:
        test.assertEqual(reported, 0)
    test.assertLessEqual(reported, 1)
    test.assertEqual(run.closedByServer, reported == 1 and not pausedAtClose)
    answers = b"OK\n" * run.loggedBeforeClose if ack else b""
    test.assertEqual(run.socket.value(), answers)


def checkGuardAfterClose(test: SynchronousTestCase, run: Run, guard: ServiceGuard) -> None:
    """The connection is gone from every count, its one closing line says who closed it."""
    [closed] = closedEvents(run.events)
    test.assertEqual(closed["reason"], "server closed" if run.closedByServer else "client closed")
    test.assertEqual(closed["peer"], formatAddress(run.socket.getPeer()))
    test.assertEqual(closed["bytesIn"], len(run.received))
    test.assertEqual(closed["bytesOut"], len(run.socket.value()))
    test.assertEqual(guard.connections, set())
    test.assertEqual(guard.counts.total, 0)
    test.assertEqual(guard.stats.active, 0)
    test.assertEqual(run.clock.getDelayedCalls(), [])


class NoErrorsMixin:
    """Run a property example with its log captured; fail on any error logged in it."""

    @contextmanager
    def example(self) -> Iterator[list[dict[str, Any]]]:
        test: Any = self
        with captured() as events:
            yield events
        test.assertEqual(failures(events), [])
        test.assertEqual(test.flushLoggedErrors(), [])


# ---------------------------------------------------------------------------------------
# Stream protocols behind their guard


STREAM_NAMES = (
    "echo",
    "discard",
    "chargen",
    "daytime",
    "time",
    "greeting",
    "logger",
    "linelogger",
)
#: These answer at once and close, whatever the client sends.
ANSWER_AND_CLOSE = ("daytime", "time", "greeting")


def guardedStream(name: str, clock: Clock, **settings: Any) -> tuple[GuardedFactory, ServiceGuard]:
    """The service C{name} wrapped as netd wraps it, with the default policy."""
    context = makeContext(name, clock=clock, **settings)
    served = registry().lookup(name).build(context)
    guard = ServiceGuard(name, buildPolicy({}), clock)
    return GuardedFactory(guard, served.stream), guard


def isChargenPrefix(data: bytes) -> bool:
    """Whether C{data} is the start of RFC 864's endless pattern."""
    cycles = len(data) // len(CYCLE) + 1
    return (CYCLE * cycles).startswith(data)


class StreamProtocolTests(NoErrorsMixin, SynchronousTestCase):
    @bounded(400)
    @given(
        name=st.sampled_from(STREAM_NAMES),
        played=scripts(),
        peer=st.sampled_from(PEERS),
        window=st.none() | st.integers(1, 300_000),
        start=st.floats(0, 2**33),
        message=st.text(max_size=40),
    )
    def test_everyProtocolAnyChunking(
        self,
        name: str,
        played: tuple[bytes, list[tuple[str, Any]]],
        peer: Any,
        window: int | None,
        start: float,
        message: str,
    ) -> None:
        """Every stream service answers any bytes in any chunking by its RFC, never raising, and its connection ends by the rules."""
        _, script = played
        clock = ReactorClock()
        clock.advance(start)
        settings = {"message": message, "max-line-length": 16384}
        factory, guard = guardedStream(name, clock, **settings)
        with self.example() as events:
            run = drive(factory, peer, script, clock, events, window, late=name in ANSWER_AND_CLOSE)
            output = run.socket.value()
            biggest = max(map(len, run.delivered), default=0)
            if name == "echo":
                self.assertEqual(output, run.received)
                if window is not None:
                    self.assertLess(run.socket.mostUnread, window + biggest + 1)
            elif name in ("discard", "logger"):
                self.assertEqual(output, b"")
            elif name == "chargen":
                self.assertTrue(isChargenPrefix(output))
                self.assertGreater(len(output), 0)
                if window is not None:
                    self.assertLess(run.socket.mostUnread, window + len(_CHUNK))
            elif name == "daytime":
                self.assertEqual(output, daytimeText(start))
                self.assertRegex(output, _DAYTIME)
            elif name == "time":
                self.assertEqual(output, rfc868Bytes(start))
            elif name == "greeting":
                self.assertEqual(output, banner(message))
            if name == "logger":
                sent = [e for e in events if "sent {size} bytes" in e.get("log_format", "")]
                self.assertEqual([e["size"] for e in sent], list(map(len, run.delivered)))
                self.assertEqual([e["data"] for e in sent], [text(c[:1024]) for c in run.delivered])
            if name == "linelogger":
                checkLineLogger(self, run, 16384, ack=False, pausedAtClose=False)
            self.assertEqual(run.closedByServer, name in ANSWER_AND_CLOSE)
            checkGuardAfterClose(self, run, guard)

    @bounded(150)
    @given(
        played=scripts(
            extras=st.one_of(
                st.just(("read", None)),
                st.tuples(st.just("tick"), st.integers(1, 40)),
            )
        ),
        idle=st.sampled_from([0.0, 1.0, 2.5, 7.0]),
        lifetime=st.sampled_from([0.0, 1.0, 4.0, 30.0]),
    )
    def test_timeoutsEndConnections(
        self, played: tuple[bytes, list[tuple[str, Any]]], idle: float, lifetime: float
    ) -> None:
        """An echo connection is closed for idleness or age never early and at most a few sweeps late."""
        _, script = played
        clock = ReactorClock()
        factory, guard = guardedStream("echo", clock)
        guard.update(buildPolicy({"idle-timeout": idle, "max-lifetime": lifetime}))
        guard.startSweeping()
        period = max(
            MIN_SWEEP,
            min([t for t in (idle, lifetime) if t] + [PROXY_HEADER_TIMEOUT]) / SWEEPS_PER_TIMEOUT,
        )
        # A tick of n advances the clock n sweep periods, one period at a time, as a
        # reactor would run the sweep: on time, not once at the end of a long jump.
        stepped = [(kind, value) if kind != "tick" else ("ticks", value) for kind, value in script]
        lastActive = 0.0
        closedAt: float | None = None
        slack = 3 * period + 1e-6
        with self.example() as events:
            socket = Socket(PEERS[0])
            protocol = factory.buildProtocol(PEERS[0])
            protocol.makeConnection(socket)
            for kind, value in stepped:
                if closedAt is not None:
                    break
                if kind == "data":
                    protocol.dataReceived(value)
                    lastActive = clock.seconds()
                    continue
                if kind == "read":
                    continue
                for _ in range(value):
                    clock.advance(period)
                    now = clock.seconds()
                    if socket.disconnecting:
                        closedAt = now
                        break
                    if idle:
                        self.assertLess(now - lastActive, idle + slack)
                    if lifetime:
                        self.assertLess(now, lifetime + slack)
            reason = protocol.endReason
            if closedAt is None:
                self.assertIsNone(reason)
            elif reason == "idle timeout":
                self.assertGreaterEqual(closedAt - lastActive, idle - 1e-6)
            else:
                self.assertEqual(reason, "max lifetime")
                self.assertGreaterEqual(closedAt, lifetime - 1e-6)
            protocol.connectionLost(Failure(ConnectionDone()))
            guard.stopSweeping()
            self.assertEqual(guard.connections, set())
            [closed] = closedEvents(events)
            self.assertEqual(closed["reason"], reason or "client closed")


# ---------------------------------------------------------------------------------------
# The line splitter


#: Pieces that make lines: terminators, CRs in odd places, invalid UTF-8, long runs.
_PIECES = st.one_of(
    st.sampled_from([b"\n", b"\r\n", b"\r", b"\r\r\n", b"\n\n", b"\xff\xfe", b"\x1b[31m"]),
    st.binary(max_size=12),
    st.builds(lambda n: b"x" * n, st.integers(0, 90)),
)


def lines(least: int, most: int) -> st.SearchStrategy[bytes]:
    """Whole lines of lengths around any small limit, with either terminator (or none)."""
    line = st.tuples(st.integers(0, 12), st.sampled_from([b"\n", b"\r\n", b"\r", b""]))
    return st.lists(
        line.map(lambda parts: b"y" * parts[0] + parts[1]), min_size=least, max_size=most
    ).map(b"".join)


_LINES = lines(0, 12)
LINE_STREAMS = st.one_of(
    _LINES,
    st.lists(_PIECES, max_size=30).map(b"".join),
    st.binary(max_size=400),
)


#: A client that seldom reads its answers: the logger is often paused when it closes.
_MOSTLY_UNREAD = st.integers(0, 5).map(lambda pick: ("read", None) if pick == 3 else ("tick", 0.0))


class LineLoggerTests(NoErrorsMixin, SynchronousTestCase):
    @bounded(500)
    @given(
        played=scripts(streams=LINE_STREAMS, extras=_MOSTLY_UNREAD),
        maxLength=st.integers(1, 40) | st.integers(1, 6),
        ack=st.booleans(),
        window=st.none() | st.integers(1, 12),
    )
    def test_linesInAnyChunking(
        self,
        played: tuple[bytes, list[tuple[str, Any]]],
        maxLength: int,
        ack: bool,
        window: int | None,
    ) -> None:
        """The line logger logs exactly the reference splitter's lines in every chunking, drops the connection iff a line is over the limit, and its buffer stays within the limit plus one read."""
        _, script = played
        clock = ReactorClock()
        factory, guard = guardedStream(
            "linelogger", clock, **{"max-line-length": maxLength, "ack": ack}
        )

        def bufferBounded(run: Run) -> None:
            inner = run.protocol.wrappedProtocol
            if inner is not None:
                # Paused mid-read (answers unread), the rest of that read waits too.
                lastRead = len(run.delivered[-1]) if inner.paused and run.delivered else 0
                self.assertLessEqual(len(inner._buffer), maxLength + 1 + lastRead)

        with self.example() as events:
            run = drive(factory, PEERS[0], script, clock, events, window, step=bufferBounded)
            pausedAtClose = not run.closedByServer and run.socket.producerState == "paused"
            checkLineLogger(self, run, maxLength, ack, pausedAtClose)
            checkGuardAfterClose(self, run, guard)

    @bounded(300)
    @given(
        played=scripts(streams=lines(3, 16), extras=_MOSTLY_UNREAD),
        maxLength=st.integers(1, 8),
        window=st.integers(1, 9),
    )
    def test_unreadAnswersPauseTheLines(
        self, played: tuple[bytes, list[tuple[str, Any]]], maxLength: int, window: int
    ) -> None:
        """With ack, a client that leaves its answers unread is not read either, and the lines it sent are logged by the same rules when it closes."""
        _, script = played
        clock = ReactorClock()
        factory, guard = guardedStream(
            "linelogger", clock, **{"max-line-length": maxLength, "ack": True}
        )
        with self.example() as events:
            run = drive(factory, PEERS[0], script, clock, events, window)
            pausedAtClose = not run.closedByServer and run.socket.producerState == "paused"
            checkLineLogger(self, run, maxLength, True, pausedAtClose)
            self.assertLess(run.socket.mostUnread, window + len(b"OK\n"))
            checkGuardAfterClose(self, run, guard)

    @bounded(300)
    @given(stream=LINE_STREAMS, maxLength=st.integers(1, 40), data=st.data())
    def test_sameLinesInEveryChunking(self, stream: bytes, maxLength: int, data: Any) -> None:
        """Two chunkings of one stream log the same lines and drop the connection alike."""
        outcomes = []
        for _ in range(2):
            _, script = data.draw(scripts(streams=st.just(stream), interleave=False))
            clock = ReactorClock()
            factory, _ = guardedStream("linelogger", clock, **{"max-line-length": maxLength})
            with self.example() as events:
                run = drive(factory, PEERS[0], script, clock, events)
                outcomes.append((loggedLines(events), run.closedByServer))
        self.assertEqual(outcomes[0], outcomes[1])


# ---------------------------------------------------------------------------------------
# Datagram protocols behind their guard


DATAGRAM_NAMES = ("echo", "discard", "chargen", "daytime", "time", "logger", "linelogger")
_SPECIAL_HOSTS = (
    "0.0.0.0",
    "255.255.255.255",
    "224.0.0.1",
    "239.255.255.250",
    "::",
    "ff02::1",
    "::ffff:255.255.255.255",
    "::ffff:0.0.0.0",
    "::ffff:224.0.0.1",
    "fe80::1%eth0",
    "127.0.0.1",
    "192.0.2.1",
)
HOSTS = st.one_of(
    st.sampled_from(_SPECIAL_HOSTS),
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(str),
)


def answerable(host: str, port: int, servicePorts: set[int]) -> bool:
    """
    Whether a datagram from C{(host, port)} may be answered, as the README states it: not
    from another server's port (below 1024, NFS, this daemon's own service ports), not
    from an address no client can have (unspecified, broadcast, multicast).
    """
    if port < 1024 or port == NFS_PORT or port in servicePorts:
        return False
    address = ipaddress.ip_address(host.partition("%")[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    broadcast = address == ipaddress.IPv4Address("255.255.255.255")
    return not (address.is_unspecified or address.is_multicast or broadcast)


class Recorder:
    """A datagram port that records every reply."""

    def __init__(self) -> None:
        self.written: list[tuple[bytes, Any]] = []

    def write(self, data: bytes, addr: Any = None) -> None:
        self.written.append((data, addr))


class DatagramTests(NoErrorsMixin, SynchronousTestCase):
    @bounded(300)
    @given(
        name=st.sampled_from(DATAGRAM_NAMES),
        servicePorts=st.sets(st.integers(1024, 65535), max_size=3),
        data=st.data(),
        start=st.floats(0, 2**33),
        maxLength=st.integers(1, 100),
    )
    def test_repliesOnlyToClientsAndBounded(
        self, name: str, servicePorts: set[int], data: Any, start: float, maxLength: int
    ) -> None:
        """Any datagram from any source is answered only when its source may be a client, and by the RFC's bounded reply."""
        ports = st.one_of(
            st.integers(0, 65535),
            st.sampled_from(sorted(servicePorts | {0, 7, 19, 1023, 1024, NFS_PORT, 65535})),
        )
        datagrams = data.draw(
            st.lists(st.tuples(st.binary(max_size=700), HOSTS, ports), max_size=12)
        )
        clock = ReactorClock()
        clock.advance(start)
        context = makeContext(name, clock=clock, **{"max-line-length": maxLength})
        inner = registry().lookup(name).build(context).datagram()  # type: ignore[misc]
        shared = SharedLimits(clock, 0)
        shared.servicePorts.update(servicePorts)
        stats = ServiceStats()
        guarded = GuardedDatagram(name, inner, buildPolicy({"udp-rate": 0}), clock, stats, shared)
        port = Recorder()
        with self.example() as events:
            guarded.makeConnection(port)
            answered = 0
            for datagram, host, sourcePort in datagrams:
                before = len(port.written)
                guarded.datagramReceived(datagram, (host, sourcePort))
                replies = port.written[before:]
                allowed = answerable(host, sourcePort, servicePorts)
                answered += allowed
                if not allowed or name in ("discard", "logger", "linelogger"):
                    self.assertEqual(replies, [])
                    continue
                [(reply, addr)] = replies
                self.assertEqual(addr, (host, sourcePort))
                if name == "echo":
                    self.assertEqual(reply, datagram)
                elif name == "chargen":
                    self.assertLessEqual(len(reply), 512)
                    self.assertEqual(len(reply) % 74, 0)
                    self.assertEqual((CYCLE * 2).find(reply) % 74, 0)
                elif name == "daytime":
                    self.assertEqual(reply, daytimeText(start))
                    self.assertRegex(reply, _DAYTIME)
                elif name == "time":
                    self.assertEqual(reply, rfc868Bytes(start))
            self.assertEqual(stats.datagramsIn, len(datagrams))
            self.assertEqual(sum(stats.dropped.values()), len(datagrams) - answered)
            if name == "linelogger":
                kept = [
                    d.removesuffix(b"\n").removesuffix(b"\r")
                    for d, h, p in datagrams
                    if answerable(h, p, servicePorts)
                ]
                self.assertEqual(
                    loggedLines(events), [text(line) for line in kept if len(line) <= maxLength]
                )


# ---------------------------------------------------------------------------------------
# The PROXY header


def v1Header(family: str, source: str, dest: str, sport: int, dport: int) -> bytes:
    return f"PROXY {family} {source} {dest} {sport} {dport}\r\n".encode()


@st.composite
def v1Headers(draw: Any) -> tuple[bytes, str | None]:
    """A valid PROXY v1 line and the source it names (C{None}: the proxy itself)."""
    kind = draw(st.sampled_from(["TCP4", "TCP6", "UNKNOWN", "UNKNOWN+"]))
    if kind.startswith("UNKNOWN"):
        extra = ""
        if kind == "UNKNOWN+":
            extra = " " + draw(
                st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=80)
            )
        return f"PROXY UNKNOWN{extra}\r\n".encode(), None
    version = 4 if kind == "TCP4" else 6
    source = str(draw(st.ip_addresses(v=version)))
    dest = str(draw(st.ip_addresses(v=version)))
    ports = st.integers(0, 65535)
    return v1Header(kind, source, dest, draw(ports), draw(ports)), source


@st.composite
def v2Headers(draw: Any) -> tuple[bytes, str | None]:
    """A valid PROXY v2 header (any command, family, TLVs) and the source it names."""
    command = draw(st.sampled_from([0x0, 0x1]))  # LOCAL, PROXY
    family = draw(st.sampled_from([0x0, 0x1, 0x2, 0x3]))  # UNSPEC, INET, INET6, UNIX
    proto = draw(st.sampled_from([0x0, 0x1, 0x2]))  # UNSPEC, STREAM, DGRAM
    source: str | None = None
    if family == 0x1:
        src, dst = draw(st.ip_addresses(v=4)), draw(st.ip_addresses(v=4))
        body = src.packed + dst.packed + struct.pack("!HH", draw(st.integers(0, 65535)), 7)
        source = str(src)
    elif family == 0x2:
        src, dst = draw(st.ip_addresses(v=6)), draw(st.ip_addresses(v=6))
        body = src.packed + dst.packed + struct.pack("!HH", draw(st.integers(0, 65535)), 7)
        source = str(src)
    elif family == 0x3:
        body = draw(st.binary(min_size=216, max_size=216))
    else:
        body = b""
    body += draw(st.binary(max_size=300))  # TLVs, or anything: the length covers them
    if command == 0x0 or family in (0x0, 0x3) or proto == 0x0:
        source = None
    header = V2_SIGNATURE + bytes([0x20 | command, family << 4 | proto])
    return header + struct.pack("!H", len(body)) + body, source


#: Streams that reach deep into the header parsers, not only their first byte.
PROXY_STREAMS = st.one_of(
    st.binary(max_size=300),
    st.binary(max_size=200).map(lambda b: b"PROXY " + b),
    st.binary(max_size=300).map(lambda b: V2_SIGNATURE + b),
    st.tuples(
        st.sampled_from([b"TCP4", b"TCP6", b"UNKNOWN", b"tcp4", b""]),
        st.lists(
            st.sampled_from(
                [b"1.2.3.4", b"::1", b"65535", b"65536", b"-1", b"x", b"", b"\xff", b"1_0", b"+5"]
            ),
            max_size=5,
        ),
    ).map(lambda t: b"PROXY " + b" ".join([t[0], *t[1]]) + b"\r\nrest"),
    st.tuples(v1Headers(), st.binary(max_size=40)).map(lambda t: t[0][0] + t[1]),
    st.tuples(v2Headers(), st.binary(max_size=40)).map(lambda t: t[0][0] + t[1]),
)


def proxyBuffered(protocol: Any) -> tuple[str, int] | None:
    """What the header parser holds before deciding, C{None} once it has decided."""
    parser = protocol._parser
    if parser is None:
        return None
    inner = parser._parser
    held = len(parser._sniffed) + len(getattr(inner, "buffer", b""))
    return ("sniff" if inner is None else type(inner).__name__), held


def proxyOutcome(run: Run) -> tuple[str, Any]:
    """C{("served", peer)}, C{("refused", None)} or C{("waiting", None)}."""
    if run.protocol.wrappedProtocol is not None:
        return "served", run.protocol.getPeer()
    if run.socket.disconnecting:
        return "refused", None
    return "waiting", None


class ProxyHeaderTests(NoErrorsMixin, SynchronousTestCase):
    def proxied(self, clock: Clock) -> tuple[GuardedFactory, ServiceGuard]:
        context = makeContext("echo", clock=clock)
        guard = ServiceGuard("echo", buildPolicy({}), clock)
        served = registry().lookup("echo").build(context)
        return GuardedFactory(guard, served.stream, proxied=True), guard

    def play(
        self, script: list[tuple[str, Any]], peer: Any, events: list[dict[str, Any]]
    ) -> tuple[Run, tuple[str, Any], ServiceGuard]:
        """Drive a proxied echo; check the parser's bound after every chunk; the outcome before the close."""
        clock = ReactorClock()
        factory, guard = self.proxied(clock)
        outcome: list[tuple[str, Any]] = []

        def step(run: Run) -> None:
            held = proxyBuffered(run.protocol)
            if held is not None:
                stage, size = held
                limit = {"sniff": len(V2_SIGNATURE) + 3, "_V1Parser": _V1_MAX}.get(
                    stage, _V2_MAX - 1
                )
                self.assertLessEqual(size, limit, stage)
            outcome[:] = [proxyOutcome(run)]

        socket = Socket(peer)
        protocol = factory.buildProtocol(peer)
        run = Run(protocol, socket, clock, events)
        if protocol is None:
            return run, ("untrusted", None), guard
        protocol.makeConnection(socket)
        for _, chunk in script:
            if not socket.reading():
                break
            run.delivered.append(chunk)
            protocol.dataReceived(chunk)
            step(run)
        step(run)
        return run, outcome[0], guard

    @bounded(300)
    @given(
        played=scripts(streams=PROXY_STREAMS, interleave=False),
        peer=st.sampled_from(TRUSTED + UNTRUSTED),
    )
    def test_anyBytesServedOrRefused(
        self, played: tuple[bytes, list[tuple[str, Any]]], peer: Any
    ) -> None:
        """Any bytes from a proxy end as a served client, a C{proxy-header} refusal, or a wait bounded in bytes and time, in every chunking alike."""
        stream, script = played
        with self.example() as events:
            run, outcome, guard = self.play(script, peer, events)
            if peer in UNTRUSTED:
                self.assertEqual(outcome[0], "untrusted")
                self.assertEqual(dict(guard.stats.refused), {"untrusted-proxy": 1})
                return
            whole, _, _ = self.play([("data", stream)] if stream else [], peer, [])
            self.assertEqual(proxyOutcome(whole)[0], outcome[0])
            kind, client = outcome
            if kind == "served":
                self.assertEqual(client, whole.protocol.getPeer())
                self.assertEqual(run.socket.value(), whole.socket.value())
                self.assertFalse(run.socket.aborted)
            elif kind == "refused":
                self.assertTrue(run.socket.aborted)
                self.assertEqual(run.socket.value(), b"")
                self.assertEqual(dict(guard.stats.refused), {"proxy-header": 1})
                self.assertEqual(run.protocol.endReason, "bad proxy header")
            else:
                guard.startSweeping()
                run.clock.advance(PROXY_HEADER_TIMEOUT)
                run.clock.advance(PROXY_HEADER_TIMEOUT / SWEEPS_PER_TIMEOUT)
                guard.stopSweeping()
                self.assertTrue(run.socket.aborted)
                self.assertEqual(run.protocol.endReason, "proxy header timeout")
            run.protocol.connectionLost(Failure(ConnectionDone()))
            self.assertEqual(guard.connections, set())
            self.assertEqual(guard.counts.total, 0)

    @bounded(300)
    @given(
        header=st.one_of(v1Headers(), v2Headers()),
        payload=st.binary(max_size=200),
        peer=st.sampled_from(TRUSTED),
        data=st.data(),
    )
    def test_validHeaderServesItsSource(
        self, header: tuple[bytes, str | None], payload: bytes, peer: Any, data: Any
    ) -> None:
        """A valid v1 or v2 header and its payload, in any chunking, serve the client the header names (the proxy itself for LOCAL, UNKNOWN or a unix source)."""
        line, source = header
        _, script = data.draw(scripts(streams=st.just(line + payload), interleave=False))
        with self.example() as events:
            run, (kind, client), guard = self.play(script, peer, events)
            self.assertEqual(kind, "served")
            if source is None:
                self.assertEqual(client, peer)
            else:
                self.assertEqual(ipaddress.ip_address(client.host), ipaddress.ip_address(source))
            self.assertEqual(run.socket.value(), payload)
            run.protocol.connectionLost(Failure(ConnectionDone()))
            [closed] = closedEvents(events)
            self.assertEqual(closed["peer"], formatAddress(client))
            self.assertEqual(closed["bytesIn"], len(line) + len(payload))
            self.assertEqual(guard.counts.total, 0)


# ---------------------------------------------------------------------------------------
# The config file


class Raw(str):
    """TOML written as is (a date, a time): what the writer below cannot spell otherwise."""


def tomlString(value: str) -> str:
    escaped = []
    for char in value:
        if char in '"\\':
            escaped.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            escaped.append(f"\\u{ord(char):04x}")
        else:
            escaped.append(char)
    return '"' + "".join(escaped) + '"'


def tomlValue(value: Any) -> str:
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return tomlString(value)
    if isinstance(value, list):
        return "[" + ", ".join(map(tomlValue, value)) + "]"
    return "{" + ", ".join(f"{tomlString(k)} = {tomlValue(v)}" for k, v in value.items()) + "}"


def tomlDocument(document: dict[str, Any]) -> str:
    """
    A TOML document: top-level plain keys first, then a C{[table]} per table, its nested
    tables as C{[table."name"]} headers (as an operator writes C{[services.echo]}).
    """
    lines: list[str] = []

    def table(path: list[str], body: dict[str, Any]) -> None:
        if path:
            lines.append("[" + ".".join(map(tomlString, path)) + "]")
        for key, value in body.items():
            if not isinstance(value, dict):
                lines.append(f"{tomlString(key)} = {tomlValue(value)}")
        for key, value in body.items():
            if isinstance(value, dict):
                table([*path, key], value)

    table([], document)
    return "\n".join(lines) + "\n"


#: Numbers at the edges of every coercion: infinities, NaN, past 64 bits, negative zero.
_EDGE_NUMBERS = st.sampled_from(
    [math.inf, -math.inf, math.nan, 1e300, -0.0, 0.5, 1.0, 2**63, 2**64, -1, 0, 1, 65535, 65536]
)
_SCALARS = st.one_of(
    _EDGE_NUMBERS,
    st.integers(-3, 70000),
    st.integers(),
    st.floats(),
    st.booleans(),
    st.text(max_size=12),
    st.sampled_from(
        [
            Raw("1979-05-27T07:32:00Z"),
            Raw("1979-05-27"),
            Raw("07:32:00"),
            "",
            "10K",
            "16M",
            "1G",
            "0",
            "always",
            "never",
            "interval=100",
            "interval=0",
            "yes",
            "no",
            "text",
            "json",
        ]
    ),
)
_NETWORKS = st.sampled_from(
    [
        "127.0.0.1",
        "10.0.0.0/8",
        "::1",
        "2001:db8::/32",
        "0.0.0.0/0",
        "::/0",
        "10.0.0.1/8",
        "::ffff:10.0.0.0/104",
        "fe80::1%eth0",
        "x",
        "",
        "300.0.0.0",
    ]
)


def listenDescriptions() -> st.SearchStrategy[str]:
    """Plausible listen descriptions, valid or nearly (see L{EndpointParserTests})."""
    return ENDPOINTS


_VALUES = st.one_of(
    _SCALARS,
    _NETWORKS,
    st.lists(_NETWORKS, max_size=3),
    st.lists(_SCALARS, max_size=3),
    st.deferred(listenDescriptions),
    st.lists(st.deferred(listenDescriptions), max_size=3),
    st.dictionaries(st.text(max_size=6), _SCALARS, max_size=2),
)
_NUMBERS = st.integers(0, 3).flatmap(
    lambda pick: {0: st.integers(-1, 70000), 3: st.floats(0, 1e6)}.get(pick, _EDGE_NUMBERS)
)
_NETWORK_LISTS = st.one_of(_NETWORKS, st.lists(_NETWORKS, max_size=3))
_LISTENS = st.one_of(
    st.deferred(listenDescriptions),
    st.lists(st.deferred(listenDescriptions), max_size=3),
    st.sampled_from(["tcp:0", "udp:0", "tcp:7:interface=127.0.0.1", "udp:7"]),
    st.lists(st.sampled_from(["tcp:0", "udp:0", "tcp:7", "udp:7", "unix:/run/x"]), max_size=3),
)
#: What each key of the file usually holds, so that documents reach past the first check.
_PLAUSIBLE: dict[str, st.SearchStrategy[Any]] = {
    "protocol": st.sampled_from(STREAM_NAMES) | st.text(max_size=6),
    "listen": _LISTENS,
    "enabled": st.booleans(),
    "allow": _NETWORK_LISTS,
    "deny": _NETWORK_LISTS,
    "trusted-proxies": _NETWORK_LISTS,
    "max-connections": _NUMBERS,
    "max-per-source": _NUMBERS,
    "ipv6-prefix": _NUMBERS,
    "rate": _NUMBERS,
    "burst": _NUMBERS,
    "idle-timeout": _NUMBERS,
    "max-lifetime": _NUMBERS,
    "udp-rate": _NUMBERS,
    "udp-burst": _NUMBERS,
    "refused-banner": st.text(max_size=20),
    "allow-amplification": st.booleans(),
    "answer-service-ports": st.booleans(),
    "tls-client-ca": st.sampled_from(["/nonexistent/ca.pem", "", "/dev/null"]),
    "message": st.text(max_size=20),
    "max-line-length": _NUMBERS,
    "output": st.sampled_from(["/nonexistent/lines.json", ""]),
    "fsync": st.sampled_from(["always", "never", "interval=100", "interval=0", "sometimes"]),
    "max-buffer": st.one_of(_NUMBERS, st.sampled_from(["16M", "1k", "0K", "9" * 5000, "\u0661K"])),
    "ack": st.one_of(st.booleans(), st.sampled_from(["yes", "no", "maybe"])),
    "shutdown-timeout": _NUMBERS,
    "udp-reply-budget": _NUMBERS,
    "log-format": st.sampled_from(["text", "json", "xml"]),
    "admin": st.one_of(_NUMBERS, _LISTENS),
}
_POLICY_NAMES = [
    "allow",
    "deny",
    "max-connections",
    "max-per-source",
    "ipv6-prefix",
    "rate",
    "burst",
    "idle-timeout",
    "max-lifetime",
    "refused-banner",
    "udp-rate",
    "udp-burst",
    "allow-amplification",
    "trusted-proxies",
    "answer-service-ports",
    "tls-client-ca",
]
_OPTION_NAMES = ["message", "max-line-length", "output", "fsync", "max-buffer", "ack"]
_SERVICE_KEYS = ["protocol", "listen", "enabled", *_POLICY_NAMES, *_OPTION_NAMES]


def valueFor(key: str) -> st.SearchStrategy[Any]:
    """Mostly what C{key} holds; sometimes anything at all (never a real CA file)."""
    plausible = _PLAUSIBLE.get(key, _VALUES)
    anything = _PLAUSIBLE["tls-client-ca"] if key == "tls-client-ca" else _VALUES
    # (hypothesis favours the ends of a range: the odd one out sits in the middle)
    return st.integers(0, 4).flatmap(lambda pick: anything if pick == 2 else plausible)


def table(keys: list[str], size: int = 5) -> st.SearchStrategy[dict[str, Any]]:
    """A table of known C{keys} with their values, now and then a stranger among them."""
    names = st.integers(0, 14).flatmap(
        lambda pick: st.text(max_size=8) if pick == 7 else st.sampled_from(keys)
    )
    return st.lists(names, unique=True, max_size=size).flatmap(
        lambda chosen: st.fixed_dictionaries({key: valueFor(key) for key in chosen})
    )


_SERVICE_NAMES = st.one_of(st.sampled_from(STREAM_NAMES), st.text(max_size=8))
_SERVICE_TABLES = st.dictionaries(_SERVICE_NAMES, table(_SERVICE_KEYS), min_size=1, max_size=3)
CONFIG_DOCUMENTS = st.tuples(
    st.integers(0, 2).flatmap(
        lambda pick: (
            table(["shutdown-timeout", "udp-reply-budget", "log-format", "admin"], 2)
            if pick == 1
            else st.just({})
        )
    ),
    st.integers(0, 4).flatmap(lambda pick: _SCALARS if pick == 2 else table(_POLICY_NAMES)),
    st.integers(0, 9).flatmap(
        lambda pick: {
            4: _SCALARS,
            5: st.dictionaries(_SERVICE_NAMES, _VALUES, max_size=2),
        }.get(pick, _SERVICE_TABLES)
    ),
    st.booleans(),
).map(
    lambda parts: {
        **parts[0],
        **({"defaults": parts[1]} if parts[3] else {}),
        "services": parts[2],
    }
)
#: Lines an operator (or a typo) writes; joined in any order, they make text that is
#: often TOML and often nearly so.
CONFIG_LINES = st.sampled_from(
    [
        "[services.echo]",
        "[services.linelogger]",
        "[services.chargen]",
        "[services.daytime]",
        "[defaults]",
        "[services]",
        "[[services.echo]]",
        'listen = ["tcp:10007:interface=127.0.0.1", "udp:10007"]',
        'listen = "udp:0"',
        'listen = "tcp:0"',
        "listen = []",
        "max-connections = inf",
        "max-connections = nan",
        "max-connections = 1e400",
        "max-connections = 9999999999999999999",
        "max-per-source = -1",
        "ipv6-prefix = 129",
        "rate = 1.5",
        "burst = 0",
        "idle-timeout = -inf",
        "max-line-length = inf",
        "max-line-length = 0",
        "max-buffer = '16M'",
        "fsync = 'interval=0'",
        "ack = 'maybe'",
        "enabled = false",
        "protocol = 'nope'",
        "allow = ['10.0.0.0/8', 'x']",
        "deny = '::1'",
        "trusted-proxies = []",
        "allow-amplification = true",
        "refused-banner = 'go away\\r\\n'",
        "message = 1979-05-27",
        "admin = 9100",
        "admin = 'udp:9100'",
        "log-format = 'xml'",
        "shutdown-timeout = 1e309",
        "udp-reply-budget = true",
        "x = 1",
        "= 1",
        "listen = [",
        '"',
        "",
    ]
)
_HEADERS = st.sampled_from(
    ["[services.echo]", "[services.linelogger]", "[services.greeting]", "[defaults]", "", "[x]"]
)
#: Sections: a table header and the lines under it.
_SECTIONS = st.lists(
    st.tuples(_HEADERS, st.lists(CONFIG_LINES, max_size=4)).map(
        lambda section: "\n".join([section[0], *section[1]])
    ),
    max_size=4,
).map("\n".join)
CONFIG_TEXTS = st.one_of(
    st.text(max_size=300),
    _SECTIONS,
    st.lists(CONFIG_LINES, max_size=12).map("\n".join),
    st.lists(st.one_of(CONFIG_LINES, st.text(max_size=20)), max_size=10).map("\n".join),
)


def checkConfig(test: SynchronousTestCase, text: str) -> DaemonConfig | None:
    """C{parseConfig(text)} is a config or a one-line error naming the file, nothing else."""
    try:
        config = parseConfig(text, PATH, registry())
    except ConfigFileError as e:
        message = str(e)
        test.assertTrue(message.startswith(PATH + ": "), message)
        test.assertEqual(len(message.splitlines()), 1, message)
        test.assertTrue(message.isprintable(), message)
        return None
    test.assertIsInstance(config, DaemonConfig)
    test.assertTrue(config.services)
    for service in config.services:
        for spec in service.listen:
            spec.bindKey()
    return config


class ConfigParserTests(SynchronousTestCase):
    @bounded(400)
    @given(text=CONFIG_TEXTS)
    def test_anyTextIsAConfigOrOneLine(self, text: str) -> None:
        """Any text is a config or one error line naming the file, never a traceback."""
        checkConfig(self, text)

    @bounded(600)
    @given(document=CONFIG_DOCUMENTS)
    def test_anyDocumentIsAConfigOrOneLine(self, document: dict[str, Any]) -> None:
        """Any TOML document of plausible keys and any values is a config or one error line naming the file."""
        text = tomlDocument(document)
        tomllib.loads(text)  # the writer above only writes TOML
        checkConfig(self, text)


# ---------------------------------------------------------------------------------------
# Listen descriptions


def escape(text: str) -> str:
    """Escape an endpoint-string value, as an operator must for C{::1}."""
    return text.replace("\\", "\\\\").replace(":", "\\:").replace("=", "\\=")


def usually(common: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """C{common} four times in five, else C{odd} (in the middle of the draw's range, which
    hypothesis does not favour)."""
    return st.integers(0, 4).flatmap(lambda pick: odd if pick == 2 else common)


_PORTS = usually(
    st.integers(0, 65535).map(str),
    st.one_of(
        st.sampled_from(
            [
                "",
                "-1",
                "0x10",
                " 7",
                "\u0667",
                "1_0",
                "99999999999999999999999",
                "+7",
                "7.0",
                "65536",
            ]
        ),
        st.text(max_size=4),
    ),
)
_INTERFACES = usually(
    st.ip_addresses().map(str),
    st.one_of(
        st.sampled_from(["", "localhost", "fe80::1%eth0", "::", "300.1.1.1", "1.2.3"]),
        st.text(max_size=6),
    ),
)
_FILES = st.sampled_from(["/nonexistent/key.pem", "missing.pem", "/dev/null", ""])
#: C{key=value} options: mostly what the scheme takes, now and then anything.
_OPTIONS: dict[str, st.SearchStrategy[tuple[str, str]]] = {
    "tcp": st.tuples(st.sampled_from(["interface", "backlog"]), _INTERFACES.map(escape)),
    "udp": st.tuples(st.just("interface"), _INTERFACES.map(escape)),
    "unix": st.tuples(st.sampled_from(["mode", "lockfile", "backlog"]), _PORTS),
    "ssl": st.tuples(st.sampled_from(["privateKey", "certKey", "extraCertChain"]), _FILES),
    "systemd-udp": st.one_of(
        st.tuples(st.just("name"), st.text(max_size=6).map(escape)),
        st.tuples(st.just("index"), _PORTS),
    ),
    "systemd": st.tuples(st.sampled_from(["domain", "index", "name"]), _PORTS),
}
_ANY_OPTION = st.one_of(
    st.tuples(st.just("interface"), _INTERFACES),
    st.tuples(st.sampled_from(["backlog", "port", "mode", "lockfile", "index"]), _PORTS),
    st.tuples(
        st.sampled_from(["sslmethod", "dhParameters", "name", "domain"]), st.text(max_size=6)
    ),
    st.tuples(st.text(max_size=5), st.text(max_size=5)),
)
_SCHEMES = usually(
    st.sampled_from(
        [
            "tcp",
            "tcp6",
            "udp",
            "unix",
            "ssl",
            "systemd-udp",
            "haproxy:tcp",
            "haproxy:tcp6",
            "haproxy:unix",
            "haproxy:ssl",
            "haproxy:udp",
            "haproxy:haproxy:tcp",
            "haproxy:systemd",
            "systemd",
        ]
    ),
    st.one_of(st.sampled_from(["TCP", "", "haproxy", "udp6"]), st.text(max_size=6)),
)


@st.composite
def endpoints(draw: Any) -> str:
    """A description in one of the forms netd takes, with plausible and hostile parts."""
    scheme = draw(_SCHEMES)
    kind = scheme.removeprefix("haproxy:").removeprefix("haproxy:").removesuffix("6")
    parts = [scheme]
    if kind in ("tcp", "udp", "ssl") and draw(usually(st.just(True), st.just(False))):
        parts.append(draw(_PORTS))
    if kind == "unix" and draw(usually(st.just(True), st.just(False))):
        parts.append(escape(draw(st.text(max_size=12))))
    options = usually(_OPTIONS.get(kind, _ANY_OPTION), _ANY_OPTION)
    for key, value in draw(st.lists(options, max_size=3)):
        parts.append(f"{key}={value}")
    parts.extend(draw(usually(st.just([]), st.lists(st.text(max_size=4), max_size=1))))
    return ":".join(parts)


ENDPOINTS = endpoints()


def checkListen(test: SynchronousTestCase, description: str) -> ListenSpec | None:
    """C{parseListen} gives a spec whose bind key and endpoint never raise, or one error line."""
    try:
        spec = parseListen(description)
    except BadListen as e:
        message = str(e)
        test.assertEqual(len(message.splitlines()), 1, message)
        test.assertTrue(message.isprintable(), message)
        test.assertTrue(message.startswith("bad listen endpoint "), message)
        return None
    test.assertIn(spec.kind, (STREAM, DATAGRAM))
    key = spec.bindKey()
    test.assertTrue(key is None or all(isinstance(part, str) for part in key))
    if not spec.description.removeprefix("haproxy:").startswith("ssl:"):
        spec.endpoint(MemoryReactorClock())
    return spec


class EndpointParserTests(SynchronousTestCase):
    @bounded(600)
    @given(description=st.text(max_size=40))
    def test_anyStringIsASpecOrOneLine(self, description: str) -> None:
        """Any string is a listen spec or one error line, never a traceback."""
        checkListen(self, description)

    @bounded(500)
    @given(description=ENDPOINTS)
    def test_plausibleFormsAreASpecOrOneLine(self, description: str) -> None:
        """Every plausible tcp:, udp:, unix:, ssl:, haproxy: and systemd-udp: form is a spec whose bind key never raises, or one error line."""
        checkListen(self, description)


# ---------------------------------------------------------------------------------------
# The coverage-guided targets, run briefly


ATHERIS_RUNS = 2000


class AtherisTargetTests(SynchronousTestCase):
    def runTarget(self, target: str) -> None:
        if importlib.util.find_spec("atheris") is None:
            self.fail("atheris is not installed: pip install -e '.[test]' installs it")
        with tempfile.TemporaryDirectory(prefix="netd-fuzz-") as scratch:
            result = subprocess.run(
                [
                    sys.executable,
                    os.path.join(HERE, "fuzz_atheris.py"),
                    target,
                    f"-runs={ATHERIS_RUNS}",
                    f"-artifact_prefix={scratch}{os.sep}",
                ],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=600,
            )
        self.assertEqual(result.returncode, 0, result.stdout[-3000:] + result.stderr[-6000:])
        self.assertIn(f"Done {ATHERIS_RUNS} runs", result.stderr)

    def test_configTarget(self) -> None:
        """The coverage-guided config-parser target runs its fixed iterations and finds nothing."""
        self.runTarget("config")

    def test_linesTarget(self) -> None:
        """The coverage-guided line-splitter target runs its fixed iterations and finds nothing."""
        self.runTarget("lines")
