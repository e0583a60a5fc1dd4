"""
netd's built-in protocols, declared as Twisted plugins exactly as a third-party package
declares its own: netd finds these through L{twisted.plugin.getPlugins} like any other.

Each names its builder by dotted path, so only the protocol being served is imported.
"""

from netd.coerce import byteSize, positiveInt, text, yesNo
from netd.interfaces import DATAGRAM, STREAM
from netd.logs.settings import DEFAULT_FSYNC, DEFAULT_MAX_BUFFER, fsyncPolicy
from netd.plugin import Option, ProtocolPlugin
from netd.protocols.greeting import DEFAULT_MESSAGE

BOTH = frozenset({STREAM, DATAGRAM})

echo = ProtocolPlugin(
    name="echo",
    description="RFC 862: sends back every byte it receives",
    builder="netd.protocols.simple.buildEcho",
    defaultPort=10007,
    transports=BOTH,
)
discard = ProtocolPlugin(
    name="discard",
    description="RFC 863: reads and drops everything",
    builder="netd.protocols.simple.buildDiscard",
    defaultPort=10009,
    transports=BOTH,
)
daytime = ProtocolPlugin(
    name="daytime",
    description="RFC 867: the local time as one human-readable line",
    builder="netd.protocols.clock.buildDaytime",
    defaultPort=10013,
    transports=BOTH,
)
chargen = ProtocolPlugin(
    name="chargen",
    description="RFC 864: streams rotating lines of printable characters",
    builder="netd.protocols.simple.buildChargen",
    defaultPort=10019,
    transports=BOTH,
    amplifies=True,
)
time = ProtocolPlugin(
    name="time",
    description="RFC 868: seconds since 1900 as 4 big-endian bytes",
    builder="netd.protocols.clock.buildTime",
    defaultPort=10037,
    transports=BOTH,
)
greeting = ProtocolPlugin(
    name="greeting",
    description="sends a banner, then closes",
    builder="netd.protocols.greeting.buildGreeting",
    defaultPort=10017,
    options=(Option("message", DEFAULT_MESSAGE, text, "the banner (CRLF added)"),),
)
logger = ProtocolPlugin(
    name="logger",
    description="logs connections and every chunk received",
    builder="netd.protocols.logger.buildLogger",
    defaultPort=10514,
    transports=BOTH,
)
linelogger = ProtocolPlugin(
    name="linelogger",
    description="logs every line received, optionally to a JSON-lines file",
    builder="netd.protocols.logger.buildLineLogger",
    defaultPort=10601,
    transports=BOTH,
    options=(
        Option("max-line-length", 16384, positiveInt, "longest line accepted, in bytes"),
        Option(
            "output", None, text, "also append JSON lines {time, service, peer, line} to this file"
        ),
        Option(
            "fsync",
            DEFAULT_FSYNC,
            fsyncPolicy,
            "when the output file is fsynced: always (each batch), interval=MS, never",
        ),
        Option(
            "max-buffer",
            DEFAULT_MAX_BUFFER,
            byteSize,
            "bytes of lines waiting for the output file before TCP clients are not read"
            " and datagrams dropped (suffix K, M, G allowed)",
        ),
        Option(
            "ack",
            False,
            yesNo,
            "yes: answer each TCP line with OK once durable in the output file (ERR if dropped)",
        ),
    ),
)
