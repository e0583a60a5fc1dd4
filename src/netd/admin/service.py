"""
L{AdminService}: the admin site on its own listener, and the thread pool its WSGI
application runs in, started and stopped with the daemon.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.application.service import MultiService
from twisted.internet import defer
from twisted.internet.task import deferLater
from twisted.python.threadpool import ThreadPool
from twisted.web.wsgi import WSGIResource

from netd.admin.metrics import daemonRegistry
from netd.admin.site import IDLE_TIMEOUT, AdminSite, adminRoot
from netd.admin.tutorial import makeApplication
from netd.listen.endpoint import parseListen
from netd.serving.listener import Listener

if TYPE_CHECKING:
    from netd.serving.daemon import Daemon

__all__ = ["AdminService"]

#: Threads for the WSGI application at most: it answers in microseconds.
MAX_THREADS = 4
#: How long a stop waits for WSGI requests in flight before stopping the pool anyway.
POOL_GRACE = 5.0
POOL_POLL = 0.01


class AdminService(MultiService):
    """
    Serve the admin site on C{description} (a validated stream endpoint string) for
    C{daemon}.

    It binds through netd's L{Listener}: the port is bound in
    C{privilegedStartService}, C{admin listening on TCP 127.0.0.1:9100} is logged, and a
    busy port ends startup with netd's one-line error.

    The WSGI application gets a thread pool of its own rather than the reactor's: the
    reactor stops its pool with a shutdown trigger of its own (a second stop would fail),
    and a pool that lives exactly as long as this service leaves no thread behind when
    the service stops, on a real reactor or a memory one.

    @ivar registry: the metrics registry of this daemon only.
    @param threadpool: run the WSGI application there instead (started and stopped by
        whoever passes it); for tests.
    """

    def __init__(
        self, daemon: Daemon, description: str, reactor: Any, threadpool: Any = None
    ) -> None:
        super().__init__()
        self.reactor = reactor
        self.ownsPool = threadpool is None
        self.threadpool = threadpool or ThreadPool(0, MAX_THREADS, "netd-admin")
        self.registry = daemonRegistry(daemon)
        wsgi = WSGIResource(reactor, self.threadpool, makeApplication(reactor.seconds))
        site = AdminSite(
            adminRoot(daemon, self.registry, wsgi), reactor=reactor, timeout=IDLE_TIMEOUT
        )
        spec = parseListen(description)
        self.listener = Listener("admin", spec, spec.endpoint(reactor), site)
        self.listener.setServiceParent(self)

    def startService(self) -> None:
        if self.ownsPool and not self.threadpool.started:
            self.threadpool.start()
        super().startService()

    def stopService(self) -> defer.Deferred[None]:
        """Stop listening, then stop the pool once the requests in flight are answered."""
        stopped = defer.maybeDeferred(super().stopService)
        stopped.addCallback(lambda _: defer.ensureDeferred(self._stopPool()))
        return stopped

    async def _stopPool(self) -> None:
        if not (self.ownsPool and self.threadpool.started):
            return
        # A WSGI response is written through the reactor thread (blockingCallFromThread):
        # joining a busy worker from the reactor thread would wait forever.
        deadline = self.reactor.seconds() + POOL_GRACE
        while self.threadpool.working and self.reactor.seconds() < deadline:
            await deferLater(self.reactor, POOL_POLL)
        self.threadpool.stop()
