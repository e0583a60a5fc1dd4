"""
systemd integration: sd_notify messages, the watchdog, and sockets inherited through
socket activation (C{systemd-udp:}, and netd's handling of C{systemd:}).

Notifications go to a unix datagram socket each test binds itself and names in an
injected environment; inherited sockets are unbound sockets placed at consecutive
descriptors, described by an injected C{LISTEN_*} environment.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import socket
import tempfile
import tomllib
import uuid
from functools import partial
from pathlib import Path

from twisted.internet.protocol import DatagramProtocol, Factory, Protocol
from twisted.internet.testing import EventLoggingObserver, MemoryReactor, MemoryReactorClock
from twisted.logger import globalLogPublisher
from twisted.python.systemd import ListenFDs
from twisted.trial.unittest import SynchronousTestCase

from netd.config.file import loadConfig
from netd.interfaces import DATAGRAM
from netd.listen.endpoint import (
    MAX_DATAGRAM,
    BadListen,
    InheritedDatagramEndpoint,
    InheritedStreamEndpoint,
    parseListen,
)
from netd.listen.inherited import NotInherited
from netd.serving.daemon import Daemon
from netd.serving.systemd import (
    MAX_STATUS,
    Notifier,
    NotifySocket,
    Watchdog,
    watchdogInterval,
)
from tests.support import builtins
from tests.test_endpoint import RecordingUDPReactor

CONTRIB = Path(__file__).resolve().parents[1] / "contrib" / "systemd"

ECHO_AND_DAYTIME = """
[services.echo]
listen = ["tcp:7", "udp:7"]

[services.daytime]
listen = ["tcp:13"]
"""


class Reactor(MemoryReactorClock, RecordingUDPReactor):
    """A memory reactor with a clock that also records datagram listeners."""

    def __init__(self) -> None:
        MemoryReactorClock.__init__(self)
        RecordingUDPReactor.__init__(self)


def receiver(case: SynchronousTestCase, abstract: bool = False) -> tuple[socket.socket, str]:
    """
    A notification socket owned by the test, and its C{NOTIFY_SOCKET} value: a path in a
    fresh short directory (unix paths are limited to 107 bytes), or an abstract name.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    case.addCleanup(sock.close)
    if abstract:
        name = f"netd-test-{uuid.uuid4().hex}"
        sock.bind("\0" + name)
        address = "@" + name
    else:
        directory = tempfile.mkdtemp(prefix="netd-notify-")
        case.addCleanup(shutil.rmtree, directory, True)
        address = os.path.join(directory, "notify")
        sock.bind(address)
    sock.setblocking(False)
    return sock, address


def received(sock: socket.socket) -> list[str]:
    """Every notification waiting on C{sock}, oldest first."""
    messages = []
    while True:
        try:
            messages.append(sock.recv(65536).decode("utf-8"))
        except BlockingIOError:
            return messages


class NotifierTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.sock, self.address = receiver(self)
        self.reactor = Reactor()
        self.path = self.mktemp()
        self.writeConfig(ECHO_AND_DAYTIME)

    def writeConfig(self, text: str) -> None:
        with open(self.path, "w") as f:
            f.write(text)

    def startDaemon(self, environ: dict[str, str] | None = None, pid: int = 4242) -> Daemon:
        registry = builtins()
        load = partial(loadConfig, self.path, registry)
        daemon = Daemon(load(), self.reactor, load, stderr=None)
        environ = {"NOTIFY_SOCKET": self.address, **(environ or {})}
        notifier = Notifier.fromEnvironment(environ, self.reactor, pid=pid)
        notifier.monotonic = lambda: 123456789
        notifier.attach(daemon)
        daemon.privilegedStartService()
        daemon.startService()
        self.addCleanup(self.stop, daemon)
        return daemon

    def stop(self, daemon: Daemon) -> None:
        if daemon.running:
            self.successResultOf(daemon.stopService())

    def test_readyOnceEveryListenerIsBound(self) -> None:
        """Startup sends READY=1 with a status naming each service and its listeners."""
        self.startDaemon()
        self.assertEqual(
            received(self.sock),
            ["READY=1\nSTATUS=serving echo (tcp:7, udp:7), daytime (tcp:13)"],
        )

    def test_reloadIsBracketedByReloadingAndReady(self) -> None:
        """A reload sends RELOADING=1 with the monotonic time, then READY=1 with the new status."""
        daemon = self.startDaemon()
        received(self.sock)
        self.writeConfig('[services.discard]\nlisten = ["tcp:9"]\n')
        self.assertTrue(daemon.reload())
        self.assertEqual(
            received(self.sock),
            [
                "RELOADING=1\nMONOTONIC_USEC=123456789\nSTATUS=reloading configuration",
                "READY=1\nSTATUS=serving discard (tcp:9)",
            ],
        )

    def test_rejectedReloadIsReadyAgain(self) -> None:
        """A rejected reload still ends with READY=1, the running services unchanged."""
        daemon = self.startDaemon()
        received(self.sock)
        self.writeConfig("[services.echo]\nmax-conections = 3\n")
        self.assertFalse(daemon.reload())
        [reloading, ready] = received(self.sock)
        self.assertTrue(reloading.startswith("RELOADING=1\n"))
        self.assertEqual(ready, "READY=1\nSTATUS=serving echo (tcp:7, udp:7), daytime (tcp:13)")

    def test_stoppingAtTheStartOfTheGracefulStop(self) -> None:
        """The graceful stop begins with STOPPING=1."""
        daemon = self.startDaemon()
        received(self.sock)
        self.successResultOf(daemon.stopService())
        self.assertEqual(
            received(self.sock), ["STOPPING=1\nSTATUS=stopping: finishing open connections"]
        )

    def test_statusStaysShort(self) -> None:
        """A status too long for one notification is cut, so READY=1 still arrives."""
        listen = ", ".join(f'"tcp:{port}"' for port in range(1000, 1300))
        self.writeConfig(f"[services.echo]\nlisten = [{listen}]\n")
        self.startDaemon()
        [message] = received(self.sock)
        self.assertTrue(message.startswith("READY=1\nSTATUS=serving echo (tcp:1000, tcp:1001"))
        self.assertEqual(len(message), len("READY=1\nSTATUS=") + MAX_STATUS)
        self.assertTrue(message.endswith("..."))

    def test_watchdogPingsEveryHalfPeriodUntilStopped(self) -> None:
        """With WATCHDOG_USEC, WATCHDOG=1 is sent at start and every half period, none after stop."""
        daemon = self.startDaemon({"WATCHDOG_USEC": "2000000"})
        self.assertEqual(received(self.sock)[0], "WATCHDOG=1")
        self.reactor.advance(0.999)
        self.assertEqual(received(self.sock), [])
        self.reactor.advance(0.001)
        self.assertEqual(received(self.sock), ["WATCHDOG=1"])
        self.reactor.pump([1.0, 1.0, 1.0])
        self.assertEqual(received(self.sock), ["WATCHDOG=1"] * 3)
        self.successResultOf(daemon.stopService())
        received(self.sock)
        self.reactor.advance(10)
        self.assertEqual(received(self.sock), [])

    def test_watchdogForThisProcessOnly(self) -> None:
        """A WATCHDOG_PID naming another process means no pings; naming this one, pings."""
        other = self.startDaemon({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}, pid=4242)
        self.assertEqual([s for s in other if isinstance(s, Watchdog)], [])
        self.reactor.advance(5)
        self.assertNotIn("WATCHDOG=1", received(self.sock))
        self.successResultOf(other.stopService())
        mine = self.startDaemon({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "4242"}, pid=4242)
        [watchdog] = [s for s in mine if isinstance(s, Watchdog)]
        self.assertEqual(watchdog.interval, 1.0)

    def test_abstractSocketName(self) -> None:
        """An @name NOTIFY_SOCKET is a Linux abstract socket."""
        sock, address = receiver(self, abstract=True)
        self.assertTrue(NotifySocket(address).send("READY=1", "STATUS=up"))
        self.assertEqual(received(sock), ["READY=1\nSTATUS=up"])


