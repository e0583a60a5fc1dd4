"""
A worker process: one netd serving the listeners its parent holds.

It parses the parent's own netd arguments (the config file's text comes from the
parent, as the parent parsed it, so an edit not yet signalled with SIGHUP never
reaches a restarted worker alone), serves every listener on the descriptor it
inherited, logs JSON lines on stdout for the parent to relay, and reports to its parent:
C{ready} once it serves, then its counters whenever they change.

Limits are enforced per worker; those that bound what netd reflects over UDP are
divided between the workers (L{shareDatagrams}), so N workers together answer no more
than one netd would: a source's C{udp-rate} and C{udp-burst}, and C{udp-reply-budget}.
TCP limits (C{max-connections}, C{max-per-source}, C{rate}/C{burst}) apply to each
worker's own connections.

A worker stops gracefully on SIGTERM (its parent's), and when its parent dies: its
standard input is a pipe from the parent, whose end it watches.
"""

from __future__ import annotations

import errno
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from twisted.application.service import Service
from twisted.internet import fdesc
from twisted.internet.error import ReactorNotRunning
from twisted.internet.interfaces import IReactorTime, IReadDescriptor
from twisted.internet.task import LoopingCall
from twisted.logger import Logger, globalLogBeginner
from zope.interface import implementer

from netd.admin.collector import liveBytes
from netd.admission.policy import Policy
from netd.config.model import DaemonConfig, ServiceConfig
from netd.config.options import CommandLineOptions, optionsFor
from netd.logs.format import jsonFileLogObserver
from netd.serving.daemon import Daemon
from netd.workers.sockets import AdoptedListen
from netd.workers.spec import WORKER_VARIABLE, WorkerSpec

__all__ = [
    "REPORT_INTERVAL",
    "ParentWatch",
    "ReportWriter",
    "WorkerDaemon",
    "WorkerReport",
    "main",
    "shareDatagrams",
    "workerConfig",
    "workerDaemon",
]

#: How often a worker looks whether its counters changed, and reports them if so.
REPORT_INTERVAL = 0.5


