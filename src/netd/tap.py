"""
C{twistd netd}: the options, and L{makeService}, which only wires things together.

No socket is opened here: binding happens in C{privilegedStartService} (before twistd
drops privileges), everything else in C{startService}.
"""

from __future__ import annotations

import os
from functools import partial
from typing import Any

from twisted.application.service import IService

from netd.config.file import loadConfig
from netd.config.options import Options as _Options
from netd.config.options import optionsFor
from netd.registry import DuplicateProtocol, Registry
from netd.serving.daemon import Daemon

__all__ = ["makeService"]  # and Options, built on first use


def __getattr__(name: str) -> Any:
    """
    C{netd.tap.Options}, read by twistd's L{ServiceMaker}: built on first use, because
    its protocol options exist only once the protocol plugins have been found.
    """
    if name == "Options":
        try:
            registry = Registry.discover()
        except DuplicateProtocol as e:
            raise SystemExit(f"netd: {e}") from None
        from netd.workers.parent import ArgumentOptions

        return optionsFor(registry, base=ArgumentOptions)
    raise AttributeError(name)


def makeService(options: _Options, reactor: Any = None) -> IService:
    """
    The daemon for parsed C{options}; C{reactor} defaults to the installed one.  A
    configuration from a file is re-read from that file on SIGHUP.  With C{workers}
    above 1, this process holds the listeners and supervises the worker processes
    serving them (L{netd.workers}).
    """
    if reactor is None:
        from twisted.internet import reactor
    config = options.config
    collectors: list[Any] = []
    if config.settings.workers > 1:
        from netd.workers.parent import supervise

        daemon, collectors = supervise(options, reactor)
    else:
        load = partial(loadConfig, config.path, options.registry) if config.path else None
        daemon = Daemon(config, reactor, load)
    if config.settings.admin:
        from netd.admin import AdminService

        admin = AdminService(daemon, config.settings.admin, reactor)
        for collector in collectors:
            admin.registry.register(collector)
        admin.setServiceParent(daemon)
    if os.environ.get("NOTIFY_SOCKET"):
        from netd.serving.systemd import Notifier

        Notifier.fromEnvironment(os.environ, reactor).attach(daemon)
    return daemon
