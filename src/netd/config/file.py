"""
netd's config file: one TOML file describing every service, the whole daemon's settings
and the limits the services share.

The file builds the same L{ServiceConfig}s as the command line, through the same
validators (L{resolveSettings}, L{checkListeners}, L{buildPolicy}...), so a service means
the same thing whichever front end describes it.  Everything is checked before anything is
returned: a file that loads is a file netd can serve, and a mistake is one
L{ConfigFileError} line naming the file, the service and the key, never a traceback or a
half-started daemon.

    shutdown-timeout = 5              # daemon settings (top level, all optional)

    [defaults]                        # policy keys shared by every service
    idle-timeout = 300

    [services.echo]                   # a service; the table name is its name
    listen = ["tcp:10007:interface=127.0.0.1", "udp:10007:interface=127.0.0.1"]
    max-connections = 100

A service table takes C{protocol} (default: the table name), C{listen} (default: the
protocol's loopback TCP port, as on the command line), C{enabled} (default C{true}), every
policy key of L{POLICY_KEYS}, and the protocol's own options.  Should a protocol declare an
option named like a policy key or one of C{protocol}, C{listen}, C{enabled}, netd's key
wins and that option keeps its default: netd's keys mean the same thing for every service,
whatever protocol it runs, so a plugin cannot change what C{max-connections} does.

A table with C{forward} (and optionally C{send-proxy}) relays its connections to a
backend instead of serving a protocol (L{netd.forward}); it takes no C{protocol} and
needs C{listen}.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from netd.admission.policy import Policy
from netd.config.model import (
    ConfigError,
    DaemonConfig,
    ServiceConfig,
    checkAddresses,
    checkAmplification,
    checkListeners,
    defaultListen,
    resolveSettings,
)
from netd.config.policy import POLICY_KEYS, PolicyError, buildPolicy
from netd.config.settings import DAEMON_KEYS, DaemonSettings
from netd.forward.service import FORWARD_KEYS, ForwardError, Forwarding, forwardingFrom
from netd.interfaces import INetdProtocol
from netd.listen.endpoint import BadListen, ListenSpec, parseListen
from netd.registry import Registry, UnknownProtocol

__all__ = [
    "DAEMON_KEYS",
    "SERVICE_KEYS",
    "ConfigFileError",
    "loadConfig",
    "parseConfig",
]


class ConfigFileError(ValueError):
    """
    A config file netd cannot serve, as one line: C{PATH: [TABLE]: service 'NAME': KEY:
    PROBLEM}, leaving out whatever does not apply.

    One line, because it is what an operator reads on stderr or in a reload's log entry,
    and it must say where to look without a traceback.

    @ivar path: the file, as it was named to L{loadConfig} or L{parseConfig}.
    @ivar problem: what is wrong.
    @ivar service: the service table at fault, if one is.
    @ivar key: the key whose I{value} is at fault, if one is.  A key that should not be
        there at all is named in C{problem} instead (C{unknown key 'x'}), so this is
        C{None} for it.
    @ivar table: a table other than a service's (C{"defaults"}), if the fault is there.
    """

    def __init__(
        self,
        path: str,
        problem: str,
        service: str | None = None,
        key: str | None = None,
        table: str | None = None,
    ) -> None:
        self.path = path
        self.problem = problem
        self.service = service
        self.key = key
        self.table = table
        super().__init__(str(self))

    def __str__(self) -> str:
        parts = [self.path]
        if self.table is not None:
            parts.append(f"[{self.table}]")
        if self.service is not None:
            parts.append(f"service {self.service!r}")
        if self.key is not None:
            parts.append(self.key)
        parts.append(self.problem)
        return ": ".join(_printable(" ".join(part.splitlines())) for part in parts)


def _printable(text: str) -> str:
    """
    C{text} with what a terminal would act on (ESC, other control or unassigned
    characters: a table name is any TOML string) escaped as C{repr} does.
    """
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


#: The keys of a service table besides the policy keys and the protocol's own options.
SERVICE_KEYS: tuple[str, ...] = ("protocol", "listen", "enabled")

_TABLES = ("defaults", "services")
_POLICY_NAMES = frozenset(key.name for key in POLICY_KEYS)
#: Names a protocol's own option cannot take in a service table (see the module docstring).
_RESERVED = _POLICY_NAMES | frozenset(SERVICE_KEYS)
_TOML_POSITION = re.compile(r"^(?P<message>.*) \(at line (?P<line>\d+), column (?P<column>\d+)\)$")


def loadConfig(path: str, registry: Registry) -> DaemonConfig:
    """
    Read and validate the config file at C{path}.

    @param registry: the installed protocols, which the services' C{protocol} keys name.
    @raise ConfigFileError: when the file cannot be read, is not TOML, or describes
        anything netd cannot serve; the message is one line naming the file.
    """
    try:
        with open(path, "rb") as stream:
            document = tomllib.load(stream)
    except OSError as e:
        raise ConfigFileError(path, f"cannot read: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise ConfigFileError(path, f"not UTF-8 text: {e.reason} at byte {e.start}") from None
    except tomllib.TOMLDecodeError as e:
        raise _syntaxError(path, e) from None
    return _daemonConfig(document, path, registry)


def parseConfig(text: str, path: str, registry: Registry) -> DaemonConfig:
    """
    Validate config file contents already in memory (L{loadConfig} without the reading).

    @param path: the name errors report, and the L{DaemonConfig}'s C{path}.
    @raise ConfigFileError: as L{loadConfig} does.
    """
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise _syntaxError(path, e) from None
    return _daemonConfig(document, path, registry)


def _syntaxError(path: str, error: tomllib.TOMLDecodeError) -> ConfigFileError:
    """
    tomllib's message, with its trailing C{(at line N, column M)} moved to the front, where
    an editor's C{file: line N:} convention expects it.  A duplicate service table is one
    of these: TOML itself forbids declaring a table twice.
    """
    message = " ".join(str(error).splitlines())
    position = _TOML_POSITION.match(message)
    if position is None:
        return ConfigFileError(path, message.replace(" (at end of document)", " at end of file"))
    return ConfigFileError(
        path, f"line {position['line']}: {position['message']} (column {position['column']})"
    )


def _daemonConfig(document: Mapping[str, Any], path: str, registry: Registry) -> DaemonConfig:
    """The whole file: daemon settings, then the defaults, then each service in order."""
    daemonNames = [key.name for key in DAEMON_KEYS]
    _refuseUnknown(path, document, [*daemonNames, *_TABLES])
    settings = _daemonSettings(path, document)
    defaults = _table(path, document, "defaults")
    basePolicy = _policy(path, defaults, Policy(), table="defaults")
    services = _table(path, document, "services")
    enabled: list[ServiceConfig] = []
    for name, body in services.items():
        if not isinstance(body, dict):
            raise ConfigFileError(
                path, f"expected a table [services.{name}], got {body!r}", service=name
            )
        service = _service(path, name, body, basePolicy, registry)
        if service is not None:
            enabled.append(service)
    if not enabled:
        raise ConfigFileError(
            path, "no enabled service: add a [services.NAME] table, or set enabled = true in one"
        )
    _checkAddresses(path, enabled)
    return DaemonConfig(services=tuple(enabled), settings=settings, path=path)


def _refuseUnknown(
    path: str,
    table: Mapping[str, Any],
    known: Iterable[str],
    service: str | None = None,
    tableName: str | None = None,
) -> None:
    """
    @raise ConfigFileError: for the first key of C{table} not in C{known}, suggesting the
        closest known key: a misspelt limit silently ignored would leave the service
        without it.
    """
    known = list(known)
    for key in table:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = (
                f" (did you mean {close[0]!r}?)" if close else f" (known keys: {', '.join(known)})"
            )
            raise ConfigFileError(
                path, f"unknown key {key!r}{hint}", service=service, table=tableName
            )


def _table(path: str, document: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The top-level table C{name}, empty when absent."""
    table = document.get(name, {})
    if not isinstance(table, dict):
        raise ConfigFileError(path, f"expected a table [{name}], got {table!r}", key=name)
    return table


