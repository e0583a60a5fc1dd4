"""
C{twistd netd}: the options, and L{makeService}, which only wires things together.

No socket is opened here: binding happens in C{privilegedStartService} (before twistd
drops privileges), everything else in C{startService}.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, TextIO

from twisted.application.service import IService, MultiService
from twisted.logger import Logger

from netd import __version__
from netd.errors import StartupError, reportStartupError
from netd.listener import Listener
from netd.model import ServiceConfig
from netd.options import CommandLineOptions, optionsFor
from netd.options import Options as _Options
from netd.plugin import ServiceContext
from netd.registry import DuplicateProtocol, Registry

__all__ = ["NetdService", "buildServices", "makeService"]  # and Options, built on first use


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
        return optionsFor(registry, base=CommandLineOptions)
    raise AttributeError(name)


class NetdService(MultiService):
    """
    The daemon: one child per configured service; logs the reactor at startup.

    @ivar stderr: where a startup failure is reported besides the log.
    """

    log = Logger()

    def __init__(self, reactor: Any, stderr: TextIO | None = sys.__stderr__) -> None:
        super().__init__()
        self.reactor = reactor
        self.stderr = stderr

    def privilegedStartService(self) -> None:
        try:
            super().privilegedStartService()
        except StartupError as e:
            reportStartupError(e, self.stderr)
            raise

    def startService(self) -> None:
        self.log.info(
            "netd {version} running on {reactor}",
            version=__version__,
            reactor=type(self.reactor).__name__,
        )
        super().startService()


def buildServices(
    configs: Sequence[ServiceConfig], reactor: Any, stderr: TextIO | None = sys.__stderr__
) -> NetdService:
    """Wire each service: its protocol's factories, one L{Listener} per endpoint."""
    root = NetdService(reactor, stderr)
    for config in configs:
        context = ServiceContext(config.name, config.settings, reactor)
        served = config.protocol.build(context)
        for spec in config.listen:
            target = served.stream if spec.kind == "stream" else served.datagram()  # type: ignore[misc]
            context.addService(Listener(config.name, spec, spec.endpoint(reactor), target))
        context.service.setName(config.name)
        context.service.setServiceParent(root)
    return root


def makeService(options: _Options, reactor: Any = None) -> IService:
    """The service for parsed C{options}; C{reactor} defaults to the installed one."""
    if reactor is None:
        from twisted.internet import reactor
    return buildServices(options.services, reactor)
