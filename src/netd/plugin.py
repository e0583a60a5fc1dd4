"""
What a protocol author needs: L{ProtocolPlugin}, L{Option}, L{ServiceContext}, L{Served}.

A plugin module stays cheap to import because L{ProtocolPlugin} names its builder by
dotted path: twistd scans every plugin on every start, and only the protocol actually
served gets imported.

    # yourpackage/twisted/plugins/hello_netd.py
    from netd.plugin import Option, ProtocolPlugin
    hello = ProtocolPlugin(
        name="hello", description="Says hello, then closes",
        builder="yourpackage.hello.build", defaultPort=10100,
        options=(Option("greeting", "hello", str, "What to say"),),
    )
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from twisted.application.service import IService, MultiService
from twisted.internet.interfaces import IProtocolFactory, IReactorTime
from twisted.internet.protocol import DatagramProtocol, Factory, Protocol
from twisted.plugin import IPlugin
from twisted.python.reflect import namedAny
from zope.interface import implementer

from netd.coerce import positiveInt, text
from netd.interfaces import DATAGRAM, STREAM, INetdProtocol

__all__ = [
    "Option",
    "ProtocolPlugin",
    "Served",
    "ServiceContext",
    "ServiceDatagramProtocol",
    "ServiceFactory",
    # Coercers a plugin's Option uses most; they live in netd.coerce with the others.
    "positiveInt",
    "text",
]


@dataclass(frozen=True)
class Option:
    """
    One setting of a protocol (C{--max-line-length}, C{--message}...).

    @ivar name: the long option name, without dashes; also the config file key.
    @ivar default: used when the option is not given (not coerced).
    @ivar coerce: turns a command-line string or config value into the setting,
        raising C{ValueError} with a message for the user when it cannot.
    @ivar help: one line for C{--help}.
    """

    name: str
    default: Any
    coerce: Callable[[Any], Any]
    help: str


@dataclass(frozen=True)
class Served:
    """
    What one service answers the network with.

    @ivar stream: the factory for connection-oriented listeners (TCP, unix, TLS), or
        C{None} if the protocol has no stream form.
    @ivar datagram: makes a fresh L{DatagramProtocol} per datagram listener (one
        protocol instance can only be bound to one port), or C{None}.
    """

    stream: IProtocolFactory | None = None
    datagram: Callable[[], DatagramProtocol] | None = None


@dataclass
class ServiceContext:
    """
    Everything a protocol's builder may use: nothing is global.

    @ivar name: the service's name (the protocol's name on the command line; the table
        name in a config file), for log lines.
    @ivar settings: the protocol's options, coerced, defaults filled in.
    @ivar clock: the time source; protocols never call C{time.time()}.
    @ivar service: the service's parent; a builder attaches child services (an output
        file, a timer) here so they start and stop with the service.
    """

    name: str
    settings: Mapping[str, Any]
    clock: IReactorTime
    service: MultiService = field(default_factory=MultiService)

    def addService(self, child: IService) -> None:
        """Run C{child} for as long as this service runs."""
        child.setServiceParent(self.service)


class ServiceFactory(Factory):
    """A protocol factory that carries its service's context (name, clock, settings)."""

    #: The listener logs one line when it is up; Twisted's per-factory chatter is noise.
    noisy = False

    def __init__(self, protocol: type[Protocol], context: ServiceContext) -> None:
        self.protocol = protocol
        self.context = context
        self.clock = context.clock

    def logPrefix(self) -> str:
        return self.context.name


class ServiceDatagramProtocol(DatagramProtocol):
    """The base of a service's datagram protocols: knows its context, logs quietly."""

    noisy = False

    def __init__(self, context: ServiceContext) -> None:
        self.context = context

    def logPrefix(self) -> str:
        return self.context.name


@implementer(IPlugin, INetdProtocol)
@dataclass(frozen=True)
class ProtocolPlugin:
    """
    The standard L{INetdProtocol}: a description plus the dotted name of a builder.

    @ivar builder: dotted name of a C{build(context: ServiceContext) -> Served}
        callable, imported only when the protocol is served.
    """

    name: str
    description: str
    builder: str
    defaultPort: int
    transports: frozenset[str] = frozenset({STREAM})
    options: Sequence[Option] = ()
    amplifies: bool = False

    def __post_init__(self) -> None:
        unknown = set(self.transports) - {STREAM, DATAGRAM}
        if unknown or not self.transports:
            raise ValueError(f"{self.name}: transports must be among {STREAM!r}, {DATAGRAM!r}")

    def build(self, context: ServiceContext) -> Served:
        """Import the builder and call it."""
        served: Served = namedAny(self.builder)(context)
        return served
