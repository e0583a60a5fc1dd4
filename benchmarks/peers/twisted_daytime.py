"""A five-line Twisted daytime server (RFC 867): the write-and-close baseline."""
import sys
import time

from twisted.internet import endpoints, protocol, reactor


class Daytime(protocol.Protocol):
    def connectionMade(self):
        self.transport.write(time.strftime("%A, %B %d, %Y %H:%M:%S-%Z\r\n").encode())
        self.transport.loseConnection()


port = sys.argv[1] if len(sys.argv) > 1 else "0"
factory = protocol.Factory.forProtocol(Daytime)
d = endpoints.serverFromString(reactor, f"tcp:{port}:interface=127.0.0.1").listen(factory)
d.addCallback(lambda p: print("PORT", p.getHost().port, flush=True))
reactor.run()
