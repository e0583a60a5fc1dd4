"""
C{/healthz}: 200 while every configured listener is up, 503 naming what is not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.web.server import Request

from netd.admin.page import Page, renderJSON

if TYPE_CHECKING:
    from netd.serving.daemon import Daemon

__all__ = ["HealthResource"]


class HealthResource(Page):
    """
    The daemon's health for a load balancer or an orchestrator's probe: the status code
    is the answer, the body says why in one line.
    """

    def __init__(self, daemon: Daemon) -> None:
        super().__init__()
        self.daemon = daemon

    def render_GET(self, request: Request) -> bytes:
        problems = self.daemon.problems()
        if not problems:
            return renderJSON(request, {"status": "ok"})
        return renderJSON(request, {"status": "unavailable", "reason": "; ".join(problems)}, 503)
