"""
The sockets systemd binds for netd (socket activation), as sd_listen_fds(3) hands them over.

C{LISTEN_FDS} descriptors from 3 on, named by C{LISTEN_FDNAMES}, meant for the process
C{LISTEN_PID}.  Twisted adopts inherited stream sockets (its C{systemd:} endpoint); netd
adds datagram sockets (C{systemd-udp:}, see L{netd.listen.endpoint}) and reads the
descriptors the way Twisted does, from the same reading.
"""

from __future__ import annotations

import socket
from typing import Any

from twisted.python.systemd import ListenFDs

__all__ = ["NotInherited", "inheritedDescriptor", "inheritedFamily", "processListenFDs"]

_KINDS: dict[int, str] = {socket.SOCK_STREAM: "stream", socket.SOCK_DGRAM: "datagram"}
_DIRECTIVES: dict[int, str] = {
    socket.SOCK_STREAM: "ListenStream=",
    socket.SOCK_DGRAM: "ListenDatagram=",
}


class NotInherited(Exception):
    """
    A socket netd was told to take from systemd is missing or of the wrong kind.  The
    message is one line saying which and why; the listener adds the description.
    """


def processListenFDs() -> ListenFDs:
    """
    The sockets this process inherited, as Twisted's C{systemd:} endpoint sees them.

    Twisted reads C{LISTEN_PID}, C{LISTEN_FDS} and C{LISTEN_FDNAMES} once, when
    L{twisted.internet.endpoints} is imported, and removes the first two from
    C{os.environ} so no descriptor is adopted twice; reading the environment again
    later finds nothing.  Sharing Twisted's reading keeps C{systemd:} and C{systemd-udp:}
    in agreement about which socket is which.
    """
    from twisted.internet.endpoints import _SystemdParser

    inherited: Any = getattr(_SystemdParser, "_sddaemon", None)
    return inherited if isinstance(inherited, ListenFDs) else ListenFDs.fromEnvironment()


def _inheritedText(inherited: ListenFDs) -> str:
    names = list(inherited.inheritedNamedDescriptors())
    if names:
        return "inherited: " + ", ".join(names)
    if inherited.inheritedDescriptors():
        return f"{len(inherited.inheritedDescriptors())} inherited without names"
    return (
        "none inherited: LISTEN_FDS, LISTEN_FDNAMES and LISTEN_PID are unset, "
        "meant for another process, or disagree"
    )


def inheritedDescriptor(
    inherited: ListenFDs, name: str | None = None, index: int | None = None
) -> int:
    """
    The descriptor of the inherited socket called C{name} (systemd's
    C{FileDescriptorName=}), or else the C{index}th one (from 0).

    @raise NotInherited: when there is no such socket; the message lists those there are.
    """
    if name is not None:
        named = inherited.inheritedNamedDescriptors()
        if name not in named:
            raise NotInherited(
                f"no socket named {name!r} was inherited from systemd ({_inheritedText(inherited)})"
            )
        return named[name]
    descriptors = inherited.inheritedDescriptors()
    if index is None or not 0 <= index < len(descriptors):
        raise NotInherited(
            f"no socket number {index} was inherited from systemd ({_inheritedText(inherited)})"
        )
    return descriptors[index]


def inheritedFamily(fd: int, kind: int) -> int:
    """
    The address family of the inherited socket C{fd}, checked to be of C{kind}
    (C{SOCK_STREAM} or C{SOCK_DGRAM}).

    The family is read from the socket rather than trusted from the configuration:
    C{ListenStream=7} gives an IPv6 dual-stack socket wherever IPv6 is enabled, and
    Twisted serving it as IPv4 would garble every peer address.

    @raise NotInherited: when C{fd} is not an open socket of that kind.
    """
    try:
        probe = socket.socket(fileno=fd)
    except OSError as e:
        raise NotInherited(f"inherited descriptor {fd} is not a socket: {e.strerror}") from None
    try:
        family, actual = probe.family, probe.type
    finally:
        probe.detach()  # the probe must not close the inherited descriptor
    if actual != kind:
        raise NotInherited(
            f"inherited descriptor {fd} is a {_KINDS.get(actual, 'non-' + _KINDS[kind])} "
            f"socket, this listener needs a {_KINDS[kind]} one ({_DIRECTIVES[kind]})"
        )
    return int(family)
