"""
Tests for L{netd.workers}: the supervisor on a fake spawner and a L{Clock}, the metrics
summed over workers, the worker's configuration and reports, the descriptors and
environment a worker is started with, and the parent built by C{makeService}.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.address import IPv4Address
from twisted.internet.error import ProcessDone, ProcessExitedAlready, ProcessTerminated
from twisted.internet.task import Clock
from twisted.logger import LogLevel
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from netd.admin.metrics import daemonRegistry
from netd.admission.policy import Policy
from netd.config.file import ConfigFileError
from netd.config.options import optionsFor
from netd.config.settings import DaemonSettings
from netd.serving.daemon import Daemon
from netd.stats import ServiceStats
from netd.tap import makeService
from netd.workers.metrics import WorkersCollector, WorkerTotals
from netd.workers.parent import ArgumentOptions, ConfigSource, SupervisingDaemon
from netd.workers.sockets import AdoptedListen, AdoptingReactor, HeldListen, HoldingReactor
from netd.workers.spawner import (
    MODULE,
    LogRelay,
    ProcessSpawner,
    WorkerPlan,
    WorkerProtocol,
    childDescriptors,
    childEnvironment,
    exitStatus,
)
from netd.workers.spec import WORKER_VARIABLE, WorkerSpec
from netd.workers.supervisor import (
    INITIAL_BACKOFF,
    MAX_BACKOFF,
    STABLE_AFTER,
    STOP_MARGIN,
    IWorkerProcess,
    IWorkerSpawner,
    Supervisor,
    Worker,
)
from netd.workers.worker import (
    REPORT_INTERVAL,
    WorkerReport,
    shareDatagrams,
    workerConfig,
)
from tests.support import builtins
from tests.test_tap import Reactor

# The supervisor.


@implementer(IWorkerProcess)
@dataclass(eq=False)
class FakeProcess:
    """A started worker: records the signals it is sent."""

    pid: int
    signals: list[int] = field(default_factory=list)

    def signal(self, number: int) -> None:
        self.signals.append(number)


@implementer(IWorkerSpawner)
class FakeSpawner:
    """Starts fake processes with pids from 100; fails while C{failing} is set."""

    def __init__(self) -> None:
        self.started: list[tuple[Worker, FakeProcess]] = []
        self.failing: Exception | None = None

    def spawn(self, worker: Worker, supervisor: Supervisor) -> IWorkerProcess:
        if self.failing is not None:
            raise self.failing
        process = FakeProcess(100 + len(self.started))
        self.started.append((worker, process))
        return process


@dataclass
class FakeDaemon:
    """What the supervisor reads of the parent daemon."""

    reloads: int = 0
    config: Any = field(default_factory=lambda: SimpleNamespace(settings=DaemonSettings(workers=2)))


def running(count: int = 2, timeout: float = 5.0) -> tuple[Supervisor, FakeSpawner, Clock]:
    """A started supervisor of C{count} workers on a fake spawner and clock."""
    spawner, clock = FakeSpawner(), Clock()
    supervisor = Supervisor(spawner, clock, count, lambda: timeout)
    supervisor.startService()
    return supervisor, spawner, clock


def readyAll(supervisor: Supervisor) -> None:
    for worker in list(supervisor.current.values()):
        supervisor.workerReady(worker)


def pids(workers: Any) -> list[int | None]:
    return sorted(worker.pid for worker in workers)


class SupervisorTests(SynchronousTestCase):
    def test_fakesProvideTheirInterfaces(self) -> None:
        """The fake spawner and process provide the interfaces the real ones do."""
        self.assertTrue(verifyObject(IWorkerSpawner, FakeSpawner()))
        self.assertTrue(verifyObject(IWorkerProcess, FakeProcess(1)))

    def test_startsOneWorkerPerSlot(self) -> None:
        """Starting the supervisor starts N workers, numbered 1 to N."""
        supervisor, spawner, _ = running(3)
        self.assertEqual([worker.slot for worker, _ in spawner.started], [1, 2, 3])
        self.assertEqual(sorted(supervisor.current), [1, 2, 3])

    def test_deadWorkerIsRestartedAfterABackoff(self) -> None:
        """A worker that exits unexpectedly is started again in its slot after the backoff."""
        supervisor, spawner, clock = running()
        readyAll(supervisor)
        dead = supervisor.current[1]
        supervisor.workerEnded(dead, "killed by SIGKILL")
        self.assertNotIn(1, supervisor.current)
        clock.advance(INITIAL_BACKOFF - 0.01)
        self.assertEqual(len(spawner.started), 2)
        clock.advance(0.01)
        self.assertEqual(len(spawner.started), 3)
        self.assertEqual(supervisor.current[1].pid, 102)
        self.assertEqual(supervisor.restarts, 1)

    def test_crashLoopBacksOffToTheLimit(self) -> None:
        """A worker failing again and again waits twice as long each time, up to the limit."""
        supervisor, spawner, clock = running(1)
        delays = []
        for _ in range(9):
            supervisor.workerEnded(supervisor.current[1], "exit status 1")
            before = clock.seconds()
            while 1 not in supervisor.current:
                clock.advance(0.25)
            delays.append(clock.seconds() - before)
        self.assertEqual(delays, [0.5, 1, 2, 4, 8, 16, MAX_BACKOFF, MAX_BACKOFF, MAX_BACKOFF])

    def test_longRunResetsTheBackoff(self) -> None:
        """A worker that ran a while before dying is restarted after the first backoff again."""
        supervisor, spawner, clock = running(1)
        for _ in range(3):
            supervisor.workerEnded(supervisor.current[1], "exit status 1")
            clock.advance(MAX_BACKOFF)
        clock.advance(STABLE_AFTER)
        supervisor.workerEnded(supervisor.current[1], "exit status 1")
        clock.advance(INITIAL_BACKOFF)
        self.assertIn(1, supervisor.current)

    def test_workerThatCannotStartIsRetried(self) -> None:
        """A worker whose process cannot be started is retried after the backoff."""
        spawner, clock = FakeSpawner(), Clock()
        spawner.failing = OSError(24, "Too many open files")
        supervisor = Supervisor(spawner, clock, 1)
        supervisor.startService()
        self.assertEqual(supervisor.current, {})
        spawner.failing = None
        clock.advance(INITIAL_BACKOFF)
        self.assertEqual(len(spawner.started), 1)

    def test_stopSignalsEveryWorkerAndWaits(self) -> None:
        """Stopping sends SIGTERM to every worker and fires once all have exited."""
        supervisor, spawner, clock = running()
        readyAll(supervisor)
        stopped = supervisor.stopService()
        self.assertEqual([p.signals for _, p in spawner.started], [[signal.SIGTERM]] * 2)
        self.assertNoResult(stopped)
        first, second = spawner.started
        supervisor.workerEnded(first[0], "exit status 0")
        self.assertNoResult(stopped)
        supervisor.workerEnded(second[0], "exit status 0")
        self.successResultOf(stopped)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_nothingRestartsDuringTheStop(self) -> None:
        """A worker that dies while the supervisor stops is not restarted, nor is a pending restart."""
        supervisor, spawner, clock = running()
        supervisor.workerEnded(supervisor.current[1], "killed by SIGSEGV")
        stopped = supervisor.stopService()
        supervisor.workerEnded(spawner.started[1][0], "exit status 0")
        clock.advance(MAX_BACKOFF)
        self.assertEqual(len(spawner.started), 2)
        self.successResultOf(stopped)

    def test_stopKillsWorkersThatOutstayTheTimeout(self) -> None:
        """A worker still running after the shutdown timeout and the margin gets SIGKILL."""
        supervisor, spawner, clock = running(1, timeout=3.0)
        stopped = supervisor.stopService()
        [(worker, process)] = spawner.started
        clock.advance(3.0 + STOP_MARGIN - 0.01)
        self.assertEqual(process.signals, [signal.SIGTERM])
        clock.advance(0.01)
        self.assertEqual(process.signals, [signal.SIGTERM, signal.SIGKILL])
        self.assertNoResult(stopped)
        supervisor.workerEnded(worker, "killed by SIGKILL")
        self.successResultOf(stopped)

    def test_stopGivesUpOnWorkersNeverReaped(self) -> None:
        """The stop is bounded even if a killed worker is never reported gone."""
        supervisor, _, clock = running(1, timeout=0.0)
        stopped = supervisor.stopService()
        clock.advance(STOP_MARGIN)
        self.assertNoResult(stopped)
        clock.advance(2.0)
        self.successResultOf(stopped)

    def test_replacedWorkerThatHangsIsKilled(self) -> None:
        """A worker replaced on reload that ignores SIGTERM is killed after the timeout and margin."""
        supervisor, spawner, clock = running(1, timeout=2.0)
        readyAll(supervisor)
        supervisor.replaceAll()
        supervisor.workerReady(supervisor.current[1])
        old = spawner.started[0][1]
        clock.advance(2.0 + STOP_MARGIN)
        self.assertEqual(old.signals, [signal.SIGTERM, signal.SIGKILL])
        supervisor.workerEnded(spawner.started[0][0], "killed by SIGKILL")
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_parentStoppingSignalsAtOnce(self) -> None:
        """When the parent's graceful stop begins, the workers are told at once."""
        supervisor, spawner, _ = running()
        supervisor.stopping(FakeDaemon())  # type: ignore[arg-type]
        self.assertEqual([p.signals for _, p in spawner.started], [[signal.SIGTERM]] * 2)
        supervisor.stopService()
        self.assertEqual([p.signals for _, p in spawner.started], [[signal.SIGTERM]] * 2)

    def test_appliedReloadReplacesEachWorkerOnceItsSuccessorIsReady(self) -> None:
        """After an applied reload each slot gets a new worker; the old one stops when it is ready."""
        supervisor, spawner, _ = running()
        readyAll(supervisor)
        daemon = FakeDaemon()
        supervisor.reloading(daemon)  # type: ignore[arg-type]
        daemon.reloads += 1
        supervisor.ready(daemon)  # type: ignore[arg-type]
        old = [process for _, process in spawner.started[:2]]
        self.assertEqual(len(spawner.started), 4)
        self.assertEqual([p.signals for p in old], [[], []])
        self.assertEqual(pids(supervisor.serving()), [100, 101])
        supervisor.workerReady(supervisor.current[1])
        self.assertEqual([p.signals for p in old], [[signal.SIGTERM], []])
        self.assertEqual(pids(supervisor.serving()), [101, 102])
        supervisor.workerEnded(spawner.started[0][0], "exit status 0")
        self.assertEqual(supervisor.restarts, 0)

    def test_rejectedReloadKeepsTheWorkers(self) -> None:
        """A reload that was rejected starts and stops nothing."""
        supervisor, spawner, _ = running()
        daemon = FakeDaemon()
        supervisor.reloading(daemon)  # type: ignore[arg-type]
        supervisor.ready(daemon)  # type: ignore[arg-type]
        supervisor.ready(daemon)  # type: ignore[arg-type]
        self.assertEqual(len(spawner.started), 2)

    def test_reloadDuringAReloadKeepsTheLastServingWorker(self) -> None:
        """A worker not yet ready is stopped by the next reload; the one still serving waits."""
        supervisor, spawner, _ = running(1)
        readyAll(supervisor)
        supervisor.replaceAll()
        supervisor.replaceAll()
        serving, starting, newest = (process for _, process in spawner.started)
        self.assertEqual((serving.signals, starting.signals), ([], [signal.SIGTERM]))
        supervisor.workerReady(supervisor.current[1])
        self.assertEqual(serving.signals, [signal.SIGTERM])
        self.assertEqual(pids(supervisor.serving()), [newest.pid])

    def test_oldWorkerDyingDuringAReloadIsNotRestarted(self) -> None:
        """A replaced worker that exits before its successor is ready is not restarted."""
        supervisor, spawner, clock = running(1)
        readyAll(supervisor)
        supervisor.replaceAll()
        supervisor.workerEnded(spawner.started[0][0], "killed by SIGKILL")
        clock.advance(MAX_BACKOFF)
        self.assertEqual(len(spawner.started), 2)

    def test_reopenReachesServingWorkersOnly(self) -> None:
        """SIGUSR1 goes to serving workers only: one still starting might not handle it yet."""
        supervisor, spawner, _ = running()
        supervisor.workerReady(supervisor.current[2])
        supervisor.reopen()
        self.assertEqual([p.signals for _, p in spawner.started], [[], [signal.SIGUSR1]])

    def test_noWorkerServingIsAProblem(self) -> None:
        """Health reports a problem until a worker serves, and none once one does."""
        supervisor, _, _ = running()
        self.assertEqual(supervisor.problems(), ["no worker is serving (2 of 2 starting)"])
        supervisor.workerReady(supervisor.current[1])
        self.assertEqual(supervisor.problems(), [])


