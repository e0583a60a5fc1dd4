"""
netd's command line, shared by C{twistd netd} and the C{netd} script.

Every mistake is a L{usage.UsageError} naming the bad value and, where there is a
choice, the valid ones.  The parsing ends by installing the reactor (twistd has not
imported one yet when a plugin's options are parsed), so the choice is in place before
anything else needs it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

from twisted.python import usage

from netd import __version__
from netd.config.file import ConfigFileError, loadConfig
from netd.config.model import (
    ConfigError,
    DaemonConfig,
    ServiceConfig,
    checkAmplification,
    checkListeners,
    defaultListen,
    resolveSettings,
)
from netd.config.policy import POLICY_KEYS, PolicyError, PolicyKey, buildPolicy
from netd.config.settings import DAEMON_KEYS, DaemonSettings
from netd.forward.service import FORWARD_KEYS, ForwardError, Forwarding, forwardingFrom
from netd.listen.endpoint import BadListen, parseListen
from netd.logs.format import useLogFormat
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

    One service from options (C{--proto}, C{--listen}, policy options), or many from a
    file (C{--config}); both produce the same L{DaemonConfig}.

    @ivar config: after parsing, what to serve.
    @ivar reactorName: after parsing, the reactor in use.
    """

    synopsis = "(--proto NAME [--listen ENDPOINT ...] | --config FILE) [options]"
    optParameters: ClassVar[list[Any]] = [
        ["proto", "p", None, "the protocol to serve (see --list)"],
        ["config", "c", None, "serve the services of this TOML file (SIGHUP re-reads it)"],
        [
            "forward",
            None,
            None,
            "relay each connection to this backend instead of serving a protocol: "
            "tcp:IP:PORT or unix:PATH (IP literals only; needs --listen)",
        ],
        ["send-proxy", None, None, "with --forward: send a PROXY header first (v1 or v2)"],
        [
            "reactor",
            None,
            None,
            f"the reactor: {', '.join(REACTORS)} (default: best for the platform)",
        ],
        *[[k.name, None, None, k.help] for k in DAEMON_KEYS],
        *[[k.name, None, None, k.help] for k in POLICY_KEYS if not (k.flag or k.repeatable)],
    ]
    optFlags: ClassVar[list[Any]] = [
        ["list", None, "list the installed protocols and exit"],
        *[[k.name, None, k.help] for k in POLICY_KEYS if k.flag],
    ]

    registry: ClassVar[Registry]
    installReactor: ClassVar[Callable[[str | None], str]]
    protocolOptions: ClassVar[frozenset[str]] = frozenset()

    def __init__(self) -> None:
        super().__init__()
        self["listen"] = []
        self["allow"] = []
        self["deny"] = []
        self["trusted-proxies"] = []
        self.config = DaemonConfig(())
        self.reactorName = ""

    def opt_allow(self, network: str) -> None:
        """
        a network (CIDR) or address allowed (repeatable); if any are given, only these
        """
        self["allow"].append(network)

    def opt_trusted_proxies(self, network: str) -> None:
        """
        a network or address whose PROXY header haproxy: listeners believe (repeatable;
        default: loopback)
        """
        self["trusted-proxies"].append(network)

    def opt_deny(self, network: str) -> None:
        """
        a network (CIDR) or address refused (repeatable); the most specific rule wins
        """
        self["deny"].append(network)

    def getUsage(self, width: int | None = None) -> str:
        """The usual help, then every installed protocol, one per line."""
        return f"{super().getUsage(width)}\nProtocols:\n{protocolList(self.registry)}"

    def opt_listen(self, description: str) -> None:
        """
        where to listen (repeatable): a Twisted server endpoint (tcp:, tcp6:, unix:, ssl:,
        systemd:, haproxy:), udp:PORT[:interface=ADDR] or systemd-udp:name=NAME; default:
        tcp:PORT on 127.0.0.1
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
        self.config = self._fromFile() if self["config"] else self._fromOptions()
        if getattr(self, "parent", None) is not None:
            useLogFormat(self.parent, self.config.settings.logFormat)
        reactor = self["reactor"]
        if reactor is not None and reactor not in REACTORS:
            raise usage.UsageError(
                f"unknown reactor {reactor!r}; choose one of: {', '.join(REACTORS)}"
            )
        try:
            self.reactorName = self.installReactor(reactor)
        except (ReactorUnavailable, ReactorConflict) as e:
            raise usage.UsageError(str(e)) from None

    def _given(self, names: Iterable[str]) -> dict[str, Any]:
        """The options among C{names} that were given (not left at their default)."""
        # get: options of other front ends (--exec) may not exist in this build
        return {name: self.get(name) for name in names if self.get(name) not in (None, 0, [])}

    def _fromFile(self) -> DaemonConfig:
        mixed = self._given(
            [
                "proto",
                "listen",
                *FORWARD_KEYS,
                *self.protocolOptions,
                *_POLICY_NAMES,
                *_DAEMON_NAMES,
            ]
        )
        if mixed:
            raise usage.UsageError(
                f"--{next(iter(mixed))} cannot be combined with --config: set it in the file"
            )
        try:
            return loadConfig(self["config"], self.registry)
        except ConfigFileError as e:
            raise usage.UsageError(str(e)) from None

    def _fromOptions(self) -> DaemonConfig:
        if self["forward"] is not None or self["send-proxy"] is not None:
            return self._forwardFromOptions()
        if self["proto"] is None:
            raise usage.UsageError(
                "--proto or --config is required (or --forward TARGET); "
                f"protocols: {', '.join(self.registry.names())}"
            )
        try:
            protocol = self.registry.lookup(self["proto"])
            settings = resolveSettings(protocol, self._given(self.protocolOptions))
            listen = tuple(self["listen"]) or defaultListen(protocol)
            checkListeners(protocol, listen)
            policy = buildPolicy(
                {**self._given(_POLICY_NAMES), **dict.fromkeys(self._given(_FLAGS), True)}
            )
            checkAmplification(protocol, listen, policy)
            daemon = DaemonSettings(**_coerced(DAEMON_KEYS, self._given(_DAEMON_NAMES)))
        except (UnknownProtocol, ConfigError, PolicyError) as e:
            raise _usageError(e) from None
        return DaemonConfig(
            (ServiceConfig(protocol.name, protocol, listen, settings, policy),), daemon
        )

    def _forwardFromOptions(self) -> DaemonConfig:
        """
        C{--forward}: one forward service, named C{forward}, with the policy and daemon
        options as for a protocol.  C{--proto} (or another way of serving) is refused.
        """
        if self["forward"] is None:
            raise usage.UsageError("--send-proxy: needs --forward (the header goes to its backend)")
        serving = [*self._given(["proto", "exec", "wait"]), *self._given(self.protocolOptions)]
        if serving:
            raise usage.UsageError(
                f"--forward and --{serving[0]} cannot be combined: a forwarded connection is "
                "served by its backend"
            )
        try:
            forwarding = _forwarding(self._given(FORWARD_KEYS))
            if not self["listen"]:
                raise ConfigError(
                    "needs --listen: a forward service has no port of its own", "forward"
                )
            listen = tuple(self["listen"])
            checkListeners(forwarding, listen)
            policy = buildPolicy(
                {**self._given(_POLICY_NAMES), **dict.fromkeys(self._given(_FLAGS), True)}
            )
            daemon = DaemonSettings(**_coerced(DAEMON_KEYS, self._given(_DAEMON_NAMES)))
        except (ConfigError, PolicyError) as e:
            raise _usageError(e) from None
        return DaemonConfig(
            (ServiceConfig(forwarding.name, forwarding, listen, {}, policy),), daemon
        )


_POLICY_NAMES = [key.name for key in POLICY_KEYS]
_DAEMON_NAMES = [key.name for key in DAEMON_KEYS]
_FLAGS = [key.name for key in POLICY_KEYS if key.flag]


def _forwarding(values: dict[str, Any]) -> Forwarding:
    """L{forwardingFrom}, its error as a L{ConfigError} like any other setting's."""
    try:
        return forwardingFrom(values)
    except ForwardError as e:
        raise ConfigError(e.problem, e.key) from None


def _coerced(keys: Iterable[PolicyKey], given: dict[str, Any]) -> dict[str, Any]:
    """C{given} (option name -> text) as dataclass fields, coerced by C{keys}."""
    values = {}
    for key in keys:
        if key.name in given:
            try:
                values[key.attribute] = key.coerce(given[key.name])
            except ValueError as e:
                raise PolicyError(key.name, str(e)) from None
    return values


def _usageError(error: UnknownProtocol | ConfigError | PolicyError) -> usage.UsageError:
    """On the command line, a setting is an option: C{--max-line-length: ...}."""
    key = getattr(error, "key", None)
    if isinstance(error, (ConfigError, PolicyError)) and key is not None:
        return usage.UsageError(f"--{key}: {error.problem}")
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
