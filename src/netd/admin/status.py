"""
C{/services}: what each running service is, where it listens, and what it has done.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.web.server import Request

from netd.address import formatAddress
from netd.admin.page import Page, renderJSON
from netd.admission.access import AccessRules
from netd.admission.policy import Policy
from netd.config.policy import POLICY_KEYS

if TYPE_CHECKING:
    from netd.serving.daemon import Daemon, ServiceRuntime

__all__ = ["ServicesResource", "describeServices"]


def describeServices(daemon: Daemon) -> dict[str, Any]:
    """The running services as plain data, in configuration order."""
    return {"services": [describeService(runtime) for runtime in daemon.runtimes()]}


def describeService(runtime: ServiceRuntime) -> dict[str, Any]:
    """
    One service: protocol, listeners, settings, policy, live connections and counters
    (C{stats} counts bytes of finished connections; C{/metrics} adds the live ones).
    """
    config = runtime.config
    described = {
        "name": runtime.config.name,
        "protocol": config.protocol.name,
        "listeners": [
            describeListener(runtime, spec.description, spec.kind) for spec in config.listen
        ],
        "settings": dict(config.settings),
        "policy": describePolicy(config.policy),
        "connections": len(runtime.guard.connections),
        "stats": runtime.guard.stats.snapshot(),
    }
    forward = describeForward(runtime)
    if forward is not None:
        described["forward"] = forward
    return described


def describeForward(runtime: ServiceRuntime) -> dict[str, Any] | None:
    """
    A forward service's target, PROXY version and relay counters (summed over the
    configurations reloads replaced); C{None} for any other service.
    """
    from netd.forward.service import Forwarding, totalStats

    forwarding = runtime.config.protocol
    stats = totalStats(runtime)
    if not isinstance(forwarding, Forwarding) or stats is None:
        return None
    return {
        "target": forwarding.target.description,
        "send-proxy": forwarding.sendProxy,
        "stats": stats.snapshot(),
    }


def describeListener(runtime: ServiceRuntime, description: str, kind: str) -> dict[str, Any]:
    """A listener: the address really bound (C{None} when down) and why it is down, if known."""
    listener = runtime.listeners.get(description)
    port = listener.port if listener is not None else None
    return {
        "description": description,
        "kind": kind,
        "address": formatAddress(port.getHost()) if port is not None else None,
        "up": port is not None,
        "error": runtime.failed.get(description),
    }


def describePolicy(policy: Policy) -> dict[str, Any]:
    """
    The policy under its config-file key names, rules as netd normalized them
    (C{10.0.0.0/8}), so what is shown is what the file would say and what is enforced.
    """
    rules = policy.access.describe()
    return {
        key.name: rules[key.name] if key.name in rules else _plain(getattr(policy, key.attribute))
        for key in POLICY_KEYS
    }


def _plain(value: Any) -> Any:
    """A policy value as JSON can hold it: other rule sets (trusted proxies) as networks."""
    if isinstance(value, AccessRules):
        rules = value.describe()
        return rules if rules["deny"] else rules["allow"]
    return value


class ServicesResource(Page):
    """The running services as one line of JSON."""

    def __init__(self, daemon: Daemon) -> None:
        super().__init__()
        self.daemon = daemon

    def render_GET(self, request: Request) -> bytes:
        return renderJSON(request, describeServices(self.daemon))
