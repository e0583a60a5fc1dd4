"""
A backend built on Twisted's own C{haproxy:} server endpoint, run as its own process by
the forward tests: it is the consumer of the PROXY headers netd sends.

    python proxybackend.py        # prints "listening PORT" once bound on 127.0.0.1

For each connection, on its first bytes (by then the header has been read), it answers
one line, C{PEER_HOST PEER_PORT HOST_HOST HOST_PORT}, as Twisted reports the client and
the destination, then closes.  It exits with its parent's death or SIGTERM.
"""

from __future__ import annotations

import sys
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import react


class Report(Protocol):
    """Tells the client who Twisted says it is."""

    def dataReceived(self, data: bytes) -> None:
        peer, host = self.transport.getPeer(), self.transport.getHost()
        line = f"{getattr(peer, 'host', '-')} {getattr(peer, 'port', '-')} "
        line += f"{getattr(host, 'host', '-')} {getattr(host, 'port', '-')}\n"
        self.transport.write(line.encode("ascii"))
        self.transport.loseConnection()


async def main(reactor: Any) -> None:
    endpoint = serverFromString(reactor, "haproxy:tcp:0:interface=127.0.0.1")
    port = await endpoint.listen(Factory.forProtocol(Report))
    sys.stdout.write(f"listening {port.getHost().port}\n")
    sys.stdout.flush()
    await Deferred()  # until SIGTERM stops the reactor


if __name__ == "__main__":
    react(lambda reactor: Deferred.fromCoroutine(main(reactor)))