def shareDatagrams(policy: Policy, count: int) -> Policy:
    """One worker's share of a service's per-source UDP limits (a burst is at least 1)."""
    return replace(
        policy, udpRate=policy.udpRate / count, udpBurst=max(1, policy.udpBurst // count)
    )


def workerConfig(config: DaemonConfig, spec: WorkerSpec) -> DaemonConfig:
    """
    C{config} as worker C{spec} serves it: every listener on its inherited descriptor
    (one the parent does not hold, because it failed to bind, is left out), the UDP
    limits shared, and no admin listener (the parent serves it).
    """
    fds = {(service, description): fd for service, description, fd in spec.listeners}
    services = tuple(_adopted(service, fds, spec.count) for service in config.services)
    settings = replace(
        config.settings, udpReplyBudget=config.settings.udpReplyBudget / spec.count, admin=None
    )
    return replace(config, services=services, settings=settings)


def _adopted(
    service: ServiceConfig, fds: Mapping[tuple[str, str], int], count: int
) -> ServiceConfig:
    listen = tuple(
        AdoptedListen(spec.description, spec.kind, fds[(service.name, spec.description)])
        for spec in service.listen
        if (service.name, spec.description) in fds
    )
    return replace(service, listen=listen, policy=shareDatagrams(service.policy, count))


class WorkerDaemon(Daemon):
    """A worker's daemon: on SIGHUP it only reopens its files; its parent reloads."""

    def reload(self) -> bool:
        self.log.info(
            "SIGHUP: a worker does not reload; its parent (pid {pid}) does, and replaces it",
            pid=os.getppid(),
        )
        return False


class ReportWriter:
    """
    JSON lines to the parent on descriptor C{fd}, without ever blocking the reactor:
    what the pipe does not take now is sent with the next report.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.pending = b""
        fdesc.setNonBlocking(fd)

    def send(self, message: Mapping[str, Any]) -> None:
        self.pending += json.dumps(message, separators=(",", ":")).encode("ascii") + b"\n"
        self.flush()

    def flush(self) -> None:
        while self.pending:
            try:
                written = os.write(self.fd, self.pending)
            except BlockingIOError:
                return
            except OSError as e:  # the parent is gone: nobody to report to
                if e.errno != errno.EINTR:
                    self.pending = b""
                continue
            self.pending = self.pending[written:]

    def close(self) -> None:
        """Send what is left, waiting for the parent if need be, and close."""
        fdesc.setBlocking(self.fd)
        self.flush()
        os.close(self.fd)


class WorkerReport(Service):
    """
    Tells the parent this worker is ready, then its counters whenever they change, and
    a last time once its connections are done (it stops after its daemon's drain).
    """

    def __init__(self, daemon: Daemon, writer: ReportWriter, clock: IReactorTime) -> None:
        self.daemon = daemon
        self.writer = writer
        self.clock = clock
        self._last: dict[str, Any] | None = None
        self._loop: LoopingCall | None = None

    def counters(self) -> dict[str, Any]:
        """Each service's counters, bytes of open connections included."""
        services: dict[str, Any] = {}
        for runtime in self.daemon.runtimes():
            snapshot = runtime.guard.stats.snapshot()
            received, sent = liveBytes(runtime)
            snapshot["bytesIn"] = int(snapshot["bytesIn"]) + received  # type: ignore[call-overload]
            snapshot["bytesOut"] = int(snapshot["bytesOut"]) + sent  # type: ignore[call-overload]
            services[str(runtime.name)] = snapshot
        return services

    def startService(self) -> None:
        super().startService()
        self._send(ready=True)
        self._loop = LoopingCall(self._changed)
        self._loop.clock = self.clock
        self._loop.start(REPORT_INTERVAL, now=False)

    def _changed(self) -> None:
        if self.counters() != self._last:
            self._send()

    def _send(self, **extra: Any) -> None:
        self._last = self.counters()
        self.writer.send({**extra, "services": self._last})

    def stopService(self) -> None:
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._send()
        self.writer.close()


@implementer(IReadDescriptor)
class ParentWatch(Service):
    """
    Stops the worker when its parent is gone: the parent holds the other end of the
    pipe on descriptor C{fd}, and the kernel closes it whatever way the parent dies.
    """

    log = Logger()

    def __init__(self, reactor: Any, fd: int = 0) -> None:
        self.reactor = reactor
        self.fd = fd

    def fileno(self) -> int:
        return self.fd

    def logPrefix(self) -> str:
        return "netd-worker"

    def startService(self) -> None:
        super().startService()
        fdesc.setNonBlocking(self.fd)
        self.reactor.addReader(self)

    def stopService(self) -> None:
        super().stopService()
        self.reactor.removeReader(self)

    def doRead(self) -> None:
        try:
            data = os.read(self.fd, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.connectionLost(None)

    def connectionLost(self, reason: Any) -> None:
        self.reactor.removeReader(self)
        self.log.warn("the parent process is gone: stopping")
        try:
            self.reactor.stop()
        except ReactorNotRunning:  # already stopping
            pass


def workerDaemon(config: DaemonConfig, spec: WorkerSpec, reactor: Any) -> Daemon:
    """The service tree of worker C{spec}: its daemon, its reports, its parent's watch."""
    daemon = WorkerDaemon(workerConfig(config, spec), reactor)
    WorkerReport(daemon, ReportWriter(spec.report), reactor).setServiceParent(daemon)
    ParentWatch(reactor).setServiceParent(daemon)
    return daemon


def _workerOptions(spec: WorkerSpec) -> type[CommandLineOptions]:
    """The netd options, reading a config file's text from the parent's pipe."""

    class WorkerOptions(CommandLineOptions):
        def postOptions(self) -> None:
            path = self["config"]
            if path and spec.config is not None:
                self["config"] = f"/dev/fd/{spec.config}"
            super().postOptions()
            if path:
                self.config = replace(self.config, path=path)

    return WorkerOptions


def main(argv: list[str] | None = None, environ: Mapping[str, str] = os.environ) -> None:
    """Run a worker: C{python -m netd.workers ARGS}, started by its parent."""
    spec = WorkerSpec.fromJSON(environ[WORKER_VARIABLE])
    globalLogBeginner.beginLoggingTo([jsonFileLogObserver(sys.stdout)], redirectStandardIO=True)
    from netd.reactor import ensureReactor
    from netd.registry import Registry

    ensureReactor(spec.reactor or None)
    options = optionsFor(Registry.discover(), base=_workerOptions(spec))()
    options.parseOptions(sys.argv[1:] if argv is None else argv)
    if spec.config is not None:
        os.close(spec.config)
    from twisted.internet import reactor

    daemon = workerDaemon(options.config, spec, reactor)
    daemon.privilegedStartService()
    # Started once the reactor runs, so its SIGTERM handler is in place before the
    # worker reports ready: a stop that follows must be graceful, never fatal.
    reactor.callWhenRunning(daemon.startService)
    reactor.addSystemEventTrigger("before", "shutdown", daemon.stopService)
    reactor.run()
