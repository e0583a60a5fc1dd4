"""
systemd integration without libsystemd: readiness, reload and stop notifications and
the watchdog.

Notifications follow sd_notify(3): one datagram of C{KEY=VALUE} lines sent to the unix
socket named by C{NOTIFY_SOCKET}.  That is a few lines of code, and Twisted has none, so
netd writes them itself rather than depend on a binding to libsystemd.

The sockets systemd binds for netd (socket activation) are read by
L{netd.listen.inherited}: they are part of what a listen description means, while this
module talks to systemd about the running daemon.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from twisted.application.service import Service
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

if TYPE_CHECKING:
    from netd.serving.daemon import Daemon

__all__ = [
    "MAX_STATUS",
    "NotifySocket",
    "Notifier",
    "Watchdog",
    "notifyAddress",
    "statusLine",
    "watchdogInterval",
]

#: Longest C{STATUS=} text sent.  systemd ignores a whole notification of 4096 bytes or
#: more, so a daemon with hundreds of listeners must not lose its C{READY=1} to its status.
MAX_STATUS = 1024


def notifyAddress(value: str) -> bytes | None:
    """
    The unix socket address C{NOTIFY_SOCKET} names: an absolute path, or C{@name} for a
    Linux abstract socket (what systemd uses inside containers).  C{None} for anything
    else (C{vsock:} addresses of systemd 253 and later are not supported).
    """
    if value.startswith("@") and len(value) > 1:
        return b"\0" + os.fsencode(value[1:])
    if value.startswith("/"):
        return os.fsencode(value)
    return None


class NotifySocket:
    """
    Sends sd_notify messages to C{NOTIFY_SOCKET}.

    A notification must never stop the daemon: every failure (no listener, a full
    queue, an address netd cannot use) is logged, once until a send succeeds again,
    and otherwise ignored.  The socket is non-blocking, so a manager that stopped
    reading cannot stall the reactor.
    """

    log = Logger()

    def __init__(self, address: str) -> None:
        self.address = address
        self._failing = False

    def send(self, *fields: str) -> bool:
        """
        Send C{fields} (C{"READY=1"}, C{"STATUS=..."}) as one notification.

        @return: whether it was sent.
        """
        message = "\n".join(fields).encode("utf-8")
        try:
            target = notifyAddress(self.address)
            if target is None:
                raise ValueError("not an absolute path or @abstract name")
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.setblocking(False)
                sock.sendto(message, target)
        except Exception as e:  # whatever goes wrong, the daemon serves on
            if not self._failing:
                self.log.warn(
                    "cannot notify systemd at NOTIFY_SOCKET={address!r}: {error}",
                    address=self.address,
                    error=getattr(e, "strerror", None) or e,
                )
            self._failing = True
            return False
        self._failing = False
        return True


def statusLine(daemon: Daemon) -> str:
    """
    The C{STATUS=} text for C{systemctl status}: each service with the listen
    descriptions it serves, and what is not listening.  One line (a newline would end
    the field) of at most L{MAX_STATUS} characters.
    """
    served = ", ".join(
        f"{runtime.name} ({', '.join(runtime.listeners)})" for runtime in daemon.runtimes()
    )
    text = f"serving {served}" if served else "serving nothing"
    problems = daemon.problems()
    if problems:
        text += f"; {len(problems)} not listening: " + "; ".join(problems)
    text = " ".join(text.splitlines())
    return text if len(text) <= MAX_STATUS else text[: MAX_STATUS - 3] + "..."


def watchdogInterval(environ: Mapping[str, str], pid: int) -> float | None:
    """
    Seconds between C{WATCHDOG=1} pings: half of C{WATCHDOG_USEC}, as sd_watchdog_enabled(3)
    recommends, so one late ping is not yet a restart.  C{None} when systemd expects no
    pings from this process: no or a malformed C{WATCHDOG_USEC}, or a C{WATCHDOG_PID} naming
    another process (the variables leaked into a child).
    """
    watchedPid = environ.get("WATCHDOG_PID")
    if watchedPid is not None and watchedPid != str(pid):
        return None
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 2_000_000 if usec > 0 else None


def _monotonicMicroseconds() -> int:
    return time.monotonic_ns() // 1000


class Watchdog(Service):
    """
    Pings systemd's watchdog from the reactor: if the reactor hangs, the pings stop and
    systemd kills and restarts the daemon (C{WatchdogSec=}, C{Restart=on-failure}).

    The first ping is sent at start, so a slow startup keeps the most slack.
    """

    def __init__(self, notify: NotifySocket, interval: float, clock: IReactorTime) -> None:
        self.notify = notify
        self.interval = interval
        self.clock = clock
        self._loop: LoopingCall | None = None

    def startService(self) -> None:
        super().startService()
        self._loop = LoopingCall(self.notify.send, "WATCHDOG=1")
        self._loop.clock = self.clock
        self._loop.start(self.interval, now=True)

    def stopService(self) -> None:
        super().stopService()
        loop, self._loop = self._loop, None
        if loop is not None and loop.running:
            loop.stop()


class Notifier:
    """
    Tells systemd about the daemon's life (a L{netd.serving.daemon.DaemonObserver}), for
    C{Type=notify} units: C{READY=1} once every listener is bound (at startup and after
    each reload, applied or rejected), C{RELOADING=1} before a reload, C{STOPPING=1}
    when the graceful stop begins, each with a C{STATUS=} line.

    @ivar watchdog: seconds between watchdog pings, or C{None} for none.
    """

    def __init__(
        self,
        notify: NotifySocket,
        clock: IReactorTime,
        watchdog: float | None = None,
        monotonic: Callable[[], int] = _monotonicMicroseconds,
    ) -> None:
        self.notify = notify
        self.clock = clock
        self.watchdog = watchdog
        self.monotonic = monotonic

    @classmethod
    def fromEnvironment(
        cls, environ: Mapping[str, str], reactor: IReactorTime, pid: int | None = None
    ) -> Notifier:
        """
        The notifier systemd asks for through C{NOTIFY_SOCKET}, C{WATCHDOG_USEC} and
        C{WATCHDOG_PID} in C{environ}, for the process C{pid} (default: this one).
        """
        interval = watchdogInterval(environ, os.getpid() if pid is None else pid)
        return cls(NotifySocket(environ.get("NOTIFY_SOCKET", "")), reactor, interval)

    def attach(self, daemon: Daemon) -> None:
        """Observe C{daemon}, and ping the watchdog while it runs if systemd wants that."""
        daemon.observers.append(self)
        if self.watchdog is not None:
            Watchdog(self.notify, self.watchdog, self.clock).setServiceParent(daemon)

    def ready(self, daemon: Daemon) -> None:
        self.notify.send("READY=1", "STATUS=" + statusLine(daemon))

    def reloading(self, daemon: Daemon) -> None:
        # MONOTONIC_USEC lets systemd >= 253 (Type=notify-reload) match this message to
        # the SIGHUP it sent; older versions ignore the field.
        self.notify.send(
            "RELOADING=1", f"MONOTONIC_USEC={self.monotonic()}", "STATUS=reloading configuration"
        )

    def stopping(self, daemon: Daemon) -> None:
        self.notify.send("STOPPING=1", "STATUS=stopping: finishing open connections")
