"""
The client's side of a forwarded connection: connect to the backend, hold what the
client sends meanwhile, announce the client with a PROXY header, then relay.

By the time L{ClientSide} exists the connection has passed every rule of the service
(netd's guard wraps it), so a connect is only attempted for an admitted client, and the
guard's idle timeout, lifetime and byte counts apply to the relayed connection as to any
other.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import error
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.python.failure import Failure

from netd.forward.header import proxyHeader
from netd.forward.relay import BackendSide, Side
from netd.forward.stats import ForwardStats
from netd.forward.target import Target
from netd.logs.throttled import ThrottledLog

__all__ = ["FAILURE_REASONS", "PRECONNECT_LIMIT", "ClientSide", "ForwardFactory", "failureReason"]

#: Bytes of a client's input held while the backend connect is in progress; beyond it,
#: reading the client pauses (the kernel's buffers hold the rest), so a client that
#: sends fast to a slow backend costs netd bounded memory.
PRECONNECT_LIMIT = 64 * 1024


#: The reasons a connect fails, as counted (always exported, zero until one happens).
FAILURE_REASONS = ("refused", "timeout", "unreachable", "error")


def failureReason(failure: Failure) -> str:
    """The metric label of a failed connect."""
    if failure.check(error.ConnectionRefusedError):
        return "refused"
    if failure.check(error.TimeoutError, error.TCPTimedOutError):
        return "timeout"
    if failure.check(error.NoRouteError):
        return "unreachable"
    return "error"


class _BackendFactory(Factory):
    """Builds the backend's side of one relay."""

    noisy = False
    protocol = BackendSide

    def __init__(self, stats: ForwardStats) -> None:
        self.stats = stats


class ClientSide(Side):
    """
    The connection a client opened to netd.  Input that arrives before the backend
    accepted is kept (up to L{PRECONNECT_LIMIT} bytes, then reading pauses) and sent
    first, right after the PROXY header; an end of input before then is remembered and
    passed on after them.
    """

    factory: ForwardFactory
    _connecting: Deferred[Any] | None = None

    def __init__(self) -> None:
        super().__init__()
        self._held: list[bytes] = []
        self._heldBytes = 0

    def connectionMade(self) -> None:
        self._connecting = self.factory.connect()
        self._connecting.addCallbacks(self._connected, self._failed)

    def relayed(self, count: int) -> None:
        self.factory.stats.toBackend += count

    def dataReceived(self, data: bytes) -> None:
        if self.peer is not None:
            self.relayed(len(data))
            self.peer.transport.write(data)
            return
        self._held.append(data)
        self._heldBytes += len(data)
        if self._heldBytes >= PRECONNECT_LIMIT:
            self.pauseReading("connecting")

    def readConnectionLost(self) -> None:
        if self.peer is None and self._connecting is not None:
            self.readClosed = True  # passed on once connected
            return
        super().readConnectionLost()

    def _connected(self, backend: BackendSide) -> None:
        self._connecting = None
        factory = self.factory
        factory.stats.connecting -= 1
        if not self.connected:  # the client left while we connected
            backend.transport.loseConnection()
            return
        factory.stats.forwarded += 1
        if factory.sendProxy is not None:
            transport = self.transport
            backend.transport.write(
                proxyHeader(factory.sendProxy, transport.getPeer(), transport.getHost())
            )
        self.link(backend)
        backend.link(self)
        held, self._held, self._heldBytes = self._held, [], 0
        for chunk in held:
            self.dataReceived(chunk)
        self.resumeReading("connecting")
        if self.readClosed:
            backend.shutdownWrite()

    def _failed(self, failure: Failure) -> None:
        self._connecting = None
        self.factory.stats.connecting -= 1
        if not self.connected:  # the client left first and cancelled the connect
            return
        self.factory.connectFailed(failure)
        self._held = []
        self.close()

    def connectionLost(self, reason: Failure | None = None) -> None:
        connecting = self._connecting
        super().connectionLost(reason)
        self._held = []
        if connecting is not None:
            connecting.cancel()


class ForwardFactory(Factory):
    """
    Builds a L{ClientSide} per admitted connection; one per service configuration.

    @ivar target: where to connect.
    @ivar sendProxy: C{"v1"}, C{"v2"} or C{None}: the PROXY header to send first.
    @ivar stats: the service's forward counters.
    """

    log = Logger()
    noisy = False
    protocol = ClientSide  # type: ignore[assignment]  # its factory is this narrower type

    def __init__(
        self,
        name: str,
        target: Target,
        sendProxy: str | None,
        reactor: Any,
        stats: ForwardStats,
    ) -> None:
        self.name = name
        self.target = target
        self.sendProxy = sendProxy
        self.stats = stats
        self.endpoint = target.endpoint(reactor)
        self.failures = ThrottledLog(self.log, reactor)
        self.backends = _BackendFactory(stats)

    def logPrefix(self) -> str:
        return self.name

    def connect(self) -> Deferred[Any]:
        """Connect one relay's backend side."""
        self.stats.connecting += 1
        return self.endpoint.connect(self.backends)

    def connectFailed(self, failure: Failure) -> None:
        """Count a failed connect, and log it once a minute per reason."""
        reason = failureReason(failure)
        self.stats.failed[reason] += 1
        self.failures.warn(
            reason,
            "{service}: cannot connect to {target} for a client: {error} "
            "({repeats} since the last report)",
            service=self.name,
            target=self.target.description,
            error=failure.getErrorMessage(),
        )
