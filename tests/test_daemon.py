"""
Tests for L{netd.serving.daemon}'s waits: a graceful stop and a removed service wait for
the event of their last connection ending, not for a poll to notice it.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from netd.config.file import parseConfig
from netd.serving.daemon import ABORT_GRACE, Daemon, ServiceRuntime
from tests.support import builtins

ECHO = """
shutdown-timeout = 5
[services.echo]
listen = ["tcp:7"]
"""
ECHO_AND_DAYTIME = (
    ECHO
    + """
[services.daytime]
listen = ["tcp:13"]
"""
)
PEER = IPv4Address("TCP", "192.0.2.7", 40000)


def runtime(daemon: Daemon, name: str) -> ServiceRuntime:
    found = daemon.getServiceNamed(name)
    assert isinstance(found, ServiceRuntime)
    return found


def connect(daemon: Daemon, name: str) -> tuple[Any, StringTransport]:
    """A client connected to service C{name} through the factory its listener bound."""
    [listener] = runtime(daemon, name).listeners.values()
    protocol = listener.target.buildProtocol(PEER)
    transport = StringTransport(peerAddress=PEER)
    protocol.makeConnection(transport)
    return protocol, transport


class DrainTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()

    def start(self, text: str) -> Daemon:
        config = parseConfig(text, "netd.toml", builtins())
        daemon = Daemon(config, self.reactor, lambda: config, stderr=None)
        daemon.privilegedStartService()
        daemon.startService()
        return daemon

    def test_stopEndsWhenTheLastConnectionEnds(self) -> None:
        """The graceful stop completes in the turn the last connection closes, not at a poll."""
        daemon = self.start(ECHO)
        protocol, transport = connect(daemon, "echo")
        stopping = daemon.stopService()
        self.reactor.advance(1.0)
        self.assertNoResult(stopping)
        protocol.connectionLost(Failure(ConnectionDone()))
        self.successResultOf(stopping)
        self.assertFalse(transport.disconnecting)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_stopAbortsAfterTheShutdownTimeout(self) -> None:
        """A connection still open at the shutdown timeout is aborted, then the stop completes."""
        daemon = self.start(ECHO)
        protocol, transport = connect(daemon, "echo")
        transport.abortConnection = lambda: protocol.connectionLost(Failure(ConnectionDone()))  # type: ignore[method-assign]
        stopping = daemon.stopService()
        self.reactor.advance(4.9)
        self.assertNoResult(stopping)
        self.reactor.advance(0.1)
        self.successResultOf(stopping)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_abortedConnectionThatNeverReportsIsWaitedForBriefly(self) -> None:
        """If an aborted connection never reports its end, the stop still completes after the grace."""
        daemon = self.start(ECHO)
        connect(daemon, "echo")
        stopping = daemon.stopService()
        self.reactor.advance(5.0)
        self.assertNoResult(stopping)
        self.reactor.advance(ABORT_GRACE)
        self.successResultOf(stopping)

    def test_removedServiceGoesWhenItsLastConnectionEnds(self) -> None:
        """A service dropped by a reload stays until its last connection ends, then is removed."""
        daemon = self.start(ECHO_AND_DAYTIME)
        protocol, _ = connect(daemon, "daytime")
        protocol.connectionLost(Failure(ConnectionDone()))  # daytime closes by itself
        protocol, _ = connect(daemon, "echo")
        daemon.apply(
            parseConfig(
                ECHO.replace("echo", "daytime").replace(":7", ":13"), "netd.toml", builtins()
            )
        )
        self.assertIn(runtime(daemon, "echo"), daemon.draining)
        protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(daemon.draining, [])
        self.assertNotIn("echo", daemon.namedServices)
        self.successResultOf(daemon.stopService())
