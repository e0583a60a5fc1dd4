"""
xinetd's services as netd services: C{netd import xinetd /etc/xinetd.conf}.

Attributes are first resolved as xinetd resolves them (C{parse.c}, C{confparse.c}): a
service inherits C{only_from}, C{no_access}, C{passenv}, the banners and the log options
from the C{defaults} block I{as it stands when the service is read}, and C{instances},
C{per_source}, C{cps}, C{bind}, C{umask}, C{v6only}... from the final one; C{+=} and
C{-=} edit the lists that allow them (C{=} in C{defaults} adds, as in xinetd); any other
attribute set twice keeps its first value.  Then each attribute becomes netd's key, or
one note naming the file, line, service and attribute.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from netd.importers.addresses import (
    EVERYONE,
    HostName,
    forwardTarget,
    isAddress,
    listenDescription,
    narrowAllow,
    xinetdNetworks,
)
from netd.importers.model import ImportedConfig, ImportedService, ImportFailure, Origin, isNumber
from netd.importers.ports import PortTable, UnknownService
from netd.importers.xinetdconf import Assignment, Entry, parseXinetd

__all__ = ["BUILTINS", "NOWAIT_DATAGRAM", "importXinetd"]

#: xinetd's INTERNAL services netd serves itself (C{builtins.c}); the others (C{servers},
#: C{services}, C{sensor}, C{tcpmux}) have no netd counterpart.
BUILTINS = ("echo", "discard", "chargen", "daytime", "time")

#: Attributes a service may set (C{service_attributes} in C{parse.c}).
SERVICE_ATTRIBUTES = frozenset(
    """socket_type protocol wait user group server server_args instances log_on_success
    log_on_failure log_type only_from no_access access_times type rpc_version rpc_number id
    env port passenv flags nice redirect banner bind interface per_source groups
    banner_success banner_fail cps disable max_load rlimit_as rlimit_cpu rlimit_data
    rlimit_files rlimit_rss rlimit_stack v6only deny_time umask mdns libwrap""".split()
)
#: Attributes the defaults block may set (C{default_attributes}).
DEFAULT_ATTRIBUTES = frozenset(
    """log_type log_on_success log_on_failure disabled no_access only_from instances passenv
    banner bind interface per_source groups banner_success banner_fail cps enabled max_load
    v6only umask mdns""".split()
)
#: Lists that C{+=} and C{-=} edit; every other attribute takes one C{=}.
MODIFIABLE = frozenset("log_on_success log_on_failure only_from no_access env passenv".split())
MODIFIABLE_IN_DEFAULTS = MODIFIABLE | {"log_type", "disabled", "enabled"}
#: Copied from defaults when the service entry is read (C{get_service_entry}).
INHERITED_AT_READ = (
    "log_on_success log_on_failure only_from no_access passenv access_times banner "
    "banner_success banner_fail"
).split()
#: Taken from the final defaults once everything is read (C{service_fill}).
INHERITED_AT_END = "instances umask per_source groups cps max_load bind v6only deny_time log_type"
#: How many values a fixed attribute takes (the rest take any number).
VALUE_COUNTS = {"redirect": 2, "cps": 2} | {
    name: 1
    for name in """socket_type protocol wait user group instances rpc_version rpc_number id
    port nice banner bind interface per_source groups banner_success banner_fail disable
    max_load rlimit_as rlimit_cpu rlimit_data rlimit_files rlimit_rss rlimit_stack v6only
    deny_time umask mdns libwrap""".split()
}
#: xinetd's resource limits and netd's names for them.
RLIMITS = {
    "rlimit_as": "as",
    "rlimit_cpu": "cpu",
    "rlimit_data": "data",
    "rlimit_files": "nofile",
    "rlimit_rss": "rss",
    "rlimit_stack": "stack",
}
#: What netd does instead, for the attributes it has no key for.
NO_EQUIVALENT = {
    "log_type": "netd logs through twistd (--logfile, --syslog) or the journal",
    "log_on_success": "netd logs every connection (peer, duration; pid and exit status "
    "for programs); log-connections = false switches that off",
    "log_on_failure": "netd logs every refusal with its reason, at most once a minute per peer",
    "access_times": "netd has no time-of-day access rules",
    "max_load": "netd does not refuse by load average",
    "deny_time": "netd has no timed ban; rate limits recover by themselves",
    "mdns": "netd does not announce services",
    "libwrap": "netd does not read /etc/hosts.allow or hosts.deny: put those rules in allow/deny",
    "banner": "netd sends nothing before the service starts",
    "banner_success": "netd sends nothing before the service starts",
    "rpc_version": "netd does not serve RPC",
    "rpc_number": "netd does not serve RPC",
}
#: Keys of a program run per connection (issue 9); meaningless for a built-in or a forward.
PROGRAM_ATTRIBUTES = (
    "server server_args env passenv nice umask groups " + " ".join(RLIMITS)
).split()
#: A datagram program in nowait mode: netd hands a datagram socket over in wait mode only.
NOWAIT_DATAGRAM = (
    "a datagram program without wait: netd hands a datagram socket to a program only in "
    "wait mode; written with wait = true and disabled: enable it if the program serves "
    "the socket until it exits"
)
#: Flags with nothing to convert: netd always reuses addresses and never calls libwrap.
SILENT_FLAGS = {"REUSE", "NOLIBWRAP", "IPv4", "IPv6", "NAMEINARGS"}


@dataclass
class Value:
    """An attribute's values, each with the line that gave it, and its last line."""

    items: list[tuple[str, Origin]]
    origin: Origin

    @property
    def words(self) -> list[str]:
        return [word for word, _ in self.items]


