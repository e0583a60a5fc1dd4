"""
netd's command line, shared by C{twistd netd} and the C{netd} script.

Every mistake is a L{usage.UsageError} naming the bad value and, where there is a
choice, the valid ones.  The parsing ends by installing the reactor (twistd has not
imported one yet when a plugin's options are parsed), so the choice is in place before
anything else needs it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, ClassVar

from twisted.python import usage

from netd import __version__
from netd.endpoint import BadListen, parseListen
from netd.model import ConfigError, ServiceConfig, checkListeners, defaultListen, resolveSettings
from netd.reactor import REACTORS, ReactorConflict, ReactorUnavailable, ensureReactor
from netd.registry import Registry, UnknownProtocol

__all__ = ["CommandLineOptions", "Options", "optionsFor", "protocolList"]


def protocolList(registry: Registry) -> str:
    """One line per protocol: name, transports, default port, description."""
    width = max((len(p.name) for p in registry), default=0)
    lines = []
    for protocol in registry:
        over = "TCP+UDP" if len(protocol.transports) == 2 else "TCP    "
        lines.append(
            f"{protocol.name:<{width}}  {over}  :{protocol.defaultPort:<5}  {protocol.description}"
        )
    return "\n".join(lines) + "\n"


class Options(usage.Options):
    """
    The common options; L{optionsFor} adds each installed protocol's own.

    @ivar services: after parsing, the L{ServiceConfig}s to serve.
    @ivar reactorName: after parsing, the reactor in use.
    """

    synopsis = "--proto NAME [--listen ENDPOINT ...] [options]"
    optParameters: ClassVar[list[Any]] = [
        ["proto", "p", None, "the protocol to serve (see --list)"],
        [
            "reactor",
            None,
            None,
            f"the reactor: {', '.join(REACTORS)} (default: best for the platform)",
        ],
    ]
    optFlags: ClassVar[list[Any]] = [["list", None, "list the installed protocols and exit"]]

    registry: ClassVar[Registry]
    installReactor: ClassVar[Callable[[str | None], str]]
    protocolOptions: ClassVar[frozenset[str]] = frozenset()

    def __init__(self) -> None:
        super().__init__()
        self["listen"] = []
        self.services: list[ServiceConfig] = []
        self.reactorName = ""

    def getUsage(self, width: int | None = None) -> str:
        """The usual help, then every installed protocol, one per line."""
        return f"{super().getUsage(width)}\nProtocols:\n{protocolList(self.registry)}"

    def opt_listen(self, description: str) -> None:
        """
        where to listen (repeatable): a Twisted server endpoint (tcp:, tcp6:, unix:, ssl:,
        systemd:, haproxy:) or udp:PORT[:interface=ADDR]; default: tcp:PORT on 127.0.0.1
        """
        try:
            self["listen"].append(parseListen(description))
        except BadListen as e:
            raise usage.UsageError(str(e)) from None

    def opt_version(self) -> None:
        """print the netd version and exit"""
        sys.stdout.write(f"netd {__version__}\n")
        sys.exit(0)

    def opt_list(self) -> None:
        """list the installed protocols and exit"""
        sys.stdout.write(protocolList(self.registry))
        sys.exit(0)

    def postOptions(self) -> None:
        self.services = [self._service()]
        reactor = self["reactor"]
        if reactor is not None and reactor not in REACTORS:
            raise usage.UsageError(
                f"unknown reactor {reactor!r}; choose one of: {', '.join(REACTORS)}"
            )
        try:
            self.reactorName = self.installReactor(reactor)
        except (ReactorUnavailable, ReactorConflict) as e:
            raise usage.UsageError(str(e)) from None

    def _service(self) -> ServiceConfig:
        if self["proto"] is None:
            raise usage.UsageError(
                f"--proto is required; choose one of: {', '.join(self.registry.names())}"
            )
        try:
            protocol = self.registry.lookup(self["proto"])
            given = {k: self[k] for k in self.protocolOptions if self[k] is not None}
            settings = resolveSettings(protocol, given)
            listen = tuple(self["listen"]) or defaultListen(protocol)
            checkListeners(protocol, listen)
        except (UnknownProtocol, ConfigError) as e:
            raise _usageError(e) from None
        return ServiceConfig(protocol.name, protocol, listen, settings)


def _usageError(error: UnknownProtocol | ConfigError) -> usage.UsageError:
    """On the command line, a setting is an option: C{--max-line-length: ...}."""
    if isinstance(error, ConfigError) and error.key is not None:
        return usage.UsageError(f"--{error.key}: {error.problem}")
    return usage.UsageError(str(error))


class CommandLineOptions(Options):
    """
    L{Options} for a person at a shell: a mistake is one line on stderr and exit status
    1, instead of twistd's habit of printing the whole usage text to stdout first.
    """

    def parseOptions(self, options: list[str] | None = None) -> None:
        try:
            super().parseOptions(options)
        except usage.UsageError as e:
            raise SystemExit(f"netd: {e} (see --help)") from None


def optionsFor(
    registry: Registry,
    installReactor: Callable[[str | None], str] = ensureReactor,
    base: type[Options] = Options,
) -> type[Options]:
    """
    The L{Options} class for C{registry}: the common options plus each protocol's own
    (C{--message}, C{--max-line-length}...), which only exist once plugins are found.
    """
    byName: dict[str, list[str]] = {}
    helps: dict[str, str] = {}
    for protocol in registry:
        for option in protocol.options:
            byName.setdefault(option.name, []).append(protocol.name)
            default = "" if option.default is None else f"; default: {option.default!r}"
            helps.setdefault(option.name, f"{option.help}{default}")
    params = [
        [name, None, None, f"[{', '.join(owners)}] {helps[name]}"]
        for name, owners in byName.items()
    ]
    return type(
        "Options",
        (base,),
        {
            "optParameters": params,
            "registry": registry,
            "installReactor": staticmethod(installReactor),
            "protocolOptions": frozenset(byName),
        },
    )
