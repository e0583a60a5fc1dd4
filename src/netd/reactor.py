"""
Choosing and installing the reactor, before anything imports it.

The choice is a pure function of the platform (L{chooseReactorName}), so every branch is
tested with fake platforms; installing is separate (L{ensureReactor}) and happens once,
from the command-line options, before twistd or netd imports C{twisted.internet.reactor}.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from importlib.util import find_spec

__all__ = [
    "REACTORS",
    "Platform",
    "ReactorConflict",
    "ReactorUnavailable",
    "chooseReactorName",
    "ensureReactor",
    "installedReactorName",
]

# name -> module whose install() installs it (uvloop is asyncio's reactor on a uvloop loop)
REACTORS: dict[str, str] = {
    "epoll": "twisted.internet.epollreactor",
    "kqueue": "twisted.internet.kqreactor",
    "iocp": "twisted.internet.iocpreactor",
    "poll": "twisted.internet.pollreactor",
    "select": "twisted.internet.selectreactor",
    "asyncio": "twisted.internet.asyncioreactor",
    "uvloop": "twisted.internet.asyncioreactor",
}

_BY_CLASS = {
    "NetdEPollReactor": "epoll",
    "NetdPollReactor": "poll",
    "NetdSelectReactor": "select",
    "EPollReactor": "epoll",
    "KQueueReactor": "kqueue",
    "IOCPReactor": "iocp",
    "PollReactor": "poll",
    "SelectReactor": "select",
    "AsyncioSelectorReactor": "asyncio",
}

_BSDS = ("freebsd", "openbsd", "netbsd", "dragonfly")


#: Reactors netd installs as its own subclass (see L{netd.fastpath.reactor}).
_NETD_VARIANTS = frozenset({"epoll", "poll", "select"})


class ReactorUnavailable(Exception):
    """The reactor asked for cannot run on this platform or is not installed."""


class ReactorConflict(Exception):
    """C{--reactor} asks for one reactor while another is already installed."""


@dataclass(frozen=True)
class Platform:
    """
    What the reactor choice depends on, and nothing else.

    @ivar system: C{sys.platform} (C{"linux"}, C{"darwin"}, C{"freebsd14"}, C{"win32"}...).
    @ivar hasIOCP: whether C{twisted-iocpsupport} can be imported (Windows only).
    """

    system: str
    hasIOCP: bool = False

    @classmethod
    def current(cls) -> Platform:
        hasIOCP = sys.platform == "win32" and find_spec("twisted_iocpsupport") is not None
        return cls(sys.platform, hasIOCP)


def chooseReactorName(platform: Platform) -> str:
    """
    The best reactor for C{platform}.

    Unlike Twisted's own default (poll on macOS/BSD, select on Windows), netd uses each
    platform's scalable readiness API: a daemon holding thousands of idle connections
    must not walk every descriptor on each wake-up, as poll and select do.
    """
    system = platform.system
    if system.startswith("linux"):
        # epoll(7): O(ready) wake-ups, the only scalable choice on Linux.
        return "epoll"
    if system == "darwin" or system.startswith(_BSDS):
        # kqueue(2) is native to macOS and every BSD.
        return "kqueue"
    if system in ("win32", "cygwin") and platform.hasIOCP:
        # I/O completion ports; needs the compiled twisted-iocpsupport.
        return "iocp"
    if system not in ("win32", "cygwin"):
        # Other POSIX (Solaris, AIX...): poll(2) has no descriptor-number ceiling.
        return "poll"
    # Windows without IOCP: select() is all there is.
    return "select"


def installedReactorName() -> str | None:
    """The netd name of the reactor already installed, or C{None} if none is."""
    module = sys.modules.get("twisted.internet.reactor")
    if module is None:
        return None
    className = type(module).__name__
    name = _BY_CLASS.get(className, className)
    if name == "asyncio":
        loop = getattr(module, "_asyncioEventloop", None)
        if type(loop).__module__.startswith("uvloop"):
            return "uvloop"
    return name


def ensureReactor(requested: str | None, platform: Platform | None = None) -> str:
    """
    Make sure the right reactor is installed and return its name.

    If a reactor is already installed (C{twistd -r NAME}, or an earlier import), it is
    kept; asking for a different one is a conflict, not a silent override.

    @raise ReactorUnavailable: the reactor cannot be installed here.
    @raise ReactorConflict: another reactor is already installed.
    """
    installed = installedReactorName()
    if installed is not None:
        if requested is not None and requested != installed:
            raise ReactorConflict(
                f"--reactor {requested} conflicts with the {installed} reactor already "
                f"installed (drop --reactor or change twistd -r)"
            )
        return installed
    name = requested or chooseReactorName(platform or Platform.current())
    _install(name)
    return name


def _install(name: str) -> None:
    if name not in REACTORS:
        raise ReactorUnavailable(f"unknown reactor {name!r}; choose one of: {', '.join(REACTORS)}")
    try:
        module = importlib.import_module(REACTORS[name])
        if name in _NETD_VARIANTS:
            # Twisted's module imported above proves the platform has it; netd installs
            # its own subclass (eager writes; for epoll, leaner dispatch).
            from netd.fastpath.reactor import install

            install(name)
        elif name == "uvloop":
            import asyncio

            import uvloop

            loop = uvloop.new_event_loop()
            asyncio.set_event_loop(loop)
            module.install(eventloop=loop)
        else:
            module.install()
    except ImportError as e:
        hint = " (pip install 'netd[uvloop]')" if name == "uvloop" else ""
        raise ReactorUnavailable(
            f"the {name} reactor is not available on {sys.platform}: {e}{hint}"
        ) from None
