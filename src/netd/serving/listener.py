"""
One listening socket as a service: bound in C{privilegedStartService}, logged when up.

Written instead of L{twisted.application.internet.StreamServerEndpointService} because
netd needs the same thing for datagram endpoints, and one log line per listener naming the
address really bound (the port chosen for C{tcp:0}).
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger
from twisted.python.failure import Failure

from netd.address import formatAddress, transportName
from netd.errors import StartupError
from netd.listen.endpoint import ListenSpec

__all__ = ["Listener"]


class Listener(Service):
    """
    Listen on C{endpoint} with C{target} (a protocol factory, or a datagram protocol).

    A bind failure at startup is raised from C{privilegedStartService} as a one-line
    L{netd.errors.StartupError}, so a busy port aborts the daemon instead of leaving it half up.

    @ivar port: the listening port once bound, else C{None}.
    """

    log = Logger()

    def __init__(self, serviceName: str, spec: ListenSpec, endpoint: Any, target: Any) -> None:
        self.serviceName = serviceName
        self.spec = spec
        self.endpoint = endpoint
        self.target = target
        self.port: IListeningPort | None = None
        self._listening: defer.Deferred[IListeningPort] | None = None

    def privilegedStartService(self) -> None:
        """Bind (once: a listener added to a running service is started again)."""
        if self._listening is not None:
            return
        super().privilegedStartService()
        self._listening = self.endpoint.listen(self.target)
        failures: list[Failure] = []
        self._listening.addCallbacks(self._listened, failures.append)
        if failures:
            reason = failures[0].value
            error = getattr(reason, "socketError", None) or reason
            raise StartupError(
                f"{self.serviceName}: cannot listen on {self.spec.description}: "
                f"{getattr(error, 'strerror', None) or error}"
            )

    def startService(self) -> None:
        if self._listening is None:
            self.privilegedStartService()
        super().startService()

    def _listened(self, port: IListeningPort) -> IListeningPort:
        self.port = port
        host = port.getHost()
        self.log.info(
            "{service} listening on {transport} {address}",
            service=self.serviceName,
            transport=transportName(host),
            address=formatAddress(host),
        )
        return port

    def stopService(self) -> defer.Deferred[None] | None:
        super().stopService()
        listening, self._listening = self._listening, None
        if listening is None:
            return None
        if self.port is None:
            listening.cancel()
            return None
        port, self.port = self.port, None
        return defer.maybeDeferred(port.stopListening)
