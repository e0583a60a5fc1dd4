"""
The running daemon: its services, reload on SIGHUP, and the graceful stop on SIGTERM.

Each configured service is a L{ServiceRuntime}: its protocol (built once per set of
settings), its L{ServiceGuard}, and one L{Listener} per endpoint.  A reload computes the
new configuration completely (a bad file changes nothing), then updates each service in
place: a listener whose description is unchanged keeps its socket, so its established
connections never notice; new listeners are bound, dropped ones stop accepting while
their connections run on.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from typing import Any, Protocol, TextIO

from twisted.application.service import MultiService, Service
from twisted.internet import defer
from twisted.logger import Logger

from netd import __version__
from netd.admission.datagram import GuardedDatagram, SharedLimits
from netd.admission.guard import GuardedFactory, ServiceGuard
from netd.config.model import DaemonConfig, ServiceConfig
from netd.errors import StartupError, reportStartupError
from netd.interfaces import DATAGRAM
from netd.listen.endpoint import ListenSpec
from netd.plugin import Served, ServiceContext
from netd.serving.listener import Listener

__all__ = ["Daemon", "DaemonObserver", "ServiceRuntime"]

#: How long aborted connections get to report their end.
ABORT_GRACE = 1.0


class DaemonObserver(Protocol):
    """
    Told about the daemon's life (the systemd notifier is one): each call comes from
    the reactor thread, after the fact it names.
    """

    def ready(self, daemon: Daemon) -> None:
        """Every listener is bound and serving (at startup, and after each reload)."""

    def reloading(self, daemon: Daemon) -> None:
        """A reload starts."""

    def stopping(self, daemon: Daemon) -> None:
        """The graceful stop starts."""


class ServiceRuntime(MultiService):
    """
    One service, updated in place on reload.

    @ivar guard: admission, limits and live connections, kept across reloads.
    @ivar tolerant: log a listener that cannot bind and go on without it (services
        added by a reload) instead of failing the daemon's startup.
    """

    log = Logger()

    def __init__(
        self, config: ServiceConfig, reactor: Any, shared: SharedLimits, tolerant: bool = False
    ) -> None:
        super().__init__()
        self.setName(config.name)
        self.reactor = reactor
        self.shared = shared
        self.config = config
        self.tolerant = tolerant
        self.guard = ServiceGuard(config.name, config.policy, reactor)
        #: listeners that failed to bind on a reload: description -> why (for health)
        self.failed: dict[str, str] = {}
        self.served = self._build(config)
        self.listeners: dict[str, Listener] = {}
        for spec in config.listen:
            self._newListener(spec).setServiceParent(self)

    def _build(self, config: ServiceConfig) -> Served:
        """Build the protocol; its context's services (an output file) run under this one."""
        context = ServiceContext(config.name, config.settings, self.reactor)
        served = config.protocol.build(context)
        # Added, never removed on reload: connections opened before a reload may still
        # write through an old context; it stops with the service, after them.
        context.service.setServiceParent(self)
        return served

    def _newListener(self, spec: ListenSpec) -> Listener:
        target: Any
        if spec.kind == DATAGRAM:
            assert self.served.datagram is not None
            target = GuardedDatagram(
                self.config.name,
                self.served.datagram(),
                self.config.policy,
                self.reactor,
                self.guard.stats,
                self.shared,
            )
        else:
            assert self.served.stream is not None
            wrapped = spec.description.removeprefix("haproxy:").startswith("ssl:")
            target = GuardedFactory(
                self.guard, self.served.stream, proxied=spec.proxied, wrapped=wrapped
            )
        # The guard's policy is the one in force: a reload that changes tls-client-ca
        # reaches the next handshake of an ssl: listener that keeps its socket.
        endpoint = spec.endpoint(self.reactor, clientCA=lambda: self.guard.policy.tlsClientCA)
        listener = Listener(self.config.name, spec, endpoint, target)
        self.listeners[spec.description] = listener
        return listener

    def privilegedStartService(self) -> None:
        for child in list(self):
            try:
                child.privilegedStartService()
            except StartupError as e:
                if not self.tolerant or not isinstance(child, Listener):
                    raise
                self.log.error("{message}", message=e.message)
                self.failed[child.spec.description] = e.message
                self._dropListener(child)

    def startService(self) -> None:
        Service.startService(self)
        for child in list(self):
            child.startService()
        self.guard.startSweeping()

    def stopAccepting(self) -> defer.Deferred[Any]:
        """Stop every listener; open connections go on."""
        return defer.gatherResults(
            [defer.maybeDeferred(lst.stopService) for lst in self.listeners.values()]
        )

    def stopService(self) -> defer.Deferred[Any]:
        self.guard.stopSweeping()
        return defer.maybeDeferred(super().stopService)

    def update(self, config: ServiceConfig) -> None:
        """
        Apply C{config}: the policy to new connections, new protocol settings to new
        connections (open ones keep the protocol they started with), and the listener
        set by difference.  A listener that cannot bind is logged and left out.
        """
        old, self.config = self.config, config
        self.guard.update(config.policy)
        rebuilt = (old.protocol, dict(old.settings)) != (config.protocol, dict(config.settings))
        if rebuilt:
            self.served = self._build(config)
        wanted = {spec.description: spec for spec in config.listen}
        self.failed = {d: why for d, why in self.failed.items() if d in wanted}
        for description, listener in list(self.listeners.items()):
            if description not in wanted:
                self._dropListener(listener)
            else:
                self._retarget(listener, rebuilt)
        for description, spec in wanted.items():
            if description not in self.listeners:
                self._bindNew(spec)

    def _retarget(self, listener: Listener, rebuilt: bool) -> None:
        target = listener.target
        if isinstance(target, GuardedFactory):
            target.wrappedFactory = self.served.stream
        elif isinstance(target, GuardedDatagram):
            assert self.served.datagram is not None
            target.update(self.config.policy, self.served.datagram() if rebuilt else None)

    def _bindNew(self, spec: ListenSpec) -> None:
        listener = self._newListener(spec)
        try:
            listener.privilegedStartService()
        except StartupError as e:
            self.log.error("reload: {message}", message=e.message)
            del self.listeners[spec.description]
            self.failed[spec.description] = e.message
            return
        self.failed.pop(spec.description, None)
        listener.setServiceParent(self)

    def _dropListener(self, listener: Listener) -> None:
        self.listeners.pop(listener.spec.description, None)
        if listener.parent is not None:
            listener.disownServiceParent()


