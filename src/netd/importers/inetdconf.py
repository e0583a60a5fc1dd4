"""
inetd.conf, read as Debian's openbsd-inetd and inetutils-inetd read it (inetd(8)):

    [ADDR[,ADDR...]:]SERVICE  SOCKET-TYPE  PROTOCOL[,sndbuf=N][,rcvbuf=N]  wait|nowait[.MAX]
        USER[.GROUP|:GROUP]  SERVER-PROGRAM|internal  [ARGV0 ARGS...]

A line of only C{ADDR:} sets the address for the lines after it (C{*:} resets it).  A
line Debian's update-inetd switched off (C{#<off># ...}) is read too, as a disabled
service; every other C{#} line is a comment.

Why not Twisted's own L{twisted.runner.inetdconf.InetdConf}: it keeps no line numbers
(every note and error here names its line), splits C{user.group} but not C{user:group},
knows neither C{nowait.MAX}, nor address prefixes, nor C{tcp6}/C{udp6} (it looks
C{(name, "tcp6")} up in /etc/services and fails), reads /etc/services for every line
even when no name needs it, and strips a C{#} anywhere in a line (a legitimate argument
character).  Its C{ServicesConf} is used, in L{netd.importers.ports}, for what it does
well.
"""

from __future__ import annotations

from dataclasses import dataclass

from netd.importers.model import ImportFailure, Origin, isNumber

__all__ = ["InetdLine", "parseInetd"]

#: How Debian's update-inetd comments out a service it disables.
DISABLED_PREFIX = "#<off>#"


@dataclass(frozen=True)
class InetdLine:
    """
    One service line, split.

    @ivar addresses: the local addresses from the line's prefix or the last C{ADDR:}
        line; empty for all addresses.
    @ivar maximum: the C{.MAX} of C{wait.MAX}/C{nowait.MAX}, if given.
    @ivar group: from C{user.group} or C{user:group}.
    @ivar options: what followed the protocol after commas (C{sndbuf=64k}).
    @ivar args: the program's arguments, starting with its argv[0] (inetd's convention).
    """

    origin: Origin
    text: str
    enabled: bool
    addresses: tuple[str, ...]
    service: str
    socketType: str
    protocol: str
    options: tuple[str, ...]
    wait: bool
    maximum: int | None
    user: str
    group: str | None
    server: str
    args: tuple[str, ...]


def parseInetd(path: str) -> list[InetdLine]:
    """
    Every service line of C{path}, in order.

    @raise ImportFailure: when the file cannot be read, or a line has too few fields or
        a C{wait} field that is neither C{wait} nor C{nowait}.
    """
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as stream:
            lines = stream.read().splitlines()
    except OSError as e:
        raise ImportFailure(f"cannot read: {e.strerror or e}", path=path) from None
    services: list[InetdLine] = []
    addresses: tuple[str, ...] = ()
    for number, text in enumerate(lines, 1):
        enabled = True
        stripped = text.strip()
        if stripped.startswith(DISABLED_PREFIX):
            stripped, enabled = stripped[len(DISABLED_PREFIX) :].strip(), False
        if not stripped or stripped.startswith("#"):
            continue
        origin = Origin(path, number)
        fields = stripped.split()
        if len(fields) == 1 and fields[0].endswith(":") and enabled:
            prefix = fields[0][:-1]
            addresses = () if prefix in ("*", "") else tuple(prefix.split(","))
            continue
        try:
            services.append(_line(origin, stripped, fields, enabled, addresses))
        except ImportFailure:
            if enabled:
                raise
            # A switched-off line is a comment to inetd: garbled, it is still only that.
    return services


def _line(
    origin: Origin, text: str, fields: list[str], enabled: bool, addresses: tuple[str, ...]
) -> InetdLine:
    if len(fields) < 6:
        raise ImportFailure(
            f"expected at least 6 fields (service, socket type, protocol, wait/nowait, "
            f"user, program), got {len(fields)}: {text!r}",
            origin,
        )
    service, socketType, protocol, wait, user, server, *args = fields
    if ":" in service and not service.startswith("/"):
        prefix, _, service = service.rpartition(":")
        addresses = () if prefix in ("*", "") else tuple(prefix.split(","))
    protocol, *options = protocol.split(",")
    waitWord, _, maximum = wait.partition(".")
    if waitWord not in ("wait", "nowait"):
        raise ImportFailure(f"{service}: expected wait or nowait, got {wait!r}", origin)
    if maximum and not isNumber(maximum):
        raise ImportFailure(f"{service}: {wait!r}: the part after the dot must be a number", origin)
    separator = ":" if ":" in user else "."
    user, _, group = user.partition(separator)
    return InetdLine(
        origin=origin,
        text=text,
        enabled=enabled,
        addresses=addresses,
        service=service,
        socketType=socketType,
        protocol=protocol,
        options=tuple(options),
        wait=waitWord == "wait",
        maximum=int(maximum) if maximum else None,
        user=user,
        group=group or None,
        server=server,
        args=tuple(args),
    )