# Metrics summed over workers.


def snapshot(**counts: Any) -> dict[str, Any]:
    """A worker's report of one service: zeros, but for C{counts}."""
    return {**ServiceStats().snapshot(), **counts}


def runtime(name: str) -> Any:
    """What the totals write into: a parent's service."""
    return SimpleNamespace(name=name, guard=SimpleNamespace(stats=ServiceStats()))


class TotalsTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.echo = runtime("echo")
        self.totals = WorkerTotals(lambda: [self.echo])
        self.one, self.two = Worker(1, 0.0), Worker(2, 0.0)

    def test_sumsWorkersPerService(self) -> None:
        """The parent's counters of a service are the sums of its workers' counters."""
        durations = [0] * len(ServiceStats().durationCounts)
        durations[0] = 2
        self.totals.report(
            self.one,
            {"echo": snapshot(accepted=3, active=1, refused={"rate": 2}, durationCounts=durations)},
        )
        self.totals.report(
            self.two, {"echo": snapshot(accepted=4, active=2, refused={"rate": 1, "denied": 5})}
        )
        stats = self.echo.guard.stats
        self.assertEqual((stats.accepted, stats.active), (7, 3))
        self.assertEqual(dict(stats.refused), {"rate": 3, "denied": 5})
        self.assertEqual(stats.durationCounts[0], 2)

    def test_aNewReportReplacesTheLast(self) -> None:
        """A worker's reports are snapshots: the newest counts, not the sum of them all."""
        self.totals.report(self.one, {"echo": snapshot(accepted=3)})
        self.totals.report(self.one, {"echo": snapshot(accepted=5)})
        self.assertEqual(self.echo.guard.stats.accepted, 5)

    def test_endedWorkerKeepsItsCountersNotItsConnections(self) -> None:
        """Counters never go back when a worker ends; its open connections are no longer counted."""
        self.totals.report(self.one, {"echo": snapshot(accepted=3, active=2, bytesIn=10)})
        self.totals.retire(self.one)
        self.totals.report(self.two, {"echo": snapshot(accepted=1, active=1)})
        stats = self.echo.guard.stats
        self.assertEqual((stats.accepted, stats.active, stats.bytesIn), (4, 1, 10))

    def test_malformedReportIsIgnored(self) -> None:
        """A report that is not counters changes nothing."""
        self.totals.report(self.one, {"echo": snapshot(accepted=3)})
        for bad in ([1, 2], {"echo": 7}, {"echo": {"accepted": "many"}}, None):
            self.totals.report(self.one, bad)
        self.assertEqual(self.echo.guard.stats.accepted, 3)

    def test_metricsAreTotalsAcrossWorkers(self) -> None:
        """/metrics is valid Prometheus text with each service's totals and the workers' own."""
        daemon = Daemon(parse("--proto", "echo").config, Reactor(), stderr=io.StringIO())
        supervisor, spawner, _ = running()
        supervisor.totals = WorkerTotals(daemon.runtimes)
        readyAll(supervisor)
        supervisor.workerReported(supervisor.current[1], {"echo": snapshot(accepted=2)})
        supervisor.workerReported(supervisor.current[2], {"echo": snapshot(accepted=5)})
        supervisor.workerEnded(supervisor.current[2], "killed by SIGKILL")
        registry = daemonRegistry(daemon)
        registry.register(WorkersCollector(supervisor))
        found = {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(generate_latest(registry).decode())
            for sample in family.samples
        }
        self.assertEqual(found[("netd_connections_accepted_total", (("service", "echo"),))], 7)
        self.assertEqual(found[("netd_workers", ())], 1)
        self.assertEqual(found[("netd_workers_configured", ())], 2)
        self.assertEqual(found[("netd_worker_restarts_total", ())], 0)

    def test_collectorAlone(self) -> None:
        """The workers' collector works in a registry of its own."""
        supervisor, _, _ = running(3)
        registry = CollectorRegistry()
        registry.register(WorkersCollector(supervisor))
        self.assertIn(b"netd_workers 0.0", generate_latest(registry))