def _daemonSettings(path: str, document: Mapping[str, Any]) -> DaemonSettings:
    """The top-level keys, coerced; the L{DaemonSettings} defaults for the others."""
    values: dict[str, Any] = {}
    for key in DAEMON_KEYS:
        if key.name in document:
            values[key.attribute] = _coerce(path, key.coerce, document[key.name], key.name)
    return DaemonSettings(**values)


def _coerce(
    path: str,
    coerce: Callable[[Any], Any],
    value: object,
    key: str,
) -> Any:
    """C{coerce(value)}, its C{ValueError} turned into a L{ConfigFileError} naming C{key}."""
    try:
        return coerce(value)
    except ValueError as e:
        raise ConfigFileError(path, str(e), key=key) from None


def _policy(
    path: str,
    values: Mapping[str, Any],
    base: Policy,
    table: str | None = None,
    service: str | None = None,
) -> Policy:
    """
    L{buildPolicy} over C{base}, which already holds the C{[defaults]} for a service.

    A service's C{allow} or C{deny} I{replaces} the list from C{[defaults]} rather than
    extending it: a service that admits only its own clients must not also inherit a
    default C{allow} that opens it wider.  A list it does not set is inherited whole.

    @raise ConfigFileError: for a key that is not a policy key, a value of the wrong type
        or range, or a network that is not a literal CIDR or address.
    """
    if table is not None:
        _refuseUnknown(path, values, [key.name for key in POLICY_KEYS], tableName=table)
    try:
        return buildPolicy(values, base)
    except PolicyError as e:
        raise ConfigFileError(path, e.problem, service=service, key=e.key, table=table) from None


