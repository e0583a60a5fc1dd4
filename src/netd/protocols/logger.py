"""
The loggers: SimpleLogger (every chunk) and LineLogger (every line).

Both write through L{twisted.logger}, so C{twistd -n} shows them and C{--logfile} and
C{--syslog} work.  Client bytes are logged as C{repr} of their text (undecodable bytes as
C{\\xNN}), so no client can put a terminal escape or a fake log line into the log.

The LineLogger can also append each line to a JSON-lines file (L{netd.logs.output}) and, with
C{ack}, answer C{OK} per line once it is durable there (C{ERR} if it was dropped), so a
client that resends what was not acknowledged loses nothing (at-least-once: a line
written whose C{OK} was lost with the connection is written again when resent).
"""

from __future__ import annotations

from collections import deque
from functools import partial
from typing import Any

from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.protocols.basic import LineReceiver
from zope.interface import implementer

from netd.address import formatAddress
from netd.coerce import byteSize, yesNo
from netd.logs.output import Done, IFileSystem, JsonLinesFile, jsonLine
from netd.logs.settings import DEFAULT_FSYNC, DEFAULT_MAX_BUFFER, fsyncPolicy
from netd.plugin import Served, ServiceContext, ServiceDatagramProtocol, ServiceFactory

__all__ = ["Answers", "LineLogger", "SimpleLogger", "buildLineLogger", "buildLogger"]

#: The C{ack} answers: the line is durable; the line was dropped.
ACK_OK = b"OK\n"
ACK_ERR = b"ERR\n"

#: At most this many bytes of a chunk are logged by the SimpleLogger.
CHUNK_LOG_BYTES = 1024


def _text(data: bytes) -> str:
    return data.decode("utf-8", "backslashreplace")


class SimpleLogger(Protocol):
    """Log the connection, each received chunk (bounded) and the disconnection."""

    log = Logger()

    def connectionMade(self) -> None:
        self.peer = formatAddress(self.transport.getPeer())
        self.log.info(
            "{service} {peer} connected", service=self.factory.context.name, peer=self.peer
        )

    def dataReceived(self, data: bytes) -> None:
        _logChunk(self.log, self.factory.context.name, self.peer, data)

    def connectionLost(self, reason: Any = None) -> None:
        self.log.info(
            "{service} {peer} disconnected", service=self.factory.context.name, peer=self.peer
        )


def _logChunk(log: Logger, service: str, peer: str, data: bytes) -> None:
    shown = data[:CHUNK_LOG_BYTES]
    log.info(
        "{service} {peer} sent {size} bytes: {data!r}{more}",
        service=service,
        peer=peer,
        size=len(data),
        data=_text(shown),
        more="..." if len(data) > len(shown) else "",
    )


class SimpleLoggerDatagram(ServiceDatagramProtocol):
    """Log each datagram (bounded)."""

    log = Logger()

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        _logChunk(self.log, self.context.name, formatAddress(addr), datagram)


class LineSink:
    """
    Where a service's lines go: the log, and the JSON-lines file if one is configured.

    Shared by the service's TCP and UDP listeners.
    """

    log = Logger()

    def __init__(self, context: ServiceContext, filesystem: IFileSystem | None = None) -> None:
        self.context = context
        settings = context.settings
        self.maxLength: int = settings["max-line-length"]
        self.ack = yesNo(settings.get("ack", False))
        path = settings.get("output")
        self.output: JsonLinesFile | None = None
        if path:
            self.output = JsonLinesFile(
                path,
                context.clock,
                fsyncPolicy(settings.get("fsync", DEFAULT_FSYNC)),
                byteSize(settings.get("max-buffer", DEFAULT_MAX_BUFFER)),
                filesystem,
            )
            context.addService(self.output)
        elif self.ack:
            self.log.warn(
                "{service}: ack without an output file: OK only means the line was logged",
                service=context.name,
            )

    def received(self, peer: str, line: bytes) -> bytes | None:
        """Log C{line}; return its JSON record for the output file, if there is one."""
        text = _text(line)
        self.log.info("{service} {peer}: {line!r}", service=self.context.name, peer=peer, line=text)
        if self.output is None:
            return None
        return jsonLine(
            {
                "time": self.context.clock.seconds(),
                "service": self.context.name,
                "peer": peer,
                "line": text,
            }
        )

    def tooLong(self, peer: str, size: int) -> None:
        self.log.warn(
            "{service} {peer}: line of {size}+ bytes is over the {limit}-byte limit; dropped",
            service=self.context.name,
            peer=peer,
            size=size,
            limit=self.maxLength,
        )