# The worker's side.


def parse(*argv: str) -> Any:
    options = optionsFor(builtins(), lambda requested: "epoll", base=ArgumentOptions)()
    options.parseOptions(list(argv))
    return options


class WorkerConfigTests(SynchronousTestCase):
    def config(self) -> Any:
        return parse(
            "--proto",
            "echo",
            "--listen",
            "tcp:0:interface=127.0.0.1",
            "--listen",
            "udp:0:interface=127.0.0.1",
            "--udp-rate",
            "100",
            "--udp-burst",
            "3",
            "--admin",
            "9100",
        ).config

    def test_listenersAdoptTheirDescriptors(self) -> None:
        """Each listener is served on the descriptor its parent passed for it."""
        spec = WorkerSpec(
            1,
            2,
            "epoll",
            9,
            (("echo", "tcp:0:interface=127.0.0.1", 5), ("echo", "udp:0:interface=127.0.0.1", 6)),
        )
        [service] = workerConfig(self.config(), spec).services
        self.assertEqual(
            service.listen,
            (
                AdoptedListen("tcp:0:interface=127.0.0.1", "stream", 5),
                AdoptedListen("udp:0:interface=127.0.0.1", "datagram", 6),
            ),
        )

    def test_listenerTheParentLacksIsLeftOut(self) -> None:
        """A listener the parent could not bind is not served (nor fails the worker)."""
        spec = WorkerSpec(1, 2, "epoll", 9, (("echo", "udp:0:interface=127.0.0.1", 6),))
        [service] = workerConfig(self.config(), spec).services
        self.assertEqual([s.description for s in service.listen], ["udp:0:interface=127.0.0.1"])

    def test_datagramLimitsAreShared(self) -> None:
        """Each worker gets its share of the UDP limits; the admin listener is the parent's."""
        config = workerConfig(self.config(), WorkerSpec(1, 2, "epoll", 9))
        [service] = config.services
        self.assertEqual((service.policy.udpRate, service.policy.udpBurst), (50.0, 1))
        self.assertEqual(config.settings.udpReplyBudget, 5000.0)
        self.assertIsNone(config.settings.admin)
        self.assertEqual(service.policy.maxConnections, Policy().maxConnections)

    def test_unlimitedStaysUnlimited(self) -> None:
        """A UDP rate switched off stays off, and a burst never drops below one."""
        shared = shareDatagrams(Policy(udpRate=0.0, udpBurst=1), 4)
        self.assertEqual((shared.udpRate, shared.udpBurst), (0.0, 1))


