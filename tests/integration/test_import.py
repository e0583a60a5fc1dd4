"""
C{netd import} end to end: the real command on the fixtures, and the imported built-in
and forward services served by the real daemon, talked to with plain sockets.

The imported files listen on the classic ports on every interface; to run beside other
tests without root, each listener is moved to port 0 on loopback (same family, same
kind) before the daemon starts: everything else in the file is served as imported.
"""

from __future__ import annotations

import socket
import tomllib
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from netd.importers.inetd import importInetd
from netd.importers.model import ImportedConfig
from netd.importers.ports import PortTable
from netd.importers.writer import render
from netd.importers.xinetd import importXinetd
from tests.integration.daemon import NETD, Daemon, run

DATA = Path(__file__).resolve().parents[1] / "importdata"
TIMEOUT = 10.0


def onLoopback(listen: str) -> str:
    """C{listen} moved to port 0 on the loopback address of its own family."""
    kind, _, rest = listen.partition(":")
    ipv6 = kind == "tcp6" or "interface=\\:" in rest
    interface = "\\:\\:1" if ipv6 else "127.0.0.1"
    return f"{kind}:0:interface={interface}"


def servable(config: ImportedConfig) -> str:
    """
    The services of C{config} that today's netd serves (built-ins and forwards, not
    programs) and that are enabled, on loopback port 0.
    """
    config.services = [
        s for s in config.services if (s.internal or "forward" in s.keys) and s.enabled
    ]
    for service in config.services:
        service.keys["listen"] = [onLoopback(listen) for listen in service.keys["listen"]]
    return render(config)


def family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def tcpExchange(address: tuple[str, int], send: bytes = b"", source: str | None = None) -> bytes:
    """Connect, send C{send}, close our side, and read until the server closes."""
    with socket.socket(family(address[0]), socket.SOCK_STREAM) as sock:
        sock.settimeout(TIMEOUT)
        if source is not None:
            sock.bind((source, 0))
        sock.connect(address)
        sock.sendall(send)
        sock.shutdown(socket.SHUT_WR)
        received = b""
        while len(received) < 1 << 16:
            chunk = sock.recv(4096)
            if not chunk:
                break
            received += chunk
        return received


def receive(sock: socket.socket, size: int) -> bytes:
    """Exactly C{size} bytes, or fewer if the peer closes first."""
    received = b""
    while len(received) < size:
        chunk = sock.recv(size - len(received))
        if not chunk:
            break
        received += chunk
    return received


def udpExchange(address: tuple[str, int], send: bytes) -> bytes:
    with socket.socket(family(address[0]), socket.SOCK_DGRAM) as sock:
        sock.settimeout(TIMEOUT)
        sock.sendto(send, address)
        return sock.recv(65536)


class CommandTests(SynchronousTestCase):
    def test_importCommand(self) -> None:
        """`netd import inetd FILE` prints TOML tomllib reads, and the notes on stderr, exit status 0."""
        result = run(NETD + ["import", "inetd", str(DATA / "inetd.conf")])
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("tftp", tomllib.loads(result.stdout)["services"])
        self.assertIn("tcpd unwrapped", result.stderr)

    def test_badFilesAreOneLine(self) -> None:
        """An unreadable or garbled file is one line on stderr, exit status 1, never a traceback."""
        garbled = self.mktemp()
        Path(garbled).write_text("echo stream tcp\n")
        for argv in (["xinetd", self.mktemp()], ["inetd", garbled], ["xinetd", str(DATA)]):
            result = run(NETD + ["import", *argv])
            self.assertEqual(result.returncode, 1, result.stderr)
            self.assertEqual(len(result.stderr.splitlines()), 1, result.stderr)
            self.assertNotIn("Traceback", result.stderr)


