"""
Starting worker processes, and hearing from them.

A worker is the same interpreter running C{python -m netd.workers} with the parent's own
netd arguments, started by C{reactor.spawnProcess} with these descriptors:

  - 0: a pipe from the parent, never written: its end tells the worker the parent died;
  - 1 and 2: its log (JSON lines) and its stderr, relayed into the parent's log, each
    line marked C{worker N (pid P):};
  - 3 on: the sockets the parent inherited from systemd, in their order (so a
    C{systemd:} listener finds the same socket), then one per listener the parent holds;
  - then the report pipe (readiness and counters, JSON lines), and for a config file, a
    pipe the parent writes the file's text to, exactly as it parsed it.

The environment is the parent's, without what systemd meant for the parent alone
(C{NOTIFY_SOCKET}: only the parent speaks to systemd), plus L{WORKER_VARIABLE}.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from twisted.internet.error import ProcessExitedAlready
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import ILogObserver, InvalidLogLevelError, Logger, LogLevel, globalLogPublisher
from twisted.python.failure import Failure
from zope.interface import implementer

from netd.workers.spec import WORKER_VARIABLE, WorkerSpec
from netd.workers.supervisor import IWorkerProcess, IWorkerSpawner, Supervisor, Worker

__all__ = [
    "LogRelay",
    "ProcessSpawner",
    "WorkerPlan",
    "WorkerProtocol",
    "childDescriptors",
    "childEnvironment",
    "exitStatus",
]

#: What the child runs: C{python -m netd.workers ARGS...}.
MODULE = "netd.workers"
#: The longest line kept from a worker; a longer one is cut there.
MAX_LINE = 1 << 20
#: Variables meant for the parent only: systemd talks to the main process.
_PARENT_ONLY = frozenset(
    {"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"}
)
#: Keys of a relayed record that are not event fields: the record's own, and those
#: Twisted's legacy observers (syslog) read as objects, which a record holds as text.
_NOT_FIELDS = frozenset(
    {"time", "level", "namespace", "message", "traceback"}
    | {"isError", "system", "format", "why", "failure", "printed"}
)


@dataclass(frozen=True)
class WorkerPlan:
    """
    What every worker gets now: the parent's listeners and configuration.

    @ivar listeners: C{(service, description, descriptor)}, the descriptor the parent's.
    @ivar inherited: the descriptors the parent inherited from systemd, in order.
    @ivar inheritedNames: C{LISTEN_FDNAMES} as the parent got it.
    @ivar configText: the config file as the parent parsed it, if there is one.
    """

    count: int
    reactor: str
    listeners: tuple[tuple[str, str, int], ...] = ()
    inherited: tuple[int, ...] = ()
    inheritedNames: str | None = None
    configText: str | None = None


def childDescriptors(plan: WorkerPlan, slot: int) -> tuple[dict[int, int | str], WorkerSpec]:
    """
    The C{childFDs} of worker C{slot} (child descriptor -> the parent's, or C{"r"}/C{"w"}
    for a pipe), and what the worker is told about them.
    """
    fds: dict[int, int | str] = {0: "w", 1: "r", 2: "r"}
    number = 3
    for fd in plan.inherited:
        fds[number] = fd
        number += 1
    listeners = []
    for service, description, fd in plan.listeners:
        fds[number] = fd
        listeners.append((service, description, number))
        number += 1
    report = number
    fds[report] = "r"
    config = None
    if plan.configText is not None:
        config = report + 1
        fds[config] = "w"
    return fds, WorkerSpec(slot, plan.count, plan.reactor, report, tuple(listeners), config)


def childEnvironment(
    environ: Mapping[str, str], spec: WorkerSpec, plan: WorkerPlan
) -> dict[str, str]:
    """The worker's environment: the parent's, for the worker (see the module docstring)."""
    env = {k: v for k, v in environ.items() if k not in _PARENT_ONLY and k != WORKER_VARIABLE}
    env[WORKER_VARIABLE] = spec.toJSON()
    if plan.inherited:
        # LISTEN_PID is the worker's own pid, which it sets itself (see worker.main).
        env["LISTEN_FDS"] = str(len(plan.inherited))
        if plan.inheritedNames is not None:
            env["LISTEN_FDNAMES"] = plan.inheritedNames
    return env


def exitStatus(reason: Failure) -> str:
    """How a process ended, in words: C{exit status 1}, C{killed by SIGKILL}."""
    value = reason.value
    number = getattr(value, "signal", None)
    if number is not None:
        try:
            return f"killed by {signal.Signals(number).name}"
        except ValueError:
            return f"killed by signal {number}"
    return f"exit status {getattr(value, 'exitCode', None)}"


def _eventTime(text: object) -> float:
    """A relayed record's C{time} (ISO 8601), or now."""
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return time.time()


