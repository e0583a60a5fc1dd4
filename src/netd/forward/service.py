"""
A forward service as netd's configuration sees it: L{Forwarding} stands where a
protocol stands in a L{netd.config.model.ServiceConfig}, so a forward service gets the
listeners, admission rules, limits, timeouts, per-connection log line, reload and
graceful stop of every other service without a line of its own.

Its keys (C{forward}, C{send-proxy}) are read by L{forwardingFrom}, shared by the
config file and the command line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from twisted.application.service import Service
from zope.interface import implementer

from netd.forward.connector import ForwardFactory
from netd.forward.header import VERSIONS
from netd.forward.stats import ForwardStats
from netd.forward.target import BadTarget, Target, parseTarget
from netd.interfaces import STREAM, INetdProtocol
from netd.plugin import Served, ServiceContext

__all__ = [
    "EXCLUSIVE_KEYS",
    "FORWARD_KEYS",
    "ForwardCounters",
    "ForwardError",
    "Forwarding",
    "forwardingFrom",
    "totalStats",
]


class ForwardError(ValueError):
    """
    A forward service netd cannot serve, in one line.  (The configuration's own error
    types live above this package; the config file and the command line translate.)

    @ivar problem: what is wrong.
    @ivar key: the key at fault (C{forward} or C{send-proxy}).
    """

    def __init__(self, problem: str, key: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.key = key


#: The keys of a forward service, besides C{listen}, C{enabled} and the policy keys.
FORWARD_KEYS = ("forward", "send-proxy")
#: Keys that say what serves a connection: a forwarded connection is served by the
#: backend, so none of them can go with C{forward}.
EXCLUSIVE_KEYS = ("protocol", "exec", "wait")


class ForwardCounters(Service):
    """
    Holds one configuration's L{ForwardStats} in the service tree, where the metrics
    collector finds them (a reload that changes the target adds another; the collector
    sums them, so counters never go back).
    """

    def __init__(self, stats: ForwardStats) -> None:
        self.stats = stats


def totalStats(service: Any) -> ForwardStats | None:
    """
    The relay counters of a service (a L{netd.daemon.ServiceRuntime}), summed over every
    configuration it has run; C{None} for a service that never forwarded.
    """
    found = [child.stats for child in _tree(service) if isinstance(child, ForwardCounters)]
    if not found:
        return None
    total = ForwardStats()
    for stats in found:
        total.add(stats)
    return total


def _tree(service: Any) -> list[Any]:
    found = [service]
    for child in getattr(service, "services", ()):
        found.extend(_tree(child))
    return found


@implementer(INetdProtocol)
@dataclass(frozen=True)
class Forwarding:
    """
    Relay each connection to C{target}, announcing the client with a PROXY header of
    version C{sendProxy} when set.  Equal values mean an unchanged service on reload.
    """

    target: Target
    sendProxy: str | None = None
    name: str = "forward"
    description: str = "Relays each connection to a backend (xinetd's redirect)"
    transports: frozenset[str] = frozenset({STREAM})
    options: tuple[Any, ...] = ()
    amplifies: bool = False
    defaultPort: int = field(default=0)

    def build(self, context: ServiceContext) -> Served:
        stats = ForwardStats()
        context.addService(ForwardCounters(stats))
        # The service's clock is its reactor (netd passes the reactor as the clock).
        factory = ForwardFactory(context.name, self.target, self.sendProxy, context.clock, stats)
        return Served(stream=factory)


def forwardingFrom(values: Mapping[str, Any]) -> Forwarding:
    """
    The forwarding of a service whose keys are C{values} (a config table, or the
    options given on the command line).

    @raise ForwardError: naming the key, for C{send-proxy} without C{forward}, C{forward}
        with a key of L{EXCLUSIVE_KEYS}, a bad target (a host name among them) or an
        unknown PROXY version.
    """
    if "forward" not in values:
        raise ForwardError(
            "needs forward (the PROXY header goes to a forward target)", "send-proxy"
        )
    for key in EXCLUSIVE_KEYS:
        if key in values:
            raise ForwardError(
                f"forward and {key} cannot be combined: a forwarded connection is served by "
                "its backend",
                "forward",
            )
    try:
        target = parseTarget(values["forward"])
    except BadTarget as e:
        raise ForwardError(str(e), "forward") from None
    return Forwarding(target, _sendProxy(values.get("send-proxy")))


def _sendProxy(value: object) -> str | None:
    """C{send-proxy}: v1 or v2; absent, C{false} or C{"off"} mean none."""
    if value is None or value is False or value == "off":
        return None
    if value in VERSIONS:
        return str(value)
    raise ForwardError(f"expected v1, v2 or off, got {value!r}", "send-proxy")
