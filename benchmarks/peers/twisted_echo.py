"""The canonical Twisted echo server (twistedmatrix.com's front-page example): the baseline."""
import sys

from twisted.internet import endpoints, protocol, reactor


class Echo(protocol.Protocol):
    def dataReceived(self, data):
        self.transport.write(data)


class EchoFactory(protocol.Factory):
    def buildProtocol(self, addr):
        return Echo()


port = sys.argv[1] if len(sys.argv) > 1 else "0"
d = endpoints.serverFromString(reactor, f"tcp:{port}:interface=127.0.0.1").listen(EchoFactory())
d.addCallback(lambda p: print("PORT", p.getHost().port, flush=True))
reactor.run()