@dataclass
class Resolved:
    """One service's attributes once xinetd's inheritance rules have run."""

    entry: Entry
    values: dict[str, Value] = field(default_factory=dict)
    specified: set[str] = field(default_factory=set)

    @property
    def id(self) -> str:
        return self.values["id"].words[0] if "id" in self.values else self.entry.name

    def word(self, name: str) -> str | None:
        value = self.values.get(name)
        return value.words[0] if value and value.words else None


def importXinetd(path: str, ports: PortTable | None = None) -> ImportedConfig:
    """
    Read C{path} (and what it includes) and convert every service.

    @raise ImportFailure: for an unreadable or garbled file, or a value xinetd itself
        would reject (C{wait = maybe}).
    """
    entries, parseNotes, files = parseXinetd(path)
    config = ImportedConfig(path=path, kind="xinetd", files=files)
    config.notes.extend(parseNotes)
    services = _resolve(entries, config)
    converter = _Converter(config, ports or PortTable())
    for service in services:
        converter.convert(service)
    config.settle()
    return config


def _resolve(entries: list[Entry], config: ImportedConfig) -> list[Resolved]:
    """Apply xinetd's defaults and operators; notes for what xinetd itself ignores."""
    defaults = Resolved(Entry("defaults", "defaults", Origin("", 0)))
    seenDefaults: Origin | None = None
    services: list[Resolved] = []
    for entry in entries:
        if entry.kind == "defaults":
            if seenDefaults is not None:
                config.note(
                    entry.origin, None, "defaults",
                    f"a second defaults block (the first is at {seenDefaults}): xinetd "
                    "ignores it, so does this import",
                )  # fmt: skip
                continue
            seenDefaults = entry.origin
            for assignment in entry.assignments:
                _apply(defaults, assignment, None, config)
            continue
        service = Resolved(entry)
        for name in INHERITED_AT_READ:
            if name in defaults.values:
                service.values[name] = _copy(defaults.values[name])
        for assignment in entry.assignments:
            _apply(service, assignment, entry.name, config)
        services.append(service)
    for service in services:
        for name in INHERITED_AT_END.split():
            if name not in service.specified and name in defaults.values:
                service.values[name] = _copy(defaults.values[name])
        if "interface" in service.values and "bind" not in service.values:
            service.values["bind"] = service.values.pop("interface")
        _applyEnabledLists(service, defaults)
    return services


def _copy(value: Value) -> Value:
    return Value(list(value.items), value.origin)