class Answers:
    """
    The C{--ack} answers of one connection: C{OK} or C{ERR} per line, sent in the order
    the lines came, however the file settles them.
    """

    def __init__(self, transport: Any) -> None:
        self.transport = transport
        self._answers: deque[bytes | None] = deque()
        self._first = 0

    def expect(self) -> Done:
        """A slot for the next line; call the result with whether it is durable."""
        self._answers.append(None)
        return partial(self._settle, self._first + len(self._answers) - 1)

    def _settle(self, index: int, ok: bool) -> None:
        self._answers[index - self._first] = ACK_OK if ok else ACK_ERR
        ready = []
        while self._answers and self._answers[0] is not None:
            ready.append(self._answers.popleft())
            self._first += 1
        if ready:
            self.transport.write(b"".join(ready))  # type: ignore[arg-type]


#: Why a connection is not being read (see L{LineLogger}).
FILE_FULL = "file full"
ACKS_UNREAD = "acks unread"
NEXT_TURN = "next turn"

#: Lines one connection hands over per reactor turn at most.  Every line costs a log
#: event (tens of microseconds), and a read brings up to 64 KiB: thousands of short
#: lines.  Without a budget, each client flooding lines held the reactor for a whole
#: read per turn, and every other connection of the daemon waited for all of them.
LINES_PER_TURN = 64


