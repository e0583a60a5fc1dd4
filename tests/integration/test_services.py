"""
Every service of the table over real sockets: the real C{twistd -n netd} on loopback,
plain sockets for clients, SIGTERM to stop.
"""

from __future__ import annotations

import json
import socket
import struct
import time

from twisted.trial.unittest import SynchronousTestCase

from netd.protocols.simple import chargenLines
from tests.integration.daemon import Daemon

LOOP = "127.0.0.1"
RFC868 = 2208988800


def serve(test: SynchronousTestCase, proto: str, *extra: str, udp: bool = True) -> Daemon:
    """Start netd serving C{proto} on tcp:0 (and udp:0) on 127.0.0.1."""
    args = ["--proto", proto, "--listen", f"tcp:0:interface={LOOP}", *extra]
    if udp:
        args += ["--listen", f"udp:0:interface={LOOP}"]
    daemon = Daemon(args, expect=2 if udp else 1)
    test.addCleanup(daemon.stop)
    return daemon


def tcp(daemon: Daemon, service: str) -> socket.socket:
    sock = socket.create_connection(daemon.address(service), timeout=10)
    return sock


def readAll(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def udpAsk(daemon: Daemon, service: str, payload: bytes, expectReply: bool = True) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5 if expectReply else 0.5)
        sock.sendto(payload, daemon.address(service, "UDP"))
        try:
            return sock.recv(65536)
        except TimeoutError:
            return None


class ServiceTests(SynchronousTestCase):
    def test_echo(self) -> None:
        """Echo returns every byte over TCP until the client closes, and each datagram over UDP."""
        daemon = serve(self, "echo")
        payload = bytes(range(256)) * 1000
        with tcp(daemon, "echo") as sock:
            sock.sendall(payload)
            received = b""
            while len(received) < len(payload):
                received += sock.recv(65536)
            self.assertEqual(received, payload)
        self.assertEqual(udpAsk(daemon, "echo", b"ping\x00"), b"ping\x00")
        self.assertEqual(udpAsk(daemon, "echo", b"x" * 60000), b"x" * 60000)

    def test_discard(self) -> None:
        """Discard never answers: the connection stays open and silent, datagrams get nothing."""
        daemon = serve(self, "discard")
        with tcp(daemon, "discard") as sock:
            sock.sendall(b"x" * 100000)
            sock.settimeout(0.5)
            self.assertRaises(socket.timeout, sock.recv, 1)
        self.assertIsNone(udpAsk(daemon, "discard", b"hello", expectReply=False))

    def test_chargen(self) -> None:
        """Chargen streams the RFC 864 pattern; a datagram gets at most 512 bytes of it."""
        daemon = serve(self, "chargen", "--allow-amplification")
        cycle = chargenLines()
        with tcp(daemon, "chargen") as sock:
            received = b""
            while len(received) < 3 * len(cycle):
                received += sock.recv(65536)
        self.assertEqual(received[: 3 * len(cycle)], cycle * 3)
        reply = udpAsk(daemon, "chargen", b"")
        assert reply is not None
        self.assertLessEqual(len(reply), 512)
        self.assertEqual(reply, cycle[: len(reply)])

    def test_daytime(self) -> None:
        """Daytime sends one ctime() line and closes; UDP replies with the same form."""
        daemon = serve(self, "daytime")
        with tcp(daemon, "daytime") as sock:
            line = readAll(sock)
        self.assertTrue(line.endswith(b"\r\n"))
        parsed = time.mktime(time.strptime(line[:-2].decode(), "%a %b %d %H:%M:%S %Y"))
        self.assertLess(abs(parsed - time.time()), 5)
        reply = udpAsk(daemon, "daytime", b"")
        assert reply is not None
        self.assertEqual(len(reply), len(line))

    def test_time(self) -> None:
        """Time sends 4 bytes of seconds since 1900 and closes; any datagram, even empty, gets them."""
        daemon = serve(self, "time")
        with tcp(daemon, "time") as sock:
            data = readAll(sock)
        self.assertEqual(len(data), 4)
        self.assertLess(abs(struct.unpack("!I", data)[0] - (time.time() + RFC868) % 2**32), 5)
        reply = udpAsk(daemon, "time", b"")
        assert reply is not None
        self.assertLess(abs(struct.unpack("!I", reply)[0] - (time.time() + RFC868) % 2**32), 5)

    def test_greeting(self) -> None:
        """Greeting sends its banner and closes; --message changes it."""
        daemon = serve(self, "greeting", udp=False)
        with tcp(daemon, "greeting") as sock:
            self.assertEqual(readAll(sock), b"Thank you for connecting\r\n")
        custom = serve(self, "greeting", "--message", "Welcome to netd", udp=False)
        with tcp(custom, "greeting") as sock:
            self.assertEqual(readAll(sock), b"Welcome to netd\r\n")

    def test_logger(self) -> None:
        """The logger logs the peer's connection, its data and its disconnection; and datagrams."""
        daemon = serve(self, "logger")
        with tcp(daemon, "logger") as sock:
            port = sock.getsockname()[1]
            sock.sendall(b"hello logger")
            daemon.logged(f"127.0.0.1:{port} sent 12 bytes: 'hello logger'")
        daemon.logged(f"127.0.0.1:{port} disconnected")
        udpAsk(daemon, "logger", b"datagram!", expectReply=False)
        daemon.logged("sent 9 bytes: 'datagram!'")

    def test_linelogger(self) -> None:
        """The line logger logs each line and appends it to the JSON-lines output file."""
        output = self.mktemp()
        daemon = serve(self, "linelogger", "--output", output)
        with tcp(daemon, "linelogger") as sock:
            sock.sendall(b"first line\r\nsecond\n\x1b[2Jthird\n")
            daemon.logged("'\\x1b[2Jthird'")
        udpAsk(daemon, "linelogger", b"by udp\n", expectReply=False)
        daemon.logged("'by udp'")
        daemon.stop()
        with open(output) as f:
            lines = [json.loads(line)["line"] for line in f]
        self.assertEqual(lines, ["first line", "second", "\x1b[2Jthird", "by udp"])

    def test_lineloggerDropsOverlongLine(self) -> None:
        """An over-long line is logged as such and the connection is dropped."""
        daemon = serve(self, "linelogger", "--max-line-length", "100", udp=False)
        with tcp(daemon, "linelogger") as sock:
            sock.sendall(b"y" * 5000)
            self.assertEqual(readAll(sock), b"")
        daemon.logged("over the 100-byte limit")
