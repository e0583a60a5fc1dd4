"""
The loggers: SimpleLogger (every chunk) and LineLogger (every line).

Both write through L{twisted.logger}, so C{twistd -n} shows them and C{--logfile} and
C{--syslog} work.  Client bytes are logged as C{repr} of their text (undecodable bytes as
C{\\xNN}), so no client can put a terminal escape or a fake log line into the log.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.protocols.basic import LineReceiver

from netd.address import formatAddress
from netd.output import JsonLinesFile
from netd.plugin import Served, ServiceContext, ServiceDatagramProtocol, ServiceFactory

__all__ = ["LineLogger", "SimpleLogger", "buildLineLogger", "buildLogger"]

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

    def __init__(self, context: ServiceContext) -> None:
        self.context = context
        self.maxLength: int = context.settings["max-line-length"]
        path = context.settings.get("output")
        self.output = JsonLinesFile(path) if path else None
        if self.output is not None:
            context.addService(self.output)

    def line(self, peer: str, line: bytes) -> None:
        text = _text(line)
        self.log.info("{service} {peer}: {line!r}", service=self.context.name, peer=peer, line=text)
        if self.output is not None:
            self.output.write({"time": self.context.clock.seconds(), "peer": peer, "line": text})

    def tooLong(self, peer: str, size: int) -> None:
        self.log.warn(
            "{service} {peer}: line of {size}+ bytes is over the {limit}-byte limit; dropped",
            service=self.context.name,
            peer=peer,
            size=size,
            limit=self.maxLength,
        )


class LineLogger(LineReceiver):
    """
    Log each line; C{\\n} and C{\\r\\n} both end one.

    An over-long line is logged as such and the connection dropped: the buffer never
    holds more than the limit plus one read.
    """

    delimiter = b"\n"

    def connectionMade(self) -> None:
        self.sink: LineSink = self.factory.sink
        self.peer = formatAddress(self.transport.getPeer())
        # + 1: a line may end with the CR of a CRLF, stripped below.
        self.MAX_LENGTH = self.sink.maxLength + 1

    def lineReceived(self, line: bytes) -> None:
        if line.endswith(b"\r"):
            line = line[:-1]
        if len(line) > self.sink.maxLength:
            self.lineLengthExceeded(line)
        else:
            self.sink.line(self.peer, line)

    def lineLengthExceeded(self, line: bytes) -> None:
        self.sink.tooLong(self.peer, len(line))
        self.transport.loseConnection()


class LineLoggerDatagram(ServiceDatagramProtocol):
    """Log each datagram as one line (a trailing newline is not part of it)."""

    def __init__(self, sink: LineSink) -> None:
        super().__init__(sink.context)
        self.sink = sink

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        line = datagram.removesuffix(b"\n").removesuffix(b"\r")
        if len(line) > self.sink.maxLength:
            self.sink.tooLong(formatAddress(addr), len(line))
        else:
            self.sink.line(formatAddress(addr), line)


def buildLogger(context: ServiceContext) -> Served:
    return Served(
        stream=ServiceFactory(SimpleLogger, context),
        datagram=lambda: SimpleLoggerDatagram(context),
    )


def buildLineLogger(context: ServiceContext) -> Served:
    sink = LineSink(context)
    factory = ServiceFactory(LineLogger, context)
    factory.sink = sink
    return Served(stream=factory, datagram=lambda: LineLoggerDatagram(sink))
