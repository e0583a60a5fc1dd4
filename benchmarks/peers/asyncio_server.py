"""
asyncio (optionally on uvloop) echo and daytime peers, written as the asyncio docs'
Protocol examples: C{asyncio_server.py echo|daytime|udp-echo [PORT] [--uvloop]}.
"""
import asyncio
import sys
import time


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


class Daytime(asyncio.Protocol):
    def connection_made(self, transport):
        transport.write(time.strftime("%A, %B %d, %Y %H:%M:%S-%Z\r\n").encode())
        transport.close()


class UdpEcho(asyncio.DatagramProtocol):
    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.transport.sendto(data, addr)


async def main(kind, port):
    loop = asyncio.get_running_loop()
    if kind == "udp-echo":
        transport, _ = await loop.create_datagram_endpoint(UdpEcho, local_addr=("127.0.0.1", port))
        bound = transport.get_extra_info("sockname")[1]
    else:
        factory = Echo if kind == "echo" else Daytime
        server = await loop.create_server(factory, "127.0.0.1", port)
        bound = server.sockets[0].getsockname()[1]
    print("PORT", bound, flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    words = [a for a in sys.argv[1:] if not a.startswith("--")]
    coroutine = main(words[0], int(words[1]) if len(words) > 1 else 0)
    if "--uvloop" in sys.argv:
        import uvloop

        uvloop.run(coroutine)
    else:
        asyncio.run(coroutine)
