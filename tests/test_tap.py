"""
makeService: what the daemon listens on, and how it fails, on memory reactors.
"""

from __future__ import annotations

import io

from twisted.internet.error import CannotListenError
from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver, MemoryReactorClock, RaisingMemoryReactor
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from netd.config.options import optionsFor
from netd.errors import StartupError
from netd.serving.daemon import Daemon
from netd.tap import makeService
from tests.support import builtins
from tests.test_endpoint import RecordingUDPReactor


class Reactor(MemoryReactorClock, RecordingUDPReactor):
    """A memory reactor that also records datagram listeners."""

    def __init__(self) -> None:
        MemoryReactorClock.__init__(self)
        RecordingUDPReactor.__init__(self)


class RaisingReactor(RaisingMemoryReactor, Clock):
    """A reactor whose listen calls fail, with a clock for the daemon's timers."""

    def __init__(self, **kwargs: object) -> None:
        RaisingMemoryReactor.__init__(self, **kwargs)  # type: ignore[arg-type]
        Clock.__init__(self)


def parse(*argv: str):  # type: ignore[no-untyped-def]
    options = optionsFor(builtins(), lambda requested: "epoll")()
    options.parseOptions(list(argv))
    return options


class MakeServiceTests(SynchronousTestCase):
    def test_listensOnEveryEndpoint(self) -> None:
        """Each --listen becomes a listener of the service, stream and datagram alike."""
        reactor = Reactor()
        service = makeService(
            parse(
                "--proto",
                "daytime",
                "--listen",
                "tcp:10013:interface=0.0.0.0",
                "--listen",
                "udp:10013",
            ),
            reactor,
        )
        service.privilegedStartService()
        service.startService()
        [(port, factory, backlog, interface)] = reactor.tcpServers
        self.assertEqual((port, interface), (10013, "0.0.0.0"))
        self.assertEqual(factory.wrappedFactory.context.name, "daytime")
        [(udpPort, protocol, udpInterface, _)] = reactor.udpCalls
        self.assertEqual((udpPort, udpInterface), (10013, ""))
        self.assertEqual(type(protocol.inner).__name__, "ClockDatagram")
        listeners = service.getServiceNamed("daytime").listeners.values()
        [udp] = [s.port for s in listeners if s.spec.kind == "datagram"]
        service.stopService()
        self.assertFalse(udp.listening)

    def test_nothingListensBeforeStart(self) -> None:
        """Building the service opens no socket; binding waits for startup."""
        reactor = Reactor()
        makeService(parse("--proto", "echo"), reactor)
        self.assertEqual((reactor.tcpServers, reactor.udpCalls), ([], []))

    def test_logsListenerAndReactor(self) -> None:
        """Each listener logs service, transport and address; startup logs the reactor class."""
        events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        service = makeService(parse("--proto", "echo"), Reactor())
        service.privilegedStartService()
        service.startService()
        [up] = [e for e in events if "listening on" in e["log_format"]]
        self.assertEqual(
            (up["service"], up["transport"], up["address"]), ("echo", "TCP", "0.0.0.0:10007")
        )
        [running] = [e for e in events if "running on" in e["log_format"]]
        self.assertEqual(running["reactor"], "Reactor")
        service.stopService()

    def test_busyPortStopsStartupWithOneLine(self) -> None:
        """A port that cannot be bound ends startup with one line naming the service and endpoint."""
        reactor = RaisingReactor(
            listenException=CannotListenError(
                "127.0.0.1", 10007, OSError(98, "Address already in use")
            )
        )
        stderr = io.StringIO()
        service = Daemon(parse("--proto", "echo").config, reactor, stderr=stderr)
        error = self.assertRaises(StartupError, service.privilegedStartService)
        self.assertEqual(error.code, 1)
        self.assertEqual(
            stderr.getvalue(),
            "netd: echo: cannot listen on tcp:10007:interface=127.0.0.1: Address already in use\n",
        )

    def test_stopClosesListeners(self) -> None:
        """Stopping the service stops every listening port."""
        reactor = Reactor()
        service = makeService(parse("--proto", "echo"), reactor)
        service.privilegedStartService()
        service.startService()
        listener = service.getServiceNamed("echo").listeners["tcp:10007:interface=127.0.0.1"]
        self.assertIsNotNone(listener.port)
        self.successResultOf(service.stopService())
        self.assertIsNone(listener.port)
