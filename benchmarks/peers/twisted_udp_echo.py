"""The Twisted UDP echo of the howto (a DatagramProtocol writing each datagram back)."""
import sys

from twisted.internet import protocol, reactor


class Echo(protocol.DatagramProtocol):
    def datagramReceived(self, data, addr):
        self.transport.write(data, addr)


port = reactor.listenUDP(int(sys.argv[1]) if len(sys.argv) > 1 else 0, Echo(), "127.0.0.1")
print("PORT", port.getHost().port, flush=True)
reactor.run()
