"""
The parent process of C{--workers N}: binds and holds every listener, runs the
supervisor, serves the admin interface, and reloads.

The parent is an ordinary L{Daemon} whose listeners are L{HeldListen}s: they bind at
startup (before twistd drops privileges) and on reload exactly as a single netd's do, so
every error is the same, but the parent never serves a connection.  A reload re-reads
and validates the file (a bad one keeps everything), binds new listeners, closes
dropped ones and keeps the rest open, then the supervisor replaces the workers with
ones that serve the new set.
"""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from functools import partial
from typing import Any

from prometheus_client.registry import Collector

from netd.config.file import ConfigFileError, parseConfig
from netd.config.model import DaemonConfig
from netd.config.options import CommandLineOptions
from netd.config.options import Options as _Options
from netd.listen.inherited import processListenFDs
from netd.registry import Registry
from netd.serving.daemon import Daemon
from netd.workers.metrics import WorkersCollector, WorkerTotals
from netd.workers.sockets import HeldListen
from netd.workers.spawner import ProcessSpawner, WorkerPlan
from netd.workers.supervisor import Supervisor

__all__ = [
    "ArgumentOptions",
    "ConfigSource",
    "SupervisingDaemon",
    "held",
    "supervise",
    "workerPlan",
]


class ArgumentOptions(CommandLineOptions):
    """
    The netd options, remembering the arguments they were parsed from: the workers are
    started with the very same ones.
    """

    arguments: list[str] | None = None

    def parseOptions(self, options: list[str] | None = None) -> None:
        self.arguments = list(sys.argv[1:] if options is None else options)
        super().parseOptions(options)


def held(config: DaemonConfig) -> DaemonConfig:
    """C{config} with every listener bound and held for the workers."""
    services = tuple(
        replace(
            service,
            listen=tuple(HeldListen(spec.description, spec.kind) for spec in service.listen),
        )
        for service in config.services
    )
    return replace(config, services=services)


class ConfigSource:
    """
    The config file, read once per load: the parent serves what it parsed, and its
    workers get the very text it parsed.

    @ivar text: the text of the last configuration that loaded.
    """

    def __init__(self, path: str, registry: Registry) -> None:
        self.path = path
        self.registry = registry
        self.text: str | None = None

    def load(self) -> DaemonConfig:
        """
        @raise ConfigFileError: as L{netd.config.file.loadConfig} does.
        """
        try:
            with open(self.path, "rb") as stream:
                data = stream.read()
        except OSError as e:
            raise ConfigFileError(self.path, f"cannot read: {e.strerror or e}") from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ConfigFileError(
                self.path, f"not UTF-8 text: {e.reason} at byte {e.start}"
            ) from None
        config = held(parseConfig(text, self.path, self.registry))
        self.text = text
        return config


class SupervisingDaemon(Daemon):
    """
    The parent's daemon: its problems include having no worker serving, so C{/healthz}
    and systemd's status tell.
    """

    supervisor: Supervisor | None = None

    def problems(self) -> list[str]:
        found = super().problems()
        if self.supervisor is not None:
            found.extend(self.supervisor.problems())
        return found


def workerPlan(daemon: Daemon, source: ConfigSource | None, reactor: str, count: int) -> WorkerPlan:
    """What a worker started now gets: every listener the parent holds now."""
    listeners = tuple(
        (str(runtime.name), description, listener.port.fileno())  # type: ignore[attr-defined]
        for runtime in daemon.runtimes()
        for description, listener in runtime.listeners.items()
        if listener.port is not None
    )
    inherited = tuple(processListenFDs().inheritedDescriptors())
    return WorkerPlan(
        count,
        reactor,
        listeners,
        inherited,
        os.environ.get("LISTEN_FDNAMES") if inherited else None,
        source.text if source is not None else None,
    )


def supervise(options: _Options, reactor: Any) -> tuple[Daemon, list[Collector]]:
    """
    The parent daemon for C{options} (C{workers} > 1), and the metrics collectors its
    admin interface adds.
    """
    arguments = getattr(options, "arguments", None)
    if arguments is None:
        raise SystemExit("netd: --workers needs the netd command line (twistd netd, or netd)")
    config = options.config
    source = ConfigSource(config.path, options.registry) if config.path else None
    try:
        start = source.load() if source is not None else held(config)
    except ConfigFileError as e:  # the file changed since the options were parsed
        raise SystemExit(f"netd: {e}") from None
    daemon = SupervisingDaemon(start, reactor, source.load if source is not None else None)
    count = config.settings.workers
    spawner = ProcessSpawner(
        reactor, arguments, partial(workerPlan, daemon, source, options.reactorName, count)
    )
    supervisor = Supervisor(
        spawner,
        reactor,
        count,
        lambda: daemon.config.settings.shutdownTimeout,
        WorkerTotals(daemon.runtimes),
    )
    daemon.supervisor = supervisor
    supervisor.setServiceParent(daemon)
    daemon.observers.append(supervisor)
    return daemon, [WorkersCollector(supervisor)]