class LogRelay:
    """
    A worker's log lines, published into this process's log as events of their own
    namespace and level, their text prefixed with C{worker N (pid P):} and the event
    fields (C{service}, C{peer}...) kept, so the JSON log stays structured.

    @ivar pid: the worker's process id, once it is started.
    """

    def __init__(self, slot: int, observer: ILogObserver = globalLogPublisher) -> None:
        self.slot = slot
        self.observer = observer
        self.pid: int | None = None

    def record(self, line: bytes) -> None:
        """One line of the worker's log: a JSON record, or text if it is not one."""
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if not isinstance(record, dict):
            self.text(line, LogLevel.info)
            return
        try:
            level = LogLevel.levelWithName(str(record.get("level", "info")))
        except InvalidLogLevelError:
            level = LogLevel.info
        text = str(record.get("message", ""))
        if record.get("traceback"):
            text += "\n" + str(record["traceback"])
        event = {str(k): v for k, v in record.items() if k not in _NOT_FIELDS}
        if record.get("namespace") == "log_legacy":
            event["log_system"] = "-"  # as twistd shows a legacy event of its own
        namespace = str(record.get("namespace", __name__))
        self._publish(event, level, namespace, text, _eventTime(record.get("time")))

    def text(self, line: bytes, level: LogLevel = LogLevel.warn) -> None:
        """A line that is not a log record (the worker's stderr)."""
        self._publish({}, level, __name__, line.decode("utf-8", "replace").rstrip("\r"))

    def _publish(
        self,
        event: dict[str, Any],
        level: LogLevel,
        namespace: str,
        text: str,
        when: float | None = None,
    ) -> None:
        event.update(
            log_time=time.time() if when is None else when,
            log_level=level,
            log_namespace=namespace,
            log_format="worker {worker} (pid {workerPid}): {log_text}",
            log_text=text,
            worker=self.slot,
            workerPid=self.pid,
        )
        self.observer(event)


@implementer(IWorkerProcess)
class WorkerProtocol(ProcessProtocol):
    """
    One worker process: its lines go to the log, its reports to the supervisor.

    @ivar pid: the process id, kept after the process is gone (for the log).
    """

    log = Logger()

    def __init__(
        self, worker: Worker, supervisor: Supervisor, reportFD: int, relay: LogRelay
    ) -> None:
        self.worker = worker
        self.supervisor = supervisor
        self.reportFD = reportFD
        self.relay = relay
        self.pid: int | None = None
        self._partial: dict[int, bytes] = {}

    def connectionMade(self) -> None:
        self.pid = self.relay.pid = self.transport.pid  # type: ignore[union-attr]

    def signal(self, number: int) -> None:
        if self.transport is None:
            return
        try:
            self.transport.signalProcess(number)
        except ProcessExitedAlready:
            pass

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        *lines, rest = (self._partial.pop(childFD, b"") + data).split(b"\n")
        if len(rest) > MAX_LINE:
            lines.append(rest)
            rest = b""
        if rest:
            self._partial[childFD] = rest
        for line in lines:
            self._line(childFD, line)

    def _line(self, childFD: int, line: bytes) -> None:
        if childFD == self.reportFD:
            self._report(line)
        elif childFD == 1:
            self.relay.record(line)
        elif line.strip():
            self.relay.text(line)

    def _report(self, line: bytes) -> None:
        try:
            message = json.loads(line)
            if not isinstance(message, dict):
                raise ValueError("not an object")
        except ValueError as e:
            self.log.warn(
                "worker {worker} sent a bad report: {error}", worker=self.worker.slot, error=e
            )
            return
        if "services" in message:
            self.supervisor.workerReported(self.worker, message["services"])
        if message.get("ready"):
            self.supervisor.workerReady(self.worker)

    def processEnded(self, reason: Failure) -> None:
        partial, self._partial = self._partial, {}
        for childFD, rest in partial.items():
            self._line(childFD, rest)
        self.supervisor.workerEnded(self.worker, exitStatus(reason))


@implementer(IWorkerSpawner)
class ProcessSpawner:
    """
    Starts workers as processes of C{reactor}.

    @param arguments: the netd command line (what follows C{netd}), given to each worker.
    @param plan: what the workers get now (asked at each start: a reload changes it).
    """

    def __init__(
        self,
        reactor: Any,
        arguments: Sequence[str],
        plan: Callable[[], WorkerPlan],
        environ: Mapping[str, str] = os.environ,
        executable: str = sys.executable,
        observer: ILogObserver = globalLogPublisher,
    ) -> None:
        self.reactor = reactor
        self.arguments = list(arguments)
        self.plan = plan
        self.environ = environ
        self.executable = executable
        self.observer = observer

    def spawn(self, worker: Worker, supervisor: Supervisor) -> IWorkerProcess:
        plan = self.plan()
        fds, spec = childDescriptors(plan, worker.slot)
        protocol = WorkerProtocol(
            worker, supervisor, spec.report, LogRelay(worker.slot, self.observer)
        )
        transport = self.reactor.spawnProcess(
            protocol,
            self.executable,
            [self.executable, "-m", MODULE, *self.arguments],
            env=childEnvironment(self.environ, spec, plan),
            childFDs=fds,
        )
        if spec.config is not None and plan.configText is not None:
            transport.writeToChild(spec.config, plan.configText.encode("utf-8"))
            transport.closeChildFD(spec.config)
        return protocol