class Daemon(MultiService):
    """
    Every configured service, plus reload and graceful stop.

    @param load: re-reads the configuration for a reload (C{None}: nothing to reload,
        as with a command-line configuration).
    @param stderr: where a startup failure is reported besides the log.
    """

    log = Logger()

    def __init__(
        self,
        config: DaemonConfig,
        reactor: Any,
        load: Callable[[], DaemonConfig] | None = None,
        stderr: TextIO | None = sys.__stderr__,
    ) -> None:
        super().__init__()
        self.reactor = reactor
        self.config = config
        self.load = load
        self.stderr = stderr
        self.shared = SharedLimits(reactor, config.settings.udpReplyBudget)
        self.reloads = 0
        self.reloadFailures = 0
        self.observers: list[DaemonObserver] = []
        self.draining: list[ServiceRuntime] = []
        self._previousHup: Any = None
        self._previousUsr1: Any = None
        for service in config.services:
            ServiceRuntime(service, reactor, self.shared).setServiceParent(self)

    def runtimes(self) -> list[ServiceRuntime]:
        """The configured services (not those draining after removal)."""
        return [s for s in self if isinstance(s, ServiceRuntime) and s not in self.draining]

    def privilegedStartService(self) -> None:
        try:
            super().privilegedStartService()
        except StartupError as e:
            reportStartupError(e, self.stderr)
            raise
        self._notePorts()

    def startService(self) -> None:
        # Handlers first: a SIGHUP that follows the "running" line must reload, not kill.
        if hasattr(signal, "SIGHUP"):
            self._previousHup = signal.signal(signal.SIGHUP, self._onHangup)
            self._previousUsr1 = signal.signal(signal.SIGUSR1, self._onUser1)
        super().startService()
        self.log.info(
            "netd {version} running on {reactor}",
            version=__version__,
            reactor=type(self.reactor).__name__,
        )
        self._tell("ready")

    def _tell(self, event: str) -> None:
        for observer in list(self.observers):
            getattr(observer, event)(self)

    def problems(self) -> list[str]:
        """
        What keeps the daemon from being healthy: listeners not bound (or that failed to
        bind on a reload).  Empty when every configured listener is up.
        """
        found = []
        for runtime in self.runtimes():
            for description, listener in runtime.listeners.items():
                if listener.port is None:
                    found.append(f"{runtime.name}: {description} is not listening")
            found.extend(runtime.failed.values())
        return found

    def _onHangup(self, signum: int, frame: Any) -> None:
        """SIGHUP: re-read the configuration, and reopen output files (for logrotate)."""
        self.reactor.callFromThread(self.reload)
        self.reactor.callFromThread(self.reopen)

    def _onUser1(self, signum: int, frame: Any) -> None:
        """SIGUSR1: twistd rotates its log (its handler still runs); netd reopens its files."""
        if callable(self._previousUsr1):
            self._previousUsr1(signum, frame)
        self.reactor.callFromThread(self.reopen)

    def reopen(self) -> None:
        """
        Reopen every output file of every service (anything in the service tree with a
        C{reopen()} method), so a file logrotate moved away is recreated.
        """
        for service in _walk(self):
            reopen = getattr(service, "reopen", None)
            if reopen is not None and service is not self:
                reopen()

    def _notePorts(self) -> None:
        """Record this daemon's bound UDP ports, which datagram services never answer."""
        ports = set()
        for runtime in self.runtimes():
            for listener in runtime.listeners.values():
                if listener.spec.kind == DATAGRAM and listener.port is not None:
                    ports.add(listener.port.getHost().port)
        self.shared.servicePorts.clear()
        self.shared.servicePorts.update(ports)

    def reload(self) -> bool:
        """
        Re-read the configuration and apply it; on any error keep the running one.

        @return: whether the new configuration was applied.
        """
        if self.load is None:
            self.log.info("SIGHUP: netd runs from the command line, no configuration to re-read")
            return False
        self._tell("reloading")
        try:
            config = self.load()
        except Exception as e:  # any failure must leave the running configuration alone
            self.log.error("reload rejected, the running configuration stays: {error}", error=e)
            self.reloadFailures += 1
            self._tell("ready")
            return False
        self.apply(config)
        self.reloads += 1
        self._tell("ready")
        self.log.info(
            "reloaded {path}: serving {services}",
            path=config.path,
            services=", ".join(s.name for s in config.services),
        )
        return True

    def apply(self, config: DaemonConfig) -> None:
        """Move from the running configuration to C{config}, service by service."""
        if config.settings.logFormat != self.config.settings.logFormat:
            self.log.warn("log-format changes take effect at the next start")
        self.config = config
        self.shared.setBudget(config.settings.udpReplyBudget)
        current = {runtime.name: runtime for runtime in self.runtimes()}
        wanted = {service.name: service for service in config.services}
        for name, runtime in current.items():
            if name not in wanted:
                self._retire(runtime)
        for name, service in wanted.items():
            if name in current:
                current[name].update(service)
            else:
                ServiceRuntime(service, self.reactor, self.shared, tolerant=True).setServiceParent(
                    self
                )
        self._notePorts()

    def _retire(self, runtime: ServiceRuntime) -> None:
        """A removed service stops accepting now and stops for good once its connections end."""
        runtime.stopAccepting()
        self.draining.append(runtime)
        runtime.guard.whenIdle().addCallback(lambda _: self._reap(runtime))

    def _reap(self, runtime: ServiceRuntime) -> None:
        """C{runtime}, retired, has no connection left: remove it (unless the daemon stopped)."""
        if runtime in self.draining:
            self.draining.remove(runtime)
            if runtime.parent is self and self.running:
                self.removeService(runtime)

    def stopService(self) -> defer.Deferred[None]:
        """
        The graceful stop: stop accepting, give open connections up to the shutdown
        timeout, abort the rest, then stop every service (flushing the loggers).
        """
        if self._previousHup is not None:
            signal.signal(signal.SIGHUP, self._previousHup)
            signal.signal(signal.SIGUSR1, self._previousUsr1)
            self._previousHup = self._previousUsr1 = None
        self._tell("stopping")
        return defer.ensureDeferred(self._stop())

    async def _stop(self) -> None:
        runtimes = [s for s in self if isinstance(s, ServiceRuntime)]
        await defer.gatherResults([runtime.stopAccepting() for runtime in runtimes])
        still = sum(len(r.guard.connections) for r in runtimes)
        if still:
            timeout = self.config.settings.shutdownTimeout
            self.log.info(
                "stopping: waiting up to {timeout}s for {count} open connections",
                timeout=timeout,
                count=still,
            )
            await self._drain(runtimes, timeout)
            for runtime in runtimes:
                runtime.guard.abortAll()
            # An abort completes on the next reactor turn: let each log its end.
            await self._drain(runtimes, ABORT_GRACE)
        await defer.maybeDeferred(super().stopService)

    async def _drain(self, runtimes: list[ServiceRuntime], timeout: float) -> None:
        """
        Wait until C{runtimes} hold no connection (the event each guard fires when its
        last connection ends), or C{timeout} seconds, whichever comes first.
        """
        idle = defer.DeferredList([r.guard.whenIdle() for r in runtimes], consumeErrors=True)
        # On timeout the list is cancelled, which cancels each wait: it then fires normally.
        await idle.addTimeout(timeout, self.reactor)


def _walk(service: Any) -> list[Any]:
    """C{service} and every service below it."""
    found = [service]
    for child in getattr(service, "services", ()):
        found.extend(_walk(child))
    return found