class FakeWriter:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.closed = False

    def send(self, message: dict[str, Any]) -> None:
        self.sent.append(json.loads(json.dumps(message)))

    def close(self) -> None:
        self.closed = True


class WorkerReportTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.echo = SimpleNamespace(
            name="echo", guard=SimpleNamespace(stats=ServiceStats(), connections=[])
        )
        daemon = SimpleNamespace(runtimes=lambda: [self.echo])
        self.writer = FakeWriter()
        self.report = WorkerReport(daemon, self.writer, self.clock)  # type: ignore[arg-type]

    def test_readyThenChangesThenLast(self) -> None:
        """A worker reports ready at start, its counters when they change, and once more at stop."""
        self.report.startService()
        self.assertEqual(self.writer.sent[0]["ready"], True)
        self.clock.advance(REPORT_INTERVAL)
        self.assertEqual(len(self.writer.sent), 1)
        self.echo.guard.stats.accepted += 1
        self.clock.advance(REPORT_INTERVAL)
        self.assertEqual(self.writer.sent[-1]["services"]["echo"]["accepted"], 1)
        self.report.stopService()
        self.assertEqual(len(self.writer.sent), 3)
        self.assertTrue(self.writer.closed)
        self.assertEqual(self.clock.getDelayedCalls(), [])