def _apply(target: Resolved, a: Assignment, service: str | None, config: ImportedConfig) -> None:
    """One assignment, with xinetd's rules for what it may do."""
    inDefaults = service is None
    known = DEFAULT_ATTRIBUTES if inDefaults else SERVICE_ATTRIBUTES
    if a.name not in known:
        why = "not allowed in defaults" if a.name in SERVICE_ATTRIBUTES else "unknown attribute"
        config.note(a.origin, service, a.name, f"{why}: xinetd ignores it, so does this import")
        return
    name = "bind" if a.name == "interface" else a.name
    modifiable = a.name in (MODIFIABLE_IN_DEFAULTS if inDefaults else MODIFIABLE)
    items = [(word, a.origin) for word in a.values]
    if not modifiable:
        if name in target.specified:
            first = target.values[name].origin
            config.note(a.origin, service, a.name, f"already set at line {first.line}: "
                        "xinetd keeps the first value, so does this import")  # fmt: skip
            return
        if a.op != "=":
            config.note(a.origin, service, a.name,
                        f"'{a.op}' is not allowed here: xinetd ignores the line")  # fmt: skip
            return
        count = VALUE_COUNTS.get(a.name)
        if count is not None and len(a.values) != count:
            config.note(a.origin, service, a.name, f"takes {count} value(s), got "
                        f"{len(a.values)}: xinetd ignores the line")  # fmt: skip
            return
        target.values[name] = Value(items, a.origin)
        target.specified.add(name)
        return
    op = "+=" if inDefaults and a.op == "=" else a.op
    if a.name == "env" and op == "-=":
        raise ImportFailure(f"{_scope(service)}: env: xinetd does not allow '-='", a.origin)
    old = target.values[name].items if name in target.values else []
    if op == "=":
        new = items
    elif op == "+=":
        new = old + items
    else:
        removed = {_identity(word) for word in a.values}
        new = [item for item in old if _identity(item[0]) not in removed]
    target.values[name] = Value(new, a.origin)
    target.specified.add(name)


def _identity(word: str) -> object:
    """What C{-=} compares: networks for addresses (C{10.0.0.0} is C{10.0.0.0/8}), else text."""
    try:
        return tuple(xinetdNetworks(word))
    except ValueError:
        return word


def _applyEnabledLists(service: Resolved, defaults: Resolved) -> None:
    """
    C{enabled = ID...} in defaults: exactly those ids run, even one saying C{disable =
    yes} (C{remove_disabled_services}); C{disabled = ID...}: those ids do not.
    """
    enabled = defaults.values.get("enabled")
    if enabled is not None:
        word = "no" if service.id in enabled.words else "yes"
        service.values["disable"] = Value([(word, enabled.origin)], enabled.origin)
    disabled = defaults.values.get("disabled")
    if disabled is not None and service.id in disabled.words:
        service.values["disable"] = Value([("yes", disabled.origin)], disabled.origin)


def _scope(service: str | None) -> str:
    return f"service {service!r}" if service is not None else "defaults"


