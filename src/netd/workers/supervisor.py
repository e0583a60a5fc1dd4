"""
The parent's side of C{--workers N}: keep N worker processes serving, whatever happens.

  - A worker that exits unexpectedly is restarted after a backoff that doubles with each
    quick failure (L{INITIAL_BACKOFF} up to L{MAX_BACKOFF}); one that ran
    L{STABLE_AFTER} seconds starts the count afresh, so a crash loop costs a process
    start every half-minute, not a spinning CPU.
  - A reload that was applied replaces the workers one slot at a time: the new worker
    of a slot starts with the new listener set, and the old one is asked to stop
    (SIGTERM, its graceful stop) only once the new one reports ready, so every listener
    that survives the reload keeps being served.
  - SIGUSR1 (reopen files) goes to every serving worker; SIGHUP is the parent's alone,
    since a worker cannot re-read what its parent did not.
  - Stopping sends SIGTERM to every worker and waits for them.  A worker asked to stop
    (at the stop, or replaced after a reload) that is still running after the shutdown
    timeout plus L{STOP_MARGIN} gets SIGKILL.

Processes are started by an L{IWorkerSpawner}, so all of this is tested with a fake one
and a L{twisted.internet.task.Clock}.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from zope.interface import Attribute, Interface

from netd.workers.metrics import WorkerTotals

if TYPE_CHECKING:
    from netd.serving.daemon import Daemon

__all__ = [
    "INITIAL_BACKOFF",
    "MAX_BACKOFF",
    "STABLE_AFTER",
    "STOP_MARGIN",
    "IWorkerProcess",
    "IWorkerSpawner",
    "Supervisor",
    "Worker",
]

#: Seconds before the first restart of a worker that failed quickly; doubled each time.
INITIAL_BACKOFF = 0.5
#: The longest wait before a restart.
MAX_BACKOFF = 30.0
#: A worker that ran this long before exiting is restarted after L{INITIAL_BACKOFF}.
STABLE_AFTER = 10.0
#: Seconds a stop waits for workers beyond the shutdown timeout (their abort grace and
#: the interpreter's exit) before it kills them.
STOP_MARGIN = 5.0
#: Seconds to wait for killed workers to be reaped.
KILL_WAIT = 2.0


class IWorkerProcess(Interface):
    """A started worker process."""

    pid = Attribute("The process id.")

    def signal(number: int) -> None:
        """Send the signal C{number}; nothing happens if the process is gone."""


class IWorkerSpawner(Interface):
    """Starts worker processes."""

    def spawn(worker: Worker, supervisor: Supervisor) -> IWorkerProcess:
        """
        Start the process for C{worker}.  It calls C{supervisor.workerReady(worker)}
        once it serves, C{workerReported(worker, services)} with its counters, and
        C{workerEnded(worker, status)} when it is gone.

        @raise OSError: if the process cannot be started.
        """


@dataclass(eq=False)
class Worker:
    """
    One worker process, as the supervisor keeps track of it.

    @ivar slot: 1 to N; a restarted or replaced worker takes the slot of the one before.
    @ivar leaving: it was asked to stop, so its exit is expected.
    """

    slot: int
    started: float
    process: IWorkerProcess | None = None
    ready: bool = False
    leaving: bool = False
    #: When a leaving worker is killed (or, once killed, forgotten).
    deadline: IDelayedCall | None = None

    @property
    def pid(self) -> int | None:
        return getattr(self.process, "pid", None)


class Supervisor(Service):
    """
    Runs C{count} workers through C{spawner}; a L{netd.serving.daemon.DaemonObserver} of the
    parent daemon, which tells it about reloads and the stop.

    @param shutdownTimeout: the shutdown timeout in force (it may change on reload).
    @param totals: where the workers' counters are summed.
    @ivar restarts: workers restarted after an unexpected exit.
    """

    log = Logger()

    def __init__(
        self,
        spawner: IWorkerSpawner,
        clock: IReactorTime,
        count: int,
        shutdownTimeout: Callable[[], float] = lambda: 5.0,
        totals: WorkerTotals | None = None,
    ) -> None:
        self.spawner = spawner
        self.clock = clock
        self.count = count
        self.shutdownTimeout = shutdownTimeout
        self.totals = totals or WorkerTotals(list)
        self.restarts = 0
        #: The newest worker of each slot.
        self.current: dict[int, Worker] = {}
        #: The worker a slot had before a reload, serving until its successor is ready.
        self.previous: dict[int, Worker] = {}
        #: Workers asked to stop, until they are gone.
        self.leaving: list[Worker] = []
        self._failures: dict[int, int] = {}
        self._restarting: dict[int, IDelayedCall] = {}
        self._stopping = False
        self._waiting: list[defer.Deferred[None]] = []
        self._reloadsBefore: int | None = None

    def serving(self) -> list[Worker]:
        """The workers that report ready and were not asked to stop."""
        return [w for w in [*self.current.values(), *self.previous.values()] if w.ready]

    def problems(self) -> list[str]:
        """What keeps the daemon from serving: no worker serving (while not stopping)."""
        if not self.running or self._stopping or self.serving():
            return []
        return [f"no worker is serving ({len(self.current)} of {self.count} starting)"]

    def startService(self) -> None:
        super().startService()
        for slot in range(1, self.count + 1):
            self._spawn(slot)

    def stopService(self) -> defer.Deferred[None]:
        """Stop every worker; fires once all are gone (or killed)."""
        super().stopService()
        self.stopWorkers()
        if not self.leaving:
            return defer.succeed(None)
        waiting: defer.Deferred[None] = defer.Deferred()
        self._waiting.append(waiting)
        return waiting

    # DaemonObserver: the parent's reloads and stop.

    def reloading(self, daemon: Daemon) -> None:
        self._reloadsBefore = daemon.reloads

    def ready(self, daemon: Daemon) -> None:
        """After an applied reload, replace the workers (a rejected one changes nothing)."""
        before, self._reloadsBefore = self._reloadsBefore, None
        if before is None or daemon.reloads <= before:
            return
        if daemon.config.settings.workers != self.count:
            self.log.warn(
                "workers changes take effect at the next start (running {count})",
                count=self.count,
            )
        self.replaceAll()

    def stopping(self, daemon: Daemon) -> None:
        """The parent's graceful stop begins: the workers begin theirs at once."""
        self.stopWorkers()

    def reopen(self) -> None:
        """The parent reopens its files (SIGHUP, SIGUSR1): so do the workers."""
        self.signalServing(signal.SIGUSR1)

    def signalServing(self, number: int) -> None:
        """
        Send C{number} to every serving worker.  Only to those: a worker still
        starting may not handle it yet, and SIGUSR1 would kill it.
        """
        for worker in self.serving():
            self._signal(worker, number)

    def replaceAll(self) -> None:
        """Start a new worker in every slot; each old one stops when its successor is ready."""
        if self._stopping or not self.running:
            return
        self.log.info("replacing {count} workers with the new configuration", count=self.count)
        for slot in range(1, self.count + 1):
            pending = self._restarting.pop(slot, None)
            if pending is not None:
                pending.cancel()
            old = self.current.pop(slot, None)
            if old is not None and old.ready:
                stale = self.previous.pop(slot, None)
                if stale is not None:
                    self._retire(stale)
                self.previous[slot] = old
            elif old is not None:
                self._retire(old)
            self._spawn(slot)

    def stopWorkers(self) -> None:
        """SIGTERM to every worker, and a deadline after which the rest are killed."""
        if self._stopping:
            return
        self._stopping = True
        for pending in self._restarting.values():
            pending.cancel()
        self._restarting.clear()
        workers = [*self.current.values(), *self.previous.values()]
        self.current.clear()
        self.previous.clear()
        if self.leaving or workers:
            self.log.info(
                "stopping {count} workers (at most {timeout:g}s)",
                count=len(self.leaving) + len(workers),
                timeout=self.shutdownTimeout() + STOP_MARGIN,
            )
        for worker in workers:
            self._retire(worker)

    # Reported by the worker processes.

    def workerReady(self, worker: Worker) -> None:
        """C{worker} serves: the worker it replaces in its slot, if any, may stop."""
        if worker.ready:
            return
        worker.ready = True
        self.log.info("worker {worker} ready (pid {pid})", worker=worker.slot, pid=worker.pid)
        if self.current.get(worker.slot) is worker:
            old = self.previous.pop(worker.slot, None)
            if old is not None:
                self._retire(old)

    def workerReported(self, worker: Worker, services: Any) -> None:
        """C{worker}'s counters, per service."""
        self.totals.report(worker, services)

    def workerEnded(self, worker: Worker, status: str) -> None:
        """C{worker}'s process is gone; C{status} says how it ended."""
        self.totals.retire(worker)
        if worker.deadline is not None and worker.deadline.active():
            worker.deadline.cancel()
        worker.deadline = None
        slot = worker.slot
        if worker in self.leaving:
            self.leaving.remove(worker)
            self.log.info(
                "worker {worker} (pid {pid}) stopped: {status}",
                worker=slot,
                pid=worker.pid,
                status=status,
            )
        elif self.previous.get(slot) is worker:
            del self.previous[slot]
            self.log.warn(
                "worker {worker} (pid {pid}) exited while its successor starts: {status}",
                worker=slot,
                pid=worker.pid,
                status=status,
            )
        elif self.current.get(slot) is worker:
            del self.current[slot]
            self._restartLater(worker, status)
        self._checkGone()

    # Inside.

    def _spawn(self, slot: int) -> None:
        worker = Worker(slot, self.clock.seconds())
        self.current[slot] = worker
        try:
            worker.process = self.spawner.spawn(worker, self)
        except Exception as e:  # whatever stops a start, the slot is retried later
            del self.current[slot]
            self._restartLater(worker, f"could not start: {e}")
            return
        self.log.info("worker {worker} started (pid {pid})", worker=slot, pid=worker.pid)

    def _quickly(self, worker: Worker) -> bool:
        return self.clock.seconds() - worker.started < STABLE_AFTER

    def _restartLater(self, worker: Worker, status: str) -> None:
        slot = worker.slot
        failures = self._failures.get(slot, 0) if self._quickly(worker) else 0
        delay = min(MAX_BACKOFF, INITIAL_BACKOFF * 2**failures)
        self._failures[slot] = failures + 1
        self.log.warn(
            "worker {worker} (pid {pid}) exited unexpectedly: {status}; restarting in {delay:g}s",
            worker=slot,
            pid=worker.pid,
            status=status,
            delay=delay,
        )
        self._restarting[slot] = self.clock.callLater(delay, self._restart, slot)

    def _restart(self, slot: int) -> None:
        del self._restarting[slot]
        if self._stopping or not self.running:
            return
        self.restarts += 1
        self._spawn(slot)

    def _retire(self, worker: Worker) -> None:
        worker.leaving = True
        self.leaving.append(worker)
        self._signal(worker, signal.SIGTERM)
        timeout = self.shutdownTimeout() + STOP_MARGIN
        worker.deadline = self.clock.callLater(timeout, self._kill, worker, timeout)

    def _signal(self, worker: Worker, number: int) -> None:
        if worker.process is not None:
            worker.process.signal(number)

    def _kill(self, worker: Worker, timeout: float) -> None:
        self.log.warn(
            "worker {worker} (pid {pid}) still running {timeout:g}s after SIGTERM: killing it",
            worker=worker.slot,
            pid=worker.pid,
            timeout=timeout,
        )
        self._signal(worker, signal.SIGKILL)
        worker.deadline = self.clock.callLater(KILL_WAIT, self._forget, worker)

    def _forget(self, worker: Worker) -> None:
        worker.deadline = None
        self.log.error(
            "worker {worker} (pid {pid}) not reaped after SIGKILL",
            worker=worker.slot,
            pid=worker.pid,
        )
        if worker in self.leaving:
            self.leaving.remove(worker)
        self._checkGone()

    def _checkGone(self) -> None:
        if not self._stopping or self.leaving:
            return
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.callback(None)