@implementer(IPushProducer)
class LineLogger(LineReceiver):
    """
    Log each line; C{\\n} and C{\\r\\n} both end one.

    An over-long line is logged as such and the connection dropped: the buffer never
    holds more than the limit plus one read.

    Backpressure, never drops: when the output file's buffer is full, the line that does
    not fit is kept here and the connection is not read until the file has drained;
    with C{ack}, a client that does not read its answers is not read either (this is its
    transport's producer).  So a connection holds at most one read and one line.

    Fairness: after L{LINES_PER_TURN} lines the connection stops being read and hands
    over the rest of its read on the next reactor turn, so other connections are served
    in between.
    """

    delimiter = b"\n"
    answers: Answers | None = None
    _parked: tuple[bytes | None, Done | None] | None = None
    _lost = False
    _overlong = False
    _turnLines = 0
    _nextTurn: Any = None

    def connectionMade(self) -> None:
        self.sink: LineSink = self.factory.sink
        self.peer = formatAddress(self.transport.getPeer())
        # + 1: a line may end with the CR of a CRLF, stripped below.
        self.MAX_LENGTH = self.sink.maxLength + 1
        self._holds: set[str] = set()
        if self.sink.ack:
            self.answers = Answers(self.transport)
            self.transport.registerProducer(self, True)

    def dataReceived(self, data: bytes) -> None:
        self._turnLines = 0  # one read (or one resumption) per reactor turn
        super().dataReceived(data)

    def lineReceived(self, line: bytes) -> None:
        if line.endswith(b"\r"):
            line = line[:-1]
        if len(line) > self.sink.maxLength:
            self.lineLengthExceeded(line)
            return
        record = self.sink.received(self.peer, line)
        self._offer(record, self.answers.expect() if self.answers is not None else None)
        self._turnLines += 1
        if self._turnLines >= LINES_PER_TURN and not self._lost and self._nextTurn is None:
            self._hold(NEXT_TURN)
            self._nextTurn = self.sink.context.clock.callLater(0, self._turnAgain)

    def _turnAgain(self) -> None:
        self._nextTurn = None
        if self._overlong:  # closing: nothing more is read
            self._holds.discard(NEXT_TURN)
            return
        self._release(NEXT_TURN)

    def _offer(self, record: bytes | None, done: Done | None) -> None:
        output = self.sink.output
        if output is None or record is None:
            if done is not None:
                done(True)
        elif self._lost or output.hasRoom(len(record)):
            output.write(record, done, force=self._lost)
        else:
            self._parked = (record, done)
            self._hold(FILE_FULL)
            output.whenRoom(self._roomAgain)

    def _roomAgain(self) -> None:
        parked, self._parked = self._parked, None
        if self._lost or parked is None:
            return
        self._offer(*parked)
        if self._parked is None:
            self._release(FILE_FULL)

    def _hold(self, reason: str) -> None:
        if not self._holds:
            self.paused = True  # LineReceiver hands over no more lines
            self.transport.pauseProducing()
        self._holds.add(reason)

    def _release(self, reason: str) -> None:
        if reason not in self._holds:
            return
        self._holds.discard(reason)
        if not self._holds and not self._lost:
            self.paused = False
            self.transport.resumeProducing()
            self.dataReceived(b"")

    def pauseProducing(self) -> None:
        """The client does not read its answers: stop reading its lines."""
        self._hold(ACKS_UNREAD)

    def resumeProducing(self) -> None:
        self._release(ACKS_UNREAD)

    def stopProducing(self) -> None:
        """The connection ends; L{connectionLost} keeps the lines already received."""

    def lineLengthExceeded(self, line: bytes) -> None:
        self._overlong = True
        self.sink.tooLong(self.peer, len(line))
        self.clearLineBuffer()
        if self.answers is not None:
            self.transport.unregisterProducer()
        self.transport.loseConnection()

    def connectionLost(self, reason: Any = None) -> None:
        """
        Every complete line received is kept, even over the buffer's bound (it is in
        memory already): the one parked, and those read but not yet handed over, up to
        an over-long line, after which nothing is kept (as on a live connection).
        """
        self._lost = True
        self.answers = None
        if self._nextTurn is not None:
            self._nextTurn.cancel()
            self._nextTurn = None
        parked, self._parked = self._parked, None
        if parked is not None:
            self._offer(parked[0], None)
        unread = self.clearLineBuffer()
        for line in unread.split(self.delimiter)[:-1]:
            self.lineReceived(line)
            if self._overlong:  # as on a live connection: nothing after it is kept
                break


class LineLoggerDatagram(ServiceDatagramProtocol):
    """
    Log each datagram as one line (a trailing newline is not part of it).

    A datagram cannot be paused: when the output file's buffer is full it is dropped
    (counted and logged by the file).  No answers are sent, with C{ack} or without.
    """

    def __init__(self, sink: LineSink) -> None:
        super().__init__(sink.context)
        self.sink = sink

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        line = datagram.removesuffix(b"\n").removesuffix(b"\r")
        peer = formatAddress(addr)
        if len(line) > self.sink.maxLength:
            self.sink.tooLong(peer, len(line))
            return
        record = self.sink.received(peer, line)
        if record is not None and self.sink.output is not None:
            self.sink.output.write(record)


def buildLogger(context: ServiceContext) -> Served:
    return Served(
        stream=ServiceFactory(SimpleLogger, context),
        datagram=lambda: SimpleLoggerDatagram(context),
    )


def buildLineLogger(context: ServiceContext, filesystem: IFileSystem | None = None) -> Served:
    """
    The line logger: one sink (log and file) for the service's TCP and UDP listeners.

    @param filesystem: what the output file writes through (tests pass a fake).
    """
    sink = LineSink(context, filesystem)
    factory = ServiceFactory(LineLogger, context)
    factory.sink = sink
    return Served(stream=factory, datagram=lambda: LineLoggerDatagram(sink))