# Starting processes.


class FakeProcessTransport:
    """A spawned process's transport: records signals and what is written to the child."""

    def __init__(self, pid: int) -> None:
        self.pid: int | None = pid
        self.signals: list[int] = []
        self.written: list[tuple[int, bytes]] = []
        self.closed: list[int] = []

    def signalProcess(self, number: int) -> None:
        if self.pid is None:
            raise ProcessExitedAlready()
        self.signals.append(number)

    def writeToChild(self, fd: int, data: bytes) -> None:
        self.written.append((fd, data))

    def closeChildFD(self, fd: int) -> None:
        self.closed.append(fd)


class SpawningReactor:
    """Records C{spawnProcess} calls."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def spawnProcess(self, protocol: Any, executable: str, args: list[str], **kw: Any) -> Any:
        transport = FakeProcessTransport(4000 + len(self.calls))
        self.calls.append({"protocol": protocol, "executable": executable, "args": args, **kw})
        protocol.makeConnection(transport)
        return transport


PLAN = WorkerPlan(
    2,
    "epoll",
    (("echo", "tcp:7", 12), ("echo", "udp:7", 13)),
    inherited=(3,),
    inheritedNames="web",
    configText="[services.echo]\n",
)


class RecordingSupervisor:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def workerReady(self, worker: Worker) -> None:
        self.calls.append(("ready", worker.slot))

    def workerReported(self, worker: Worker, services: Any) -> None:
        self.calls.append(("reported", services))

    def workerEnded(self, worker: Worker, status: str) -> None:
        self.calls.append(("ended", status))


class SpawnerTests(SynchronousTestCase):
    def test_descriptorLayout(self) -> None:
        """systemd's sockets come first, then the listeners, then the report and config pipes."""
        fds, spec = childDescriptors(PLAN, 2)
        self.assertEqual(fds, {0: "w", 1: "r", 2: "r", 3: 3, 4: 12, 5: 13, 6: "r", 7: "w"})
        self.assertEqual(
            spec, WorkerSpec(2, 2, "epoll", 6, (("echo", "tcp:7", 4), ("echo", "udp:7", 5)), 7)
        )

    def test_specRoundTrips(self) -> None:
        """What the parent writes in the environment is what the worker reads."""
        _, spec = childDescriptors(PLAN, 1)
        self.assertEqual(WorkerSpec.fromJSON(spec.toJSON()), spec)
        self.assertRaises(ValueError, WorkerSpec.fromJSON, '{"slot": 1}')
        self.assertRaises(ValueError, WorkerSpec.fromJSON, "not json")

    def test_environmentIsTheParentsForTheWorker(self) -> None:
        """Workers inherit the environment, but never speak to systemd, and get their own sockets' names."""
        _, spec = childDescriptors(PLAN, 1)
        environ = {
            "PATH": "/bin",
            "NOTIFY_SOCKET": "/run/notify",
            "WATCHDOG_USEC": "1000",
            "LISTEN_FDNAMES": "stale",
        }
        env = childEnvironment(environ, spec, PLAN)
        self.assertEqual(
            env,
            {
                "PATH": "/bin",
                "LISTEN_FDS": "1",
                "LISTEN_FDNAMES": "web",
                WORKER_VARIABLE: spec.toJSON(),
            },
        )

    def test_spawnRunsTheWorkerWithTheSameArguments(self) -> None:
        """A worker runs this interpreter with the parent's netd arguments, and gets the config text."""
        reactor = SpawningReactor()
        spawner = ProcessSpawner(
            reactor, ["--config", "x.toml"], lambda: PLAN, {"PATH": "/bin"}, "/usr/bin/python3"
        )
        self.assertTrue(verifyObject(IWorkerSpawner, spawner))
        process = spawner.spawn(Worker(1, 0.0), RecordingSupervisor())  # type: ignore[arg-type]
        self.assertTrue(verifyObject(IWorkerProcess, process))
        [call] = reactor.calls
        self.assertEqual(call["args"], ["/usr/bin/python3", "-m", MODULE, "--config", "x.toml"])
        self.assertEqual(call["childFDs"][4], 12)
        self.assertEqual(process.pid, 4000)
        transport = call["protocol"].transport
        self.assertEqual((transport.written, transport.closed), ([(7, b"[services.echo]\n")], [7]))


class WorkerProtocolTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.supervisor = RecordingSupervisor()
        self.protocol = WorkerProtocol(
            Worker(2, 0.0),
            self.supervisor,  # type: ignore[arg-type]
            6,
            LogRelay(2, self.events.append),  # type: ignore[arg-type]
        )
        self.transport = FakeProcessTransport(4321)
        self.protocol.makeConnection(self.transport)  # type: ignore[arg-type]

    def test_reportsInAnyChunking(self) -> None:
        """Reports reach the supervisor whatever size the pipe's reads are."""
        stream = b'{"ready":true,"services":{"echo":{"accepted":1}}}\n{"services":{}}\n'
        for size in range(1, len(stream) + 1):
            self.supervisor.calls.clear()
            for start in range(0, len(stream), size):
                self.protocol.childDataReceived(6, stream[start : start + size])
            self.assertEqual(
                self.supervisor.calls,
                [("reported", {"echo": {"accepted": 1}}), ("ready", 2), ("reported", {})],
            )

    def test_logRecordsAreRelayedMarked(self) -> None:
        """A worker's log record is published with its namespace, level, fields and a worker prefix."""
        record = {
            "time": "2026-11-21T14:30:00.250Z",
            "level": "warn",
            "namespace": "netd.admission.guard",
            "message": "echo refused",
            "service": "echo",
        }
        self.protocol.childDataReceived(1, json.dumps(record).encode() + b"\n")
        [event] = self.events
        self.assertEqual(event["log_namespace"], "netd.admission.guard")
        self.assertEqual(event["log_level"], LogLevel.warn)
        self.assertEqual(event["log_time"], 1795271400.25)
        self.assertEqual(event["service"], "echo")
        self.assertEqual(event["log_format"].format(**event), "worker 2 (pid 4321): echo refused")

    def test_legacyKeysAreNotRelayed(self) -> None:
        """Keys legacy observers read as objects (a failure) are not passed on as text."""
        record = {"level": "error", "message": "boom", "isError": 1, "failure": "<Failure>"}
        self.protocol.childDataReceived(1, json.dumps(record).encode() + b"\n")
        [event] = self.events
        self.assertFalse({"isError", "failure", "message"} & set(event))
        self.assertEqual(event["log_level"], LogLevel.error)

    def test_otherLinesAreRelayedAsText(self) -> None:
        """stderr lines and stdout lines that are not records are logged as text."""
        self.protocol.childDataReceived(2, b"Traceback (most recent call last):\n\n")
        self.protocol.childDataReceived(1, b"plain\n")
        self.assertEqual(
            [(e["log_level"], e["log_text"]) for e in self.events],
            [(LogLevel.warn, "Traceback (most recent call last):"), (LogLevel.info, "plain")],
        )

    def test_endReportsHowAndFlushes(self) -> None:
        """The end of the process flushes a last unterminated line and tells how it ended."""
        self.protocol.childDataReceived(6, b'{"ready":true}')
        self.protocol.processEnded(Failure(ProcessTerminated(signal=signal.SIGKILL)))
        self.assertEqual(self.supervisor.calls, [("ready", 2), ("ended", "killed by SIGKILL")])

    def test_signalToAGoneProcessIsIgnored(self) -> None:
        """Signalling a worker that already exited does nothing."""
        self.protocol.signal(signal.SIGTERM)
        self.transport.pid = None
        self.protocol.signal(signal.SIGTERM)
        self.assertEqual(self.transport.signals, [signal.SIGTERM])

    def test_exitStatus(self) -> None:
        """Exit statuses read as a person would say them."""
        self.assertEqual(exitStatus(Failure(ProcessDone(0))), "exit status 0")
        self.assertEqual(exitStatus(Failure(ProcessTerminated(exitCode=1))), "exit status 1")