class WatchdogIntervalTests(SynchronousTestCase):
    def test_halfOfTheTimeout(self) -> None:
        """Pings come every half WATCHDOG_USEC, so one late ping is not yet a restart."""
        self.assertEqual(watchdogInterval({"WATCHDOG_USEC": "30000000"}, 7), 15.0)
        self.assertEqual(watchdogInterval({"WATCHDOG_USEC": "200000", "WATCHDOG_PID": "7"}, 7), 0.1)

    def test_noWatchdog(self) -> None:
        """No, malformed or non-positive WATCHDOG_USEC, or another WATCHDOG_PID, means no pings."""
        for environ in (
            {},
            {"WATCHDOG_USEC": "soon"},
            {"WATCHDOG_USEC": "0"},
            {"WATCHDOG_USEC": "-5"},
            {"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "8"},
        ):
            self.assertIsNone(watchdogInterval(environ, 7), environ)


class NotifySocketErrorTests(SynchronousTestCase):
    def test_failuresAreLoggedOnceNotRaised(self) -> None:
        """Notifying a socket nobody listens on is logged once, and the daemon carries on."""
        events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        directory = tempfile.mkdtemp(prefix="netd-notify-")
        self.addCleanup(shutil.rmtree, directory, True)
        notify = NotifySocket(os.path.join(directory, "absent"))
        self.assertFalse(notify.send("READY=1"))
        self.assertFalse(notify.send("WATCHDOG=1"))
        [event] = events
        self.assertIn("cannot notify systemd", event["log_format"])
        self.assertEqual(event["error"], "No such file or directory")

    def test_loggedAgainAfterRecovering(self) -> None:
        """After a notification gets through, the next failure is logged again."""
        events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        directory = tempfile.mkdtemp(prefix="netd-notify-")
        self.addCleanup(shutil.rmtree, directory, True)
        path = os.path.join(directory, "notify")
        notify = NotifySocket(path)
        self.assertFalse(notify.send("READY=1"))
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(path)
            self.assertTrue(notify.send("WATCHDOG=1"))
        os.unlink(path)
        self.assertFalse(notify.send("WATCHDOG=1"))
        self.assertEqual(len(events), 2)

    def test_unusableAddresses(self) -> None:
        """A relative path or a vsock: address is logged, never raised."""
        events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        for address in ("notify.sock", "vsock:2:1234", "@", ""):
            self.assertFalse(NotifySocket(address).send("READY=1"), address)
        self.assertEqual(len(events), 4)


def freeDescriptors(count: int) -> int:
    """The first of C{count} consecutive unused descriptor numbers."""

    def unused(fd: int) -> bool:
        try:
            fcntl.fcntl(fd, fcntl.F_GETFD)
        except OSError:
            return True
        return False

    start = 100
    while not all(unused(fd) for fd in range(start, start + count)):
        start += count
    return start


class InheritedSocketTests(SynchronousTestCase):
    def inherit(self, *sockets: socket.socket) -> int:
        """Place C{sockets} at consecutive descriptors, as systemd does; the first one's."""
        start = freeDescriptors(len(sockets))
        for offset, sock in enumerate(sockets):
            os.dup2(sock.fileno(), start + offset, inheritable=False)
            self.addCleanup(os.close, start + offset)
            sock.close()
        return start

    def inherited(self, start: int, **environ: str) -> ListenFDs:
        """Parse an injected environment the way netd does in production."""
        return ListenFDs.fromEnvironment(environ, start)

    def echoPair(self, udpFamily: socket.AddressFamily = socket.AF_INET) -> int:
        return self.inherit(
            socket.socket(socket.AF_INET6, socket.SOCK_STREAM),
            socket.socket(udpFamily, socket.SOCK_DGRAM),
        )

    def forThisProcess(self, start: int, names: str = "echo:echo-udp") -> ListenFDs:
        return self.inherited(
            start, LISTEN_PID=str(os.getpid()), LISTEN_FDS="2", LISTEN_FDNAMES=names
        )

    def failure(self, endpoint: InheritedDatagramEndpoint) -> str:
        error = self.failureResultOf(endpoint.listen(DatagramProtocol()), NotInherited)
        return str(error.value)

    def test_adoptsTheDatagramSocketNamed(self) -> None:
        """systemd-udp:name=NAME serves the inherited socket of that name, keeping it open."""
        start = self.echoPair()
        reactor = MemoryReactor()
        protocol = DatagramProtocol()
        endpoint = InheritedDatagramEndpoint(
            reactor, name="echo-udp", inherited=self.forThisProcess(start)
        )
        self.successResultOf(endpoint.listen(protocol))
        self.assertEqual(
            reactor.adoptedPorts, [(start + 1, socket.AF_INET, protocol, MAX_DATAGRAM)]
        )
        self.assertTrue(fcntl.fcntl(start + 1, fcntl.F_GETFL) & os.O_NONBLOCK)

    def test_adoptsByIndexWithTheSocketsFamily(self) -> None:
        """systemd-udp:index=N takes the Nth socket, served as the family it really is."""
        start = self.echoPair(udpFamily=socket.AF_INET6)
        reactor = MemoryReactor()
        endpoint = InheritedDatagramEndpoint(reactor, index=1, inherited=self.forThisProcess(start))
        self.successResultOf(endpoint.listen(DatagramProtocol()))
        [(fd, family, _, _)] = reactor.adoptedPorts
        self.assertEqual((fd, family), (start + 1, socket.AF_INET6))

    def test_socketsMeantForAnotherProcess(self) -> None:
        """Sockets whose LISTEN_PID is another process's are not taken."""
        start = self.echoPair()
        inherited = self.inherited(
            start, LISTEN_PID=str(os.getpid() + 1), LISTEN_FDS="2", LISTEN_FDNAMES="echo:echo-udp"
        )
        message = self.failure(
            InheritedDatagramEndpoint(MemoryReactor(), "echo-udp", None, inherited)
        )
        self.assertIn(
            "no socket named 'echo-udp' was inherited from systemd (none inherited", message
        )

    def test_namesAreRequired(self) -> None:
        """Without LISTEN_FDNAMES nothing is inherited, as for Twisted's systemd: endpoint."""
        start = self.echoPair()
        inherited = self.inherited(start, LISTEN_PID=str(os.getpid()), LISTEN_FDS="2")
        message = self.failure(InheritedDatagramEndpoint(MemoryReactor(), None, 1, inherited))
        self.assertIn("no socket number 1 was inherited from systemd (none inherited", message)

    def test_unknownNameListsTheInheritedOnes(self) -> None:
        """A name systemd did not pass is an error listing the names it did pass."""
        inherited = self.forThisProcess(self.echoPair())
        message = self.failure(
            InheritedDatagramEndpoint(MemoryReactor(), "time-udp", None, inherited)
        )
        self.assertEqual(
            message,
            "no socket named 'time-udp' was inherited from systemd (inherited: echo, echo-udp)",
        )
        message = self.failure(InheritedDatagramEndpoint(MemoryReactor(), None, 2, inherited))
        self.assertIn("no socket number 2 was inherited", message)

    def test_streamSocketRefused(self) -> None:
        """A stream socket given to systemd-udp: is an error saying ListenDatagram= is needed."""
        inherited = self.forThisProcess(self.echoPair())
        reactor = MemoryReactor()
        message = self.failure(InheritedDatagramEndpoint(reactor, "echo", None, inherited))
        self.assertIn("is a stream socket, this listener needs a datagram one", message)
        self.assertIn("(ListenDatagram=)", message)
        self.assertEqual(reactor.adoptedPorts, [])

    def test_notASocketOrNotInternet(self) -> None:
        """A pipe, or a unix datagram socket, is refused with the reason."""
        readEnd, writeEnd = os.pipe()
        self.addCleanup(os.close, writeEnd)
        pair = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(pair[1].close)
        start = freeDescriptors(2)
        os.dup2(readEnd, start, inheritable=False)
        os.close(readEnd)
        self.addCleanup(os.close, start)
        os.dup2(pair[0].fileno(), start + 1, inheritable=False)
        pair[0].close()
        self.addCleanup(os.close, start + 1)
        inherited = self.forThisProcess(start, names="pipe:local")
        self.assertIn(
            "is not a socket",
            self.failure(InheritedDatagramEndpoint(MemoryReactor(), "pipe", None, inherited)),
        )
        self.assertIn(
            "(AF_UNIX): netd serves UDP only",
            self.failure(InheritedDatagramEndpoint(MemoryReactor(), "local", None, inherited)),
        )

    def test_streamUsesTheSocketsFamily(self) -> None:
        """An inherited stream socket is served as its real family and stays open."""
        start = self.echoPair()
        reactor = MemoryReactor()
        factory = Factory.forProtocol(Protocol)
        self.successResultOf(InheritedStreamEndpoint(reactor, start).listen(factory))
        self.assertEqual(reactor.adoptedPorts, [(start, socket.AF_INET6, factory)])
        fcntl.fcntl(start, fcntl.F_GETFD)  # still open: a reload can adopt it again

    def test_streamRefusesADatagramSocket(self) -> None:
        """A datagram socket given to systemd: is an error saying ListenStream= is needed."""
        start = self.echoPair()
        endpoint = InheritedStreamEndpoint(MemoryReactor(), start + 1)
        error = self.failureResultOf(endpoint.listen(Factory.forProtocol(Protocol)), NotInherited)
        self.assertIn("is a datagram socket, this listener needs a stream one", str(error.value))
        self.assertIn("(ListenStream=)", str(error.value))


class ParseListenTests(SynchronousTestCase):
    def test_systemdUdp(self) -> None:
        """systemd-udp:name=NAME and systemd-udp:index=N are datagram listeners binding nothing."""
        spec = parseListen("systemd-udp:name=echo-udp")
        self.assertEqual((spec.kind, spec.bindKey()), (DATAGRAM, None))
        endpoint = spec.endpoint(MemoryReactor())
        assert isinstance(endpoint, InheritedDatagramEndpoint)
        self.assertEqual((endpoint.name, endpoint.index), ("echo-udp", None))
        endpoint = parseListen("systemd-udp:index=2").endpoint(MemoryReactor())
        assert isinstance(endpoint, InheritedDatagramEndpoint)
        self.assertEqual((endpoint.name, endpoint.index), (None, 2))

    def test_badSystemdUdp(self) -> None:
        """A malformed systemd-udp: description is refused, naming it."""
        expected = "expected systemd-udp:name=NAME or systemd-udp:index=N"
        cases = {
            "systemd-udp:": expected,
            "systemd-udp:name=": expected,
            "systemd-udp:echo": expected,
            "systemd-udp:port=7": expected,
            "systemd-udp:name=echo:index=0": expected,
            "systemd-udp:name=echo:domain=INET": expected,
            "systemd-udp:index=one": "index 'one' is not a number >= 0",
            "systemd-udp:index=-1": "index '-1' is not a number >= 0",
        }
        for description, problem in cases.items():
            error = self.assertRaises(BadListen, parseListen, description)
            self.assertIn(repr(description), str(error))
            self.assertIn(problem, str(error))

    def test_systemdStreamNotInherited(self) -> None:
        """A systemd: listener whose socket was not inherited is refused in one clear line."""
        error = self.assertRaises(BadListen, parseListen, "systemd:domain=INET:name=echo")
        self.assertIn(
            "'systemd:domain=INET:name=echo': no socket named 'echo' was inherited from systemd",
            str(error),
        )


def unitSettings(path: Path) -> dict[str, list[str]]:
    """The C{Key=Value} settings of a unit file, each key's values in order."""
    settings: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z]+)=(.*)$", line)
        if match:
            settings.setdefault(match[1], []).append(match[2])
    return settings


