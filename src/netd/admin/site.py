"""
The admin site's URL space: C{/healthz}, C{/metrics} and C{/services} are
C{twisted.web} resources, C{/hello} and C{/localtime} go to the WSGI application,
anything else is 404.  And the quiet L{Site} that serves it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from twisted.web import http
from twisted.web.pages import notFound
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request, Site

from netd.admin.health import HealthResource
from netd.admin.metrics import MetricsResource
from netd.admin.status import ServicesResource
from netd.admin.tutorial import ROUTES

if TYPE_CHECKING:
    from netd.serving.daemon import Daemon

__all__ = ["AdminRoot", "AdminSite", "adminRoot"]

#: How long an idle HTTP connection is kept (a scraper reconnects cheaply).
IDLE_TIMEOUT = 60


class AdminRoot(Resource):
    """
    The root: named children, plus the WSGI application's paths handed to it whole.

    A L{WSGIResource} mounted as the child C{hello} would see C{SCRIPT_NAME=/hello} and
    an empty C{PATH_INFO}; putting the segment back gives it C{PATH_INFO=/hello}, as if
    it were mounted at the root, so the application routes on its own paths.
    """

    def __init__(self, wsgi: IResource, wsgiPaths: Iterable[bytes]) -> None:
        super().__init__()
        self.wsgi = wsgi
        self.wsgiPaths = frozenset(wsgiPaths)

    def getChild(self, path: bytes, request: Request) -> IResource:
        if path in self.wsgiPaths:
            assert request.prepath is not None and request.postpath is not None
            request.prepath.pop()
            request.postpath.insert(0, path)
            return self.wsgi
        return notFound()


def adminRoot(daemon: Daemon, registry: CollectorRegistry, wsgi: IResource) -> AdminRoot:
    """The whole admin URL space for C{daemon}; C{wsgi} hosts the tutorial application."""
    root = AdminRoot(wsgi, (path.lstrip("/").encode("ascii") for path in ROUTES))
    root.putChild(b"healthz", HealthResource(daemon))
    root.putChild(b"metrics", MetricsResource(registry))
    root.putChild(b"services", ServicesResource(daemon))
    return root


class AdminSite(Site):
    """
    A site that writes no access log (a scraper every few seconds would flood netd's
    log) and keeps no once-a-second timer for one, logs no factory start and stop, and
    shows no traceback to clients.
    """

    noisy = False
    displayTracebacks = False

    def startFactory(self) -> None:
        """No access log to open, no log timestamp to keep fresh."""

    def log(self, request: http.Request) -> None:
        """No access log line."""