class _Converter:
    """Turns resolved services into netd tables, adding notes to C{config}."""

    def __init__(self, config: ImportedConfig, ports: PortTable) -> None:
        self.config = config
        self.ports = ports

    def fail(self, service: Resolved, name: str, problem: str) -> ImportFailure:
        value = service.values.get(name)
        origin = value.origin if value else service.entry.origin
        return ImportFailure(f"service {service.id!r}: {name}: {problem}", origin)

    def note(self, service: Resolved, name: str, message: str) -> None:
        """A note at the line that set C{name}: the defaults block's, if inherited."""
        value = service.values.get(name)
        origin = value.origin if value else service.entry.origin
        inherited = value is not None and name not in service.specified
        self.config.note(origin, None if inherited else service.id, name, message)

    def convert(self, service: Resolved) -> None:
        """Append C{service}'s table to the config, or notes saying why it has none."""
        table = self._table(service)
        if table is not None:
            self.config.services.append(table)

    def _table(self, service: Resolved) -> ImportedService | None:
        types = set(service.values["type"].words) if "type" in service.values else set()
        unsupported = types - {"INTERNAL", "UNLISTED"}
        if unsupported:
            kinds = ", ".join(sorted(unsupported))
            self.note(service, "type", f"{kinds} services have no netd equivalent: not converted")
            return None
        transport = self._transport(service)
        if transport is None:
            return None
        port = self._port(service, transport, "UNLISTED" in types)
        if port is None:
            return None
        table = ImportedService(service.id, service.entry.origin)
        table.source.append(f"{service.entry.origin} (service {service.entry.name})")
        if "INTERNAL" in types:
            if not self._builtin(service, table, transport):
                return None
        elif "redirect" in service.values:
            self._forward(service, table, transport)
        else:
            self._program(service, table, transport)
        table.keys["listen"] = [self._listen(service, transport, port, table)]
        if service.word("disable") == "yes":
            table.keys["enabled"] = False
        elif service.word("disable") not in (None, "no"):
            raise self.fail(
                service, "disable", f"expected yes or no, got {service.word('disable')!r}"
            )
        self._policy(service, table, transport)
        self._leftovers(service)
        return table

    # -- what the service is

    def _transport(self, service: Resolved) -> str | None:
        """C{tcp} or C{udp}, from C{socket_type} and C{protocol} as C{service_fill} does."""
        socketType = service.word("socket_type")
        protocol = service.word("protocol")
        if socketType is None and protocol is None:
            self.note(service, "socket_type", "missing (xinetd refuses the service): not converted")
            return None
        if socketType not in (None, "stream", "dgram"):
            self.note(service, "socket_type", f"{socketType} sockets have no netd equivalent: "
                      "not converted")  # fmt: skip
            return None
        implied = {"stream": "tcp", "dgram": "udp", None: protocol}[socketType]
        protocol = protocol or implied
        if protocol not in ("tcp", "udp"):
            self.note(service, "protocol", f"{protocol} has no netd equivalent: not converted")
            return None
        if implied != protocol:
            raise self.fail(service, "protocol", f"{protocol} with socket_type {socketType}")
        return protocol

    def _port(self, service: Resolved, transport: str, unlisted: bool) -> int | None:
        given = service.word("port")
        if given is not None:
            if not isNumber(given) or int(given) > 65535:
                raise self.fail(
                    service, "port", f"expected a number from 0 to 65535, got {given!r}"
                )
            return int(given)
        if unlisted:
            self.note(service, "type", "UNLISTED without a port (xinetd refuses it): not converted")
            return None
        try:
            return self.ports.port(service.entry.name, transport)
        except UnknownService as e:
            self.note(service, "port", f"none given and {e}: not converted")
        except (OSError, ValueError) as e:
            raise ImportFailure(f"cannot look up service {service.entry.name!r}: {e}") from None
        return None

    def _builtin(self, service: Resolved, table: ImportedService, transport: str) -> bool:
        name = service.entry.name
        if name not in BUILTINS:
            self.note(service, "type", f"INTERNAL service {name!r} has no netd equivalent "
                      f"(netd's built-ins: {', '.join(BUILTINS)}): not converted")  # fmt: skip
            return False
        table.keys["protocol"] = name
        if name == "chargen" and transport == "udp":
            table.commentedOut = (
                "UDP chargen turns a small spoofed datagram into a large reply at a victim; "
                "netd serves it only with allow-amplification = true"
            )
            self.note(service, "socket_type", "UDP chargen is a reflection amplifier: "
                      "written as a comment (see README, 'UDP: no loops, little reflection')")  # fmt: skip
        for name in ("redirect", *PROGRAM_ATTRIBUTES):
            if name in service.specified:
                self.note(service, name, "a built-in runs inside netd: not applicable")
        return True

    def _forward(self, service: Resolved, table: ImportedService, transport: str) -> None:
        host, port = service.values["redirect"].words
        if transport != "tcp":
            raise self.fail(service, "redirect", "xinetd redirects TCP services only")
        if not isNumber(port) or not 0 < int(port) < 65536:
            raise self.fail(service, "redirect", f"port {port!r} is not a number from 1 to 65535")
        try:
            table.keys["forward"] = forwardTarget(host, int(port))
        except HostName:
            table.keys["forward"] = f"tcp:127.0.0.1:{port}"
            table.keys["enabled"] = False
            self.note(service, "redirect", f"{host!r} is a host name and netd never resolves: "
                      "written disabled with 127.0.0.1, put the address in forward")  # fmt: skip
        if service.word("wait") == "yes":
            raise self.fail(service, "wait", "xinetd redirects nowait services only")
        for name in ("server", "server_args"):
            if name in service.specified:
                self.note(service, name, "redirect takes precedence (as in xinetd): ignored")
        for name in PROGRAM_ATTRIBUTES[2:]:
            if name in service.specified:
                self.note(service, name, "a forward runs no program: not applicable")

    def _program(self, service: Resolved, table: ImportedService, transport: str) -> None:
        server = service.word("server")
        if server is None:
            raise self.fail(service, "server", "missing (neither INTERNAL nor redirect)")
        args = service.values["server_args"].words if "server_args" in service.values else []
        flags = set(service.values["flags"].words) if "flags" in service.values else set()
        if "NAMEINARGS" in flags:
            argv0, args = (args[0], args[1:]) if args else (os.path.basename(server), [])
            server, args = self._unwrap(service, server, argv0, args)
        table.keys["exec"] = [server, *args]
        wait = service.word("wait")
        if wait is None:
            raise self.fail(service, "wait", "missing (xinetd requires it for every service)")
        if wait not in ("yes", "no"):
            raise self.fail(service, "wait", f"expected yes or no, got {wait!r}")
        if wait == "yes":
            table.keys["wait"] = True
        elif transport == "udp":
            table.keys["wait"] = True
            table.keys["enabled"] = False
            self.note(service, "wait", NOWAIT_DATAGRAM)
        self._identity(service, table)
        self._environment(service, table)
        self._limits(service, table)

    def _unwrap(
        self, service: Resolved, server: str, argv0: str, args: list[str]
    ) -> tuple[str, list[str]]:
        """C{NAMEINARGS}: argv[0] is in C{server_args}; tcpd is unwrapped."""
        if os.path.basename(server) == "tcpd":
            real = argv0 if argv0.startswith("/") else f"/usr/sbin/{argv0}"
            self.note(service, "server", f"tcpd unwrapped: netd runs {real} itself; move "
                      "/etc/hosts.allow and hosts.deny rules into allow/deny")  # fmt: skip
            return real, args
        if os.path.basename(argv0) != os.path.basename(server):
            self.note(service, "server_args", f"argv[0] {argv0!r} differs from the program: "
                      f"netd runs {server} with argv[0] = {server}")  # fmt: skip
        return server, args

    def _identity(self, service: Resolved, table: ImportedService) -> None:
        for name in ("user", "group"):
            word = service.word(name)
            if word is not None:
                table.keys[name] = int(word) if isNumber(word) else word
        if "user" not in table.keys:
            self.note(service, "user", "missing (xinetd refuses such a service when root): "
                      "netd would run the program as its own user")  # fmt: skip
        if service.word("groups") == "no":
            self.note(service, "groups", "netd always sets the user's supplementary groups")

    def _environment(self, service: Resolved, table: ImportedService) -> None:
        if "env" in service.values:
            env = {}
            for word, origin in service.values["env"].items:
                key, sep, value = word.partition("=")
                if not sep or not key:
                    raise ImportFailure(
                        f"service {service.id!r}: env: {word!r} is not NAME=VALUE", origin
                    )
                env[key] = value
            table.keys["env"] = env
        if "passenv" in service.values:
            table.keys["pass-env"] = service.values["passenv"].words

    def _limits(self, service: Resolved, table: ImportedService) -> None:
        umask = service.word("umask")
        if umask is not None:
            try:
                number = int(umask, 8)
            except ValueError:
                number = -1
            if not 0 <= number <= 0o777:
                raise self.fail(
                    service, "umask", f"expected an octal number up to 777, got {umask!r}"
                )
            table.keys["umask"] = f"{number:03o}"
        nice = service.word("nice")
        if nice is not None:
            table.keys["nice"] = self._integer(service, "nice", nice, signed=True)
        rlimits: dict[str, Any] = {}
        for attribute, name in RLIMITS.items():
            word = service.word(attribute)
            if word is not None:
                rlimits[name] = self._rlimit(service, attribute, word)
        if rlimits:
            table.keys["rlimits"] = rlimits

    def _rlimit(self, service: Resolved, attribute: str, word: str) -> int | str:
        """C{UNLIMITED}, a number, or (for sizes) a number with K or M, as xinetd takes them."""
        if word == "UNLIMITED":
            return "unlimited"
        sized = attribute not in ("rlimit_cpu", "rlimit_files")
        suffix = word[-1:].upper() if sized and word[-1:] in "kKmM" else ""
        digits = word[:-1] if suffix else word
        if not isNumber(digits):
            raise self.fail(service, attribute, f"expected a number{' (K or M suffix)' if sized else ''} "
                            f"or UNLIMITED, got {word!r}")  # fmt: skip
        return f"{int(digits)}{suffix}" if suffix else int(digits)

    def _integer(self, service: Resolved, name: str, word: str, signed: bool = False) -> int:
        text = word[1:] if signed and word[:1] == "-" else word
        if not isNumber(text):
            raise self.fail(service, name, f"expected a whole number, got {word!r}")
        return int(word)

    # -- where it listens, and who may connect

    def _listen(self, service: Resolved, transport: str, port: int, table: ImportedService) -> str:
        flags = set(service.values["flags"].words) if "flags" in service.values else set()
        if {"IPv4", "IPv6"} <= flags:
            raise self.fail(service, "flags", "both IPv4 and IPv6 (xinetd refuses it)")
        interface = service.word("bind")
        if interface is not None and not isAddress(interface):
            self.note(service, "bind", f"{interface!r} is a host name and netd never resolves: "
                      "listening on 127.0.0.1 instead, put the address in listen")  # fmt: skip
            interface = "127.0.0.1"
        ipv6 = "IPv6" in flags or (interface is not None and ":" in interface)
        if ipv6 and interface is None and service.word("v6only") == "yes":
            # xinetd's v6only socket sees no IPv4 client; netd's dual-stack one would.
            table.keys.setdefault("deny", []).append("0.0.0.0/0")
        return listenDescription(transport, port, interface, ipv6)

    def _policy(self, service: Resolved, table: ImportedService, transport: str) -> None:
        self._access(service, table)
        limits = (("instances", "max-connections"), ("per_source", "max-per-source"))
        for attribute, key in limits:
            word = service.word(attribute)
            if word is not None:
                table.keys[key] = (
                    0 if word == "UNLIMITED" else self._integer(service, attribute, word)
                )
        if "cps" in service.values:
            rate, wait = service.values["cps"].words
            number = self._integer(service, "cps", rate)
            self._integer(service, "cps", wait)
            prefix = "udp-" if transport == "udp" else ""
            table.keys[f"{prefix}rate"] = number
            table.keys[f"{prefix}burst"] = max(number, 1)
            self.note(service, "cps", f"now {prefix}rate = {number} per second per source: xinetd "
                      f"stops the whole service for {wait} s, netd's limit recovers by itself")  # fmt: skip
        banner = service.word("banner_fail")
        if banner is not None:
            self._refusedBanner(service, table, banner)

    def _access(self, service: Resolved, table: ImportedService) -> None:
        allow = self._networks(service, "only_from", "refused: netd admits fewer clients")
        deny = self._networks(
            service, "no_access", "NOT refused by netd: list its addresses in deny"
        )
        deny = [*table.keys.pop("deny", []), *(deny or [])]
        if allow is not None:
            narrowed = narrowAllow(allow, deny)
            if not narrowed:
                # only_from given but matching nobody (empty, names only, or inside
                # no_access): netd's empty allow would mean everyone.
                deny = list(dict.fromkeys([*deny, *EVERYONE]))
            else:
                table.keys["allow"] = narrowed
        if deny:
            table.keys["deny"] = list(dict.fromkeys(deny))

    def _networks(self, service: Resolved, name: str, consequence: str) -> list[str] | None:
        value = service.values.get(name)
        if value is None:
            return None
        networks: list[str] = []
        for word, origin in value.items:
            try:
                networks.extend(xinetdNetworks(word))
            except HostName:
                scope = service.id if name in service.specified else None
                self.config.note(origin, scope, name, f"{word!r} is a name and netd never "
                                 f"resolves: its clients are {consequence}")  # fmt: skip
            except ValueError as e:
                raise ImportFailure(f"{_scope(service.id)}: {name}: {e}", origin) from None
        return list(dict.fromkeys(networks))

    def _refusedBanner(self, service: Resolved, table: ImportedService, path: str) -> None:
        """xinetd's C{banner_fail} file, read now: netd's C{refused-banner} is its text."""
        try:
            # newline="": xinetd sends the file as it is, CRLF included.
            with open(path, encoding="utf-8", newline="") as stream:
                table.keys["refused-banner"] = stream.read(4096)
        except OSError as e:
            self.note(
                service, "banner_fail", f"cannot read {path} ({e.strerror or e}): no refused-banner"
            )
        except UnicodeDecodeError:
            self.note(service, "banner_fail", f"{path} is not UTF-8 text: no refused-banner")

    def _leftovers(self, service: Resolved) -> None:
        """One note for each attribute with no netd key at all."""
        for name, why in NO_EQUIVALENT.items():
            if name in service.values:
                self.note(service, name, f"no equivalent: {why}")
        flags = set(service.values["flags"].words) if "flags" in service.values else set()
        unsupported = sorted(flags - SILENT_FLAGS)
        if unsupported:
            self.note(service, "flags", f"no equivalent for {', '.join(unsupported)}")