class ContribTests(SynchronousTestCase):
    def test_exampleConfigTakesEachShippedSocket(self) -> None:
        """netd-classic.toml takes every socket netd.target starts once, each of the right kind."""
        sockets: dict[str, str] = {}
        for path in CONTRIB.glob("netd-*.socket"):
            settings = unitSettings(path)
            self.assertEqual(settings["Service"], ["netd.service"], path.name)
            [name] = settings["FileDescriptorName"]
            self.assertEqual(path.name, f"netd-{name}.socket")
            sockets[name] = "systemd-udp" if "ListenDatagram" in settings else "systemd"
        self.assertEqual(len(sockets), 8)
        wanted = " ".join(unitSettings(CONTRIB / "netd.target")["Wants"]).split()
        self.assertEqual(sorted(wanted), sorted(f"netd-{name}.socket" for name in sockets))
        config = tomllib.loads((CONTRIB / "netd-classic.toml").read_text())
        taken: dict[str, str] = {}
        for service in config["services"].values():
            for description in service["listen"]:
                kind = description.split(":", 1)[0]
                if kind == "systemd-udp":
                    parseListen(description)
                found = re.search(r"name=([^:]+)", description)
                assert found is not None, description
                self.assertNotIn(found[1], taken)
                taken[found[1]] = kind
        self.assertEqual(taken, sockets)

    def test_noUdpChargenSocket(self) -> None:
        """No shipped socket unit offers chargen over UDP, a reflection amplifier."""
        for path in CONTRIB.glob("*.socket"):
            self.assertNotIn("19", unitSettings(path).get("ListenDatagram", []), path.name)
