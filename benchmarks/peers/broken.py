"""
Deliberately broken tiny servers, for the load generator's self-test (C{selftest.py}):
each misbehaves in one way the load generator must report.

    broken.py MODE      prints "PORT n", serves 127.0.0.1:n until killed

TCP: good (a correct echo), corrupt (flips the byte at stream offset 10 of each
connection), truncate (echoes 100 bytes, then closes), drop (swallows stream bytes
100-109), duplicate (echoes bytes 100-109 twice), crosstalk (echoes each connection's
bytes to the connection opened before it), hangup (closes each connection 0.2 s after
its first bytes), daytime (a correct daytime line), short (3 bytes, close), nocrlf (a
line without CRLF), silent (accepts, never answers, never closes).
UDP (same mode names, on the same port): good, corrupt (flips a payload byte), drop
(drops every 5th datagram), duplicate (answers each datagram twice).
"""

import asyncio
import sys

MODE = sys.argv[1]
LINE = b"Wednesday, December 2, 2026 18:00:00-UTC\r\n"
conns: list["Echo"] = []


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.offset = transport, 0
        self.previous = conns[-1] if conns else None
        conns.append(self)
        if MODE == "daytime":
            transport.write(LINE)
            transport.close()
        elif MODE == "short":
            transport.write(b"Wed")
            transport.close()
        elif MODE == "nocrlf":
            transport.write(LINE.rstrip())
            transport.close()

    def data_received(self, data):
        start, self.offset = self.offset, self.offset + len(data)
        out = bytearray(data)
        if MODE == "corrupt" and start <= 10 < self.offset:
            out[10 - start] ^= 0x20
        elif MODE in ("drop", "duplicate") and start < 110 and self.offset > 100:
            lo, hi = max(100, start) - start, min(110, self.offset) - start
            out[lo:hi] = b"" if MODE == "drop" else out[lo:hi] * 2
        elif MODE == "truncate" and self.offset > 100:
            out = out[: max(0, 100 - start)]
            self.transport.write(bytes(out))
            self.transport.close()
            return
        elif MODE == "hangup" and start == 0:
            asyncio.get_running_loop().call_later(0.2, self.transport.close)
        elif MODE == "silent":
            return
        target = self.previous if MODE == "crosstalk" and self.previous else self
        target.transport.write(bytes(out))


class UdpEcho(asyncio.DatagramProtocol):
    count = 0

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.count += 1
        if MODE == "drop" and self.count % 5 == 0:
            return
        if MODE == "corrupt":
            data = data[:-1] + bytes([data[-1] ^ 1])
        self.transport.sendto(data, addr)
        if MODE == "duplicate":
            self.transport.sendto(data, addr)


async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    await loop.create_datagram_endpoint(UdpEcho, local_addr=("127.0.0.1", port))
    print("PORT", port, flush=True)
    await asyncio.Event().wait()


asyncio.run(main())