class ServeTests(SynchronousTestCase):
    def serve(self, config: ImportedConfig, listeners: int) -> Daemon:
        path = self.mktemp()
        Path(path).write_text(servable(config))
        daemon = Daemon(["--config", path], command=NETD, expect=listeners)
        self.addCleanup(daemon.stop)
        return daemon

    def test_inetdBuiltins(self) -> None:
        """The internal services of a Debian inetd.conf serve echo, discard, daytime and time over TCP and UDP."""
        daemon = self.serve(importInetd(str(DATA / "inetd.conf"), PortTable(None)), 7)
        self.assertEqual(tcpExchange(daemon.address("echo"), b"hello\r\n"), b"hello\r\n")
        self.assertEqual(udpExchange(daemon.address("echo-udp", "UDP"), b"ping"), b"ping")
        self.assertEqual(tcpExchange(daemon.address("discard"), b"x" * 10000), b"")
        self.assertTrue(tcpExchange(daemon.address("daytime")).endswith(b"\r\n"))
        self.assertTrue(udpExchange(daemon.address("daytime-udp", "UDP"), b"").endswith(b"\r\n"))
        # time was tcp6-only: IPv4 clients are denied, the IPv6 loopback is served.
        self.assertEqual(len(tcpExchange(daemon.address("time"))), 4)

    def test_xinetdRedirect(self) -> None:
        """An xinetd redirect becomes a forward that relays to its backend, behind the service's only_from."""
        backend = socket.socket()
        self.addCleanup(backend.close)
        backend.bind(("127.0.0.1", 0))
        backend.listen()
        backend.settimeout(TIMEOUT)
        conf = self.mktemp()
        Path(conf).write_text(
            "service api\n{\n\ttype = UNLISTED\n\tsocket_type = stream\n\tport = 6443\n"
            f"\twait = no\n\tredirect = 127.0.0.1 {backend.getsockname()[1]}\n"
            "\tonly_from = 127.0.0.1\n}\n"
        )
        daemon = self.serve(importXinetd(conf, PortTable(None)), 1)
        with socket.create_connection(daemon.address("api"), timeout=TIMEOUT) as client:
            client.sendall(b"to the backend")
            accepted, _ = backend.accept()
            with accepted:
                accepted.settimeout(TIMEOUT)
                self.assertEqual(receive(accepted, 14), b"to the backend")
                accepted.sendall(b"and back")
                self.assertEqual(receive(client, 8), b"and back")

    def test_xinetdBuiltins(self) -> None:
        """Debian's /etc/xinetd.d files, switched on by defaults' enabled, serve with only_from and instances applied."""
        conf = self.mktemp()
        Path(conf).write_text(
            "defaults\n{\n"
            "\tenabled = echo-stream echo-dgram daytime-stream time-dgram\n"
            "\tonly_from = 127.0.0.1\n\tinstances = 5\n\tlog_type = SYSLOG daemon info\n"
            f"}}\n\nincludedir {DATA / 'xinetd.d'}\n"
        )
        config = importXinetd(conf, PortTable(None))
        daemon = self.serve(config, 4)
        echo = daemon.address("echo-stream")
        self.assertEqual(tcpExchange(echo, b"hello\r\n"), b"hello\r\n")
        self.assertEqual(udpExchange(daemon.address("echo-dgram", "UDP"), b"ping"), b"ping")
        self.assertTrue(tcpExchange(daemon.address("daytime-stream")).endswith(b"\r\n"))
        self.assertEqual(len(udpExchange(daemon.address("time-dgram", "UDP"), b"")), 4)
        # only_from = 127.0.0.1 became allow = ["127.0.0.1/32"]: another loopback
        # source is refused (closed without an echo), and the refusal is logged.
        try:
            reply = tcpExchange(echo, b"hello\r\n", source="127.0.0.2")
        except ConnectionResetError:
            reply = b""
        self.assertEqual(reply, b"")
        daemon.logged("echo-stream refused 127.0.0.2: denied", timeout=TIMEOUT)
