"""
Shared test helpers: a service context on a fake clock, and protocols on fake transports.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from netd.plugin import Served, ServiceContext
from netd.registry import Registry

PEER = IPv4Address("TCP", "192.0.2.7", 40000)


def makeContext(name: str = "test", clock: Clock | None = None, **settings: Any) -> ServiceContext:
    """A context on a fake clock; settings as given (builders read only what they need)."""
    return ServiceContext(name, settings, clock or Clock())


def connect(served: Served, peer: IPv4Address = PEER) -> tuple[Any, StringTransport]:
    """A stream protocol from C{served}, connected to an in-memory transport."""
    assert served.stream is not None
    protocol = served.stream.buildProtocol(peer)
    transport = StringTransport(peerAddress=peer)
    protocol.makeConnection(transport)
    return protocol, transport


class FakeDatagramTransport:
    """Records what a datagram protocol sends."""

    def __init__(self) -> None:
        self.written: list[tuple[bytes, Any]] = []

    def write(self, data: bytes, addr: Any = None) -> None:
        self.written.append((data, addr))


def bindDatagram(served: Served) -> tuple[Any, FakeDatagramTransport]:
    """A datagram protocol from C{served} on a recording transport."""
    assert served.datagram is not None
    protocol = served.datagram()
    transport = FakeDatagramTransport()
    protocol.transport = transport
    return protocol, transport


def builtins() -> Registry:
    """The built-in protocols, found the way netd finds them: as Twisted plugins."""
    return Registry(p for p in Registry.discover() if getattr(p, "builder", "").startswith("netd."))