# Sockets: held by the parent, adopted by the workers.


class HoldablePort:
    """A bound port as the holding reactor sees it."""

    def __init__(self, address: IPv4Address, fd: int) -> None:
        self.address, self.fd = address, fd
        self.reading = True
        self.listening = True

    def getHost(self) -> IPv4Address:
        return self.address

    def fileno(self) -> int:
        return self.fd

    def stopReading(self) -> None:
        self.reading = False

    def stopListening(self) -> None:
        self.listening = False


class ParentReactor(Reactor):
    """A memory reactor with holdable ports that records the processes it spawns."""

    def __init__(self) -> None:
        super().__init__()
        self.ports: list[HoldablePort] = []
        self.spawned = SpawningReactor()

    def listenTCP(self, port: int, factory: Any, backlog: int = 50, interface: str = "") -> Any:
        super().listenTCP(port, factory, backlog, interface)
        held = HoldablePort(
            IPv4Address("TCP", interface or "0.0.0.0", port or 40000), 50 + len(self.ports)
        )
        self.ports.append(held)
        return held

    def spawnProcess(self, *args: Any, **kwargs: Any) -> Any:
        return self.spawned.spawnProcess(*args, **kwargs)


class SocketTests(SynchronousTestCase):
    def test_heldPortNeverReads(self) -> None:
        """The parent binds through the endpoint as usual, then never reads or shuts the socket down."""
        reactor = ParentReactor()
        endpoint = HeldListen("tcp:7:interface=127.0.0.1", "stream").endpoint(reactor)
        port = self.successResultOf(endpoint.listen(object()))
        self.assertEqual(reactor.tcpServers[0][0], 7)
        self.assertFalse(port.reading)
        self.assertFalse(port._shouldShutdown)

    def test_listenerNotBoundThroughTheReactorIsRefused(self) -> None:
        """A listener that did not bind through the reactor cannot be shared, and says so."""
        holding = HoldingReactor(ParentReactor())
        elsewhere = HoldablePort(IPv4Address("TCP", "127.0.0.1", 7), 3)

        class Endpoint:
            def listen(self, target: Any) -> Any:
                from twisted.internet import defer

                return defer.succeed(elsewhere)

        from netd.workers.sockets import HeldEndpoint

        failure = self.failureResultOf(HeldEndpoint(Endpoint(), holding, "odd:7").listen(None))
        self.assertIn("cannot be shared with worker processes", str(failure.value))
        self.assertFalse(elsewhere.listening)

    def test_adoptingReactorServesItsDescriptor(self) -> None:
        """Whatever port an endpoint asks for, a worker adopts its inherited descriptor."""
        calls: list[tuple[Any, ...]] = []

        class Adopting:
            def adoptStreamPort(self, fd: int, family: int, factory: Any) -> str:
                calls.append(("stream", family, factory))
                return "port"

            def adoptDatagramPort(self, fd: int, family: int, protocol: Any, size: int) -> str:
                calls.append(("datagram", family, protocol, size))
                return "port"

        for kind, listen in [
            (socket.SOCK_STREAM, lambda r: r.listenTCP(7, "factory", 50, "127.0.0.1")),
            (socket.SOCK_DGRAM, lambda r: r.listenUDP(7, "protocol", "", 65535)),
        ]:
            sock = socket.socket(socket.AF_INET6, kind)
            fd = os.dup(sock.fileno())
            sock.close()
            self.assertEqual(listen(AdoptingReactor(Adopting(), fd)), "port")
            self.assertRaises(OSError, os.fstat, fd)  # the inherited descriptor is closed
        self.assertEqual(
            calls,
            [
                ("stream", socket.AF_INET6, "factory"),
                ("datagram", socket.AF_INET6, "protocol", 65535),
            ],
        )


