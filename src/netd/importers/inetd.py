"""
inetd.conf services as netd services: C{netd import inetd /etc/inetd.conf}.

Protocols follow Debian's default inetd (openbsd-inetd): C{tcp}/C{udp} serve IPv4 and
IPv6, C{tcp4}/C{udp4} IPv4 only, C{tcp6}/C{udp6} IPv6 only.  netd's IPv6 listeners are
dual-stack (Linux's default), so "both" is one C{tcp6:PORT} listener, and "IPv6 only" is
that listener with IPv4 clients denied; a C{tcp4} and a C{tcp6} line for the same
program become one service.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from netd.importers.addresses import isAddress, listenDescription
from netd.importers.inetdconf import InetdLine, parseInetd
from netd.importers.model import ImportedConfig, ImportedService, ImportFailure, isNumber
from netd.importers.ports import PortTable, UnknownService
from netd.importers.xinetd import BUILTINS, NOWAIT_DATAGRAM

__all__ = ["importInetd"]

#: Address families each protocol name listens on.
FAMILIES = {
    "tcp": {4, 6},
    "udp": {4, 6},
    "tcp4": {4},
    "udp4": {4},
    "tcp6": {6},
    "udp6": {6},
    "tcp46": {4, 6},
    "udp46": {4, 6},
}


@dataclass
class _Group:
    """Lines that differ only in address family: one netd service."""

    first: InetdLine
    families: set[int]
    lines: list[InetdLine]


def importInetd(path: str, ports: PortTable | None = None) -> ImportedConfig:
    """
    Read C{path} and convert every service line.

    @raise ImportFailure: for an unreadable or garbled file.
    """
    config = ImportedConfig(path=path, kind="inetd", files=[path])
    groups: dict[tuple[object, ...], _Group] = {}
    for line in parseInetd(path):
        families = _families(line, config)
        if families is None:
            continue
        key = (line.service, line.socketType, line.protocol.rstrip("46"), line.wait,
               line.maximum, line.user, line.group, line.server, line.args, line.enabled,
               line.addresses, line.options)  # fmt: skip
        if key in groups:
            groups[key].families |= families
            groups[key].lines.append(line)
        else:
            groups[key] = _Group(line, set(families), [line])
    converter = _Converter(config, ports or PortTable())
    converter.streams = {
        group.first.service for group in groups.values() if group.first.socketType == "stream"
    }
    for group in groups.values():
        table = converter.table(group)
        if table is not None:
            config.services.append(table)
    config.settle()
    return config


def _families(line: InetdLine, config: ImportedConfig) -> set[int] | None:
    """The families C{line} listens on, or C{None} (with a note) when netd cannot serve it."""
    if line.protocol.startswith("rpc/"):
        config.note(
            line.origin,
            line.service,
            "protocol",
            "RPC services have no netd equivalent: not converted",
        )
        return None
    if line.protocol == "unix":
        config.note(line.origin, line.service, "protocol",
                    "unix-socket services are not converted: add a unix: listen by hand")  # fmt: skip
        return None
    if line.protocol not in FAMILIES:
        config.note(
            line.origin,
            line.service,
            "protocol",
            f"{line.protocol!r} has no netd equivalent: not converted",
        )
        return None
    if line.socketType not in ("stream", "dgram"):
        config.note(
            line.origin,
            line.service,
            "socket type",
            f"{line.socketType} sockets have no netd equivalent: not converted",
        )
        return None
    if (line.socketType == "stream") != line.protocol.startswith("tcp"):
        raise ImportFailure(
            f"{line.service}: socket type {line.socketType} with protocol {line.protocol}",
            line.origin,
        )
    return FAMILIES[line.protocol]


class _Converter:
    def __init__(self, config: ImportedConfig, ports: PortTable) -> None:
        self.config = config
        self.ports = ports
        #: Services with a stream line: their datagram twin is named NAME-udp.
        self.streams: set[str] = set()

    def note(self, line: InetdLine, field: str, message: str) -> None:
        self.config.note(line.origin, line.service, field, message)

    def table(self, group: _Group) -> ImportedService | None:
        line = group.first
        transport = "tcp" if line.socketType == "stream" else "udp"
        try:
            port = self.ports.port(line.service, transport)
        except UnknownService as e:
            self.note(line, "service", f"{e}: not converted (write the port number instead)")
            return None
        except (OSError, ValueError) as e:
            raise ImportFailure(f"cannot look up service {line.service!r}: {e}") from None
        base = f"port-{port}" if isNumber(line.service) else line.service
        twin = transport == "udp" and line.service in self.streams
        table = ImportedService(f"{base}-udp" if twin else base, line.origin)
        table.source.extend(f"{each.origin}: {each.text}" for each in group.lines)
        if line.server == "internal":
            if not self._builtin(line, table, transport):
                return None
        else:
            self._program(line, table, transport)
        table.keys["listen"] = self._listen(group, transport, port, table)
        if not line.enabled:
            table.keys["enabled"] = False
        self._rate(line, table, transport)
        if line.options:
            self.note(line, "protocol", f"no equivalent for {','.join(line.options)}: "
                      "netd leaves socket buffers to the kernel")  # fmt: skip
        return table

    def _builtin(self, line: InetdLine, table: ImportedService, transport: str) -> bool:
        if line.service not in BUILTINS:
            self.note(line, "server", f"internal service {line.service!r} has no netd "
                      f"equivalent (netd's built-ins: {', '.join(BUILTINS)}): not converted")  # fmt: skip
            return False
        table.keys["protocol"] = line.service
        if line.service == "chargen" and transport == "udp":
            table.commentedOut = (
                "UDP chargen turns a small spoofed datagram into a large reply at a victim; "
                "netd serves it only with allow-amplification = true"
            )
            self.note(line, "protocol", "UDP chargen is a reflection amplifier: written as "
                      "a comment (see README, 'UDP: no loops, little reflection')")  # fmt: skip
        return True

    def _program(self, line: InetdLine, table: ImportedService, transport: str) -> None:
        server = line.server
        argv0, args = (line.args[0], list(line.args[1:])) if line.args else (server, [])
        if os.path.basename(server) == "tcpd":
            server = argv0 if argv0.startswith("/") else f"/usr/sbin/{argv0}"
            self.note(line, "server", f"tcpd unwrapped: netd runs {server} itself; move "
                      "/etc/hosts.allow and hosts.deny rules into allow/deny")  # fmt: skip
        elif os.path.basename(server) == "busybox" and os.path.basename(argv0) != "busybox":
            args = [argv0, *args]  # "busybox APPLET ARGS" runs the applet argv[0] named
        elif os.path.basename(argv0) != os.path.basename(server):
            self.note(line, "server", f"argv[0] {argv0!r} differs from the program: "
                      f"netd runs {server} with argv[0] = {server}")  # fmt: skip
        table.keys["exec"] = [server, *args]
        if line.wait:
            table.keys["wait"] = True
        elif transport == "udp":
            table.keys["wait"] = True
            table.keys["enabled"] = False
            self.note(line, "wait", NOWAIT_DATAGRAM)
        table.keys["user"] = int(line.user) if isNumber(line.user) else line.user
        if line.group is not None:
            table.keys["group"] = int(line.group) if isNumber(line.group) else line.group

    def _listen(
        self, group: _Group, transport: str, port: int, table: ImportedService
    ) -> list[str]:
        line = group.first
        interfaces: list[str] = []
        for address in line.addresses:
            if isAddress(address):
                interfaces.append(address)
            else:
                self.note(line, "service", f"{address!r} is a host name and netd never "
                          "resolves: listening on 127.0.0.1 instead, put the address in listen")  # fmt: skip
                interfaces.append("127.0.0.1")
        if interfaces:
            return list(
                dict.fromkeys(listenDescription(transport, port, a, False) for a in interfaces)
            )
        if group.families == {6}:
            # An IPv6-only socket in inetd; netd's is dual-stack, so IPv4 is refused.
            table.keys["deny"] = ["0.0.0.0/0"]
        return [listenDescription(transport, port, None, 6 in group.families)]

    def _rate(self, line: InetdLine, table: ImportedService, transport: str) -> None:
        """C{nowait.MAX}: at most MAX invocations a minute, else the service stops 10 minutes."""
        if line.maximum is None:
            return
        prefix = "udp-" if transport == "udp" else ""
        rate = round(line.maximum / 60, 3)
        table.keys[f"{prefix}rate"] = int(rate) if rate == int(rate) else rate
        table.keys[f"{prefix}burst"] = max(line.maximum, 1)
        self.note(line, "wait", f"now {prefix}rate = {table.keys[f'{prefix}rate']} per second per "
                  f"source with a burst of {line.maximum}: inetd counts {line.maximum} a minute "
                  "for the whole service and then stops it 10 minutes, netd's limit recovers by itself")  # fmt: skip