def _service(
    path: str,
    name: str,
    body: Mapping[str, Any],
    basePolicy: Policy,
    registry: Registry,
) -> ServiceConfig | None:
    """
    One C{[services.NAME]} table, checked in full even when C{enabled = false}, so that
    switching a service on later cannot reveal a mistake made today.

    @return: the service, or C{None} when it is disabled.
    """
    protocol: INetdProtocol
    if any(key in body for key in FORWARD_KEYS):
        protocol = _forwarding(path, name, body)
        options: list[str] = []
        known = [*SERVICE_KEYS, *FORWARD_KEYS, *(key.name for key in POLICY_KEYS)]
    else:
        protocol = _protocol(path, name, body, registry)
        options = [option.name for option in protocol.options if option.name not in _RESERVED]
        known = [*SERVICE_KEYS, *(key.name for key in POLICY_KEYS), *options]
        _refuseForeignOptions(path, name, body, known, protocol, registry)
    _refuseUnknown(path, body, known, name)
    enabled = body.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigFileError(
            path, f"expected true or false, got {enabled!r}", service=name, key="enabled"
        )
    listen = _listen(path, name, body, protocol)
    policyValues = {key: value for key, value in body.items() if key in _POLICY_NAMES}
    policy = _policy(path, policyValues, basePolicy, service=name)
    given = {key: value for key, value in body.items() if key in options}
    try:
        settings = resolveSettings(protocol, given)
        checkListeners(protocol, listen)
        checkAmplification(protocol, listen, policy)
    except ConfigError as e:
        # Only resolveSettings names a key; the listener checks are about "listen".
        raise ConfigFileError(path, e.problem, service=name, key=e.key or "listen") from None
    if not enabled:
        return None
    return ServiceConfig(name, protocol, listen, settings, policy)


def _refuseForeignOptions(
    path: str,
    name: str,
    body: Mapping[str, Any],
    known: Sequence[str],
    protocol: INetdProtocol,
    registry: Registry,
) -> None:
    """
    @raise ConfigFileError: for a key that is another protocol's option (C{message} in an
        echo table), saying whose: the likely mistake is the protocol, not the key.
    """
    for key in body:
        if key in known:
            continue
        owners = [other.name for other in registry if key in {o.name for o in other.options}]
        if owners:
            raise ConfigFileError(
                path,
                f"unknown key {key!r} (an option of {', '.join(owners)}, not of {protocol.name})",
                service=name,
            )


def _forwarding(path: str, name: str, body: Mapping[str, Any]) -> Forwarding:
    """A forward service's target and PROXY version (L{netd.forward.service})."""
    try:
        return forwardingFrom(body)
    except ForwardError as e:
        raise ConfigFileError(path, e.problem, service=name, key=e.key) from None


def _protocol(path: str, name: str, body: Mapping[str, Any], registry: Registry) -> INetdProtocol:
    """The service's protocol: its C{protocol} key, or else the table's own name."""
    protocolName = body.get("protocol", name)
    if not isinstance(protocolName, str):
        raise ConfigFileError(
            path, f"expected a protocol name, got {protocolName!r}", service=name, key="protocol"
        )
    try:
        return registry.lookup(protocolName)
    except UnknownProtocol as e:
        hint = "" if "protocol" in body else " (no protocol key, so the table name was taken)"
        raise ConfigFileError(path, f"{e}{hint}", service=name, key="protocol") from None


def _listen(
    path: str, name: str, body: Mapping[str, Any], protocol: INetdProtocol
) -> tuple[ListenSpec, ...]:
    """
    The C{listen} key: a list of endpoint strings, or one string; when absent, the
    protocol's default (loopback, TCP), exactly as without C{--listen}.
    """
    if "listen" not in body:
        if not protocol.defaultPort:  # a forward service: no port is its own
            raise ConfigFileError(
                path, f"a {protocol.name} service needs listen", service=name, key="listen"
            )
        return defaultListen(protocol)
    raw = body["listen"]
    descriptions: Sequence[object] = [raw] if isinstance(raw, str) else raw
    if not isinstance(descriptions, list) or not descriptions:
        raise ConfigFileError(
            path,
            f"expected a non-empty list of endpoint strings, got {raw!r}",
            service=name,
            key="listen",
        )
    return tuple(_listenSpec(path, name, description) for description in descriptions)


def _listenSpec(path: str, name: str, description: object) -> ListenSpec:
    """One listen description, validated by L{parseListen}."""
    if not isinstance(description, str):
        raise ConfigFileError(
            path, f"expected an endpoint string, got {description!r}", service=name, key="listen"
        )
    try:
        return parseListen(description)
    except BadListen as e:
        raise ConfigFileError(path, str(e), service=name, key="listen") from None


def _checkAddresses(path: str, services: Sequence[ServiceConfig]) -> None:
    """
    L{checkAddresses}, reporting the service that claims an address a second time: its
    message names the first owner, and the error's service names the other.
    """
    for count in range(1, len(services) + 1):
        try:
            checkAddresses(services[:count])
        except ConfigError as e:
            service = services[count - 1].name
            raise ConfigFileError(path, e.problem, service=service, key=e.key) from None