# The parent, as makeService builds it.


class ParentTests(SynchronousTestCase):
    def test_oneWorkerIsOneProcess(self) -> None:
        """Without --workers, netd is one process: a plain daemon, nothing spawned."""
        reactor = ParentReactor()
        service = makeService(parse("--proto", "echo"), reactor)
        self.assertNotIsInstance(service, SupervisingDaemon)
        service.privilegedStartService()
        service.startService()
        self.assertEqual((reactor.spawned.calls, reactor.ports[0].reading), ([], True))
        service.stopService()

    def test_workersShareTheParentsListeners(self) -> None:
        """With --workers 2 the parent binds and holds the listener, and starts two workers with it."""
        reactor = ParentReactor()
        argv = ["--proto", "echo", "--workers", "2", "--admin", "9100"]
        service = makeService(parse(*argv), reactor)
        service.privilegedStartService()
        service.startService()
        echo, admin = reactor.ports
        self.assertEqual((echo.reading, admin.reading), (False, True))
        calls = reactor.spawned.calls
        self.assertEqual([call["args"][3:] for call in calls], [argv, argv])
        specs = [WorkerSpec.fromJSON(call["env"][WORKER_VARIABLE]) for call in calls]
        self.assertEqual([spec.slot for spec in specs], [1, 2])
        self.assertEqual(specs[0].listeners, (("echo", "tcp:10007:interface=127.0.0.1", 3),))
        self.assertEqual(calls[0]["childFDs"][3], echo.fd)
        self.assertIn("no worker is serving", service.problems()[0])
        stopped = service.stopService()
        self.assertEqual(
            [call["protocol"].transport.signals for call in calls], [[signal.SIGTERM]] * 2
        )
        for call in calls:
            call["protocol"].processEnded(Failure(ProcessDone(0)))
        self.successResultOf(stopped)

    def test_workersOption(self) -> None:
        """--workers takes a number from 1 to 64; a mistake is one line naming the value."""
        self.assertEqual(parse("--proto", "echo", "--workers", "3").config.settings.workers, 3)
        for bad in ("0", "65", "two"):
            error = self.assertRaises(SystemExit, parse, "--proto", "echo", "--workers", bad)
            self.assertEqual(
                str(error),
                f"netd: --workers: expected a whole number from 1 to 64, got '{bad}' (see --help)",
            )


class ConfigSourceTests(SynchronousTestCase):
    def test_workersGetTheTextTheParentParsed(self) -> None:
        """The text workers get is the text of the last configuration that loaded."""
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("workers = 2\n[services.echo]\n")
        source = ConfigSource(path, builtins())
        config = source.load()
        self.assertEqual(config.settings.workers, 2)
        [service] = config.services
        self.assertIsInstance(service.listen[0], HeldListen)
        with open(path, "w") as f:
            f.write("[services.echo]\nmax-connections = 'lots'\n")
        self.assertRaises(ConfigFileError, source.load)
        self.assertEqual(source.text, "workers = 2\n[services.echo]\n")

    def test_unreadableFileIsOneLine(self) -> None:
        """A file that cannot be read is a config error naming it."""
        error = self.assertRaises(
            ConfigFileError, ConfigSource("/nonexistent/netd.toml", builtins()).load
        )
        self.assertIn("/nonexistent/netd.toml: cannot read", str(error))
