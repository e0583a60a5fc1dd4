"""
C{/metrics}: the Prometheus text format, written by C{prometheus_client} from a registry
of this daemon's own (never the process-global one).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from twisted.web.server import Request

from netd.admin.collector import DaemonCollector
from netd.admin.page import Page

if TYPE_CHECKING:
    from netd.serving.daemon import Daemon

__all__ = ["MetricsResource", "daemonRegistry"]


def daemonRegistry(daemon: Daemon) -> CollectorRegistry:
    """
    A registry of C{daemon}'s service metrics plus the process and platform ones.  One per
    daemon: two daemons in one process (tests) never see each other's series.
    """
    registry = CollectorRegistry()
    registry.register(DaemonCollector(daemon))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry


class MetricsResource(Page):
    """Every collector of C{registry}, collected now."""

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__()
        self.registry = registry

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"content-type", CONTENT_TYPE_LATEST.encode("ascii"))
        request.setHeader(b"cache-control", b"no-store")
        return generate_latest(self.registry)
