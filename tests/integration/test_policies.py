"""
Access rules and limits against the real daemon on loopback: other 127.x.y.z source
addresses play other peers.
"""

from __future__ import annotations

import errno
import socket
import time

from twisted.trial.unittest import SynchronousTestCase

from tests.integration.daemon import Daemon

LOOP = "tcp:0:interface=127.0.0.1"


def serve(test: SynchronousTestCase, *args: str, expect: int = 1) -> Daemon:
    daemon = Daemon(list(args), expect=expect)
    test.addCleanup(daemon.stop)
    return daemon


def connectFrom(source: str, address: tuple[str, int], timeout: float = 5.0) -> socket.socket:
    family = socket.AF_INET6 if ":" in source else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.bind((source, 0))
    sock.connect(address)
    return sock


def echoes(sock: socket.socket, payload: bytes = b"ping") -> bool:
    """Whether the connection echoes C{payload} (False if the server closed it)."""
    try:
        sock.sendall(payload)
        return sock.recv(len(payload)) == payload
    except OSError:
        return False


def closedByServer(sock: socket.socket, timeout: float = 5.0) -> bool:
    """Whether the server closes (FIN or RST) within C{timeout}, without us sending."""
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def rssKiB(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


class AccessTests(SynchronousTestCase):
    def test_deniedPeerIsClosedAtOnce(self) -> None:
        """A denied peer is closed at once and logged; other peers are served."""
        daemon = serve(self, "--proto", "echo", "--listen", LOOP, "--deny", "127.0.0.2")
        address = daemon.address("echo")
        with connectFrom("127.0.0.2", address) as refused:
            self.assertTrue(closedByServer(refused))
        with connectFrom("127.0.0.3", address) as allowed:
            self.assertTrue(echoes(allowed))
        daemon.logged("echo refused 127.0.0.2: denied")

    def test_allowListAndRefusedBanner(self) -> None:
        """With an allow list only its networks are served; others read the refusal banner."""
        daemon = serve(
            self,
            "--proto",
            "echo",
            "--listen",
            LOOP,
            "--allow",
            "127.0.0.0/30",
            "--deny",
            "127.0.0.2",
            "--refused-banner",
            "go away\r\n",
        )
        address = daemon.address("echo")
        with connectFrom("127.0.0.1", address) as allowed:
            self.assertTrue(echoes(allowed))
        for outsider in ("127.0.0.2", "127.0.0.9"):
            with connectFrom(outsider, address) as refused:
                self.assertEqual(refused.recv(100), b"go away\r\n")
                self.assertTrue(closedByServer(refused))

    def test_ipv6Rules(self) -> None:
        """Rules apply to IPv6 peers on ::1 too."""
        try:
            socket.create_server(("::1", 0), family=socket.AF_INET6).close()
        except OSError:
            self.skipTest("no IPv6 loopback on this machine")  # pragma: no cover
        daemon = serve(
            self, "--proto", "echo", "--listen", "tcp6:0:interface=\\:\\:1", "--deny", "::1"
        )
        with connectFrom("::1", daemon.address("echo")) as refused:
            self.assertTrue(closedByServer(refused))
        open_ = serve(
            self, "--proto", "echo", "--listen", "tcp6:0:interface=\\:\\:1", "--allow", "::1/128"
        )
        with connectFrom("::1", open_.address("echo")) as allowed:
            self.assertTrue(echoes(allowed))


class LimitTests(SynchronousTestCase):
    def test_perSourceLimitWith200Connections(self) -> None:
        """200 connections from one address: the per-source limit holds, another address is served."""
        daemon = serve(
            self, "--proto", "echo", "--listen", LOOP, "--max-per-source", "50", "--rate", "0"
        )
        address = daemon.address("echo")
        flood = []
        try:
            for _ in range(200):
                flood.append(connectFrom("127.0.0.2", address))
            served = [s for s in flood[:50] if echoes(s)]
            self.assertEqual(len(served), 50)
            refused = [s for s in flood[50:] if closedByServer(s, timeout=2)]
            self.assertEqual(len(refused), 150)
            with connectFrom("127.0.0.3", address) as other:
                self.assertTrue(echoes(other))
            flood[0].close()
            time.sleep(0.2)
            with connectFrom("127.0.0.2", address) as again:
                self.assertTrue(echoes(again))
        finally:
            for sock in flood:
                sock.close()
        daemon.logged("echo refused 127.0.0.2: max-per-source")

    def test_rateLimitRecovers(self) -> None:
        """A source over its connection rate is refused, then served again once tokens refill."""
        daemon = serve(self, "--proto", "echo", "--listen", LOOP, "--rate", "4", "--burst", "4")
        address = daemon.address("echo")
        results = []
        for _ in range(6):
            with connectFrom("127.0.0.4", address) as sock:
                results.append(echoes(sock))
        self.assertEqual(results[:4], [True] * 4)
        self.assertFalse(all(results[4:]))
        time.sleep(0.6)
        with connectFrom("127.0.0.4", address) as sock:
            self.assertTrue(echoes(sock))
        daemon.logged("echo refused 127.0.0.4: rate")

    def test_maxConnectionsRefusesPromptly(self) -> None:
        """Beyond max-connections a client sees a prompt close, not a hang."""
        daemon = serve(self, "--proto", "echo", "--listen", LOOP, "--max-connections", "2")
        address = daemon.address("echo")
        with connectFrom("127.0.0.1", address) as a, connectFrom("127.0.0.5", address) as b:
            self.assertTrue(echoes(a) and echoes(b))
            with connectFrom("127.0.0.6", address) as c:
                start = time.monotonic()
                self.assertTrue(closedByServer(c))
                self.assertLess(time.monotonic() - start, 1.0)

    def test_idleTimeout(self) -> None:
        """A silent connection is closed at the idle timeout and the end is logged with its reason."""
        daemon = serve(self, "--proto", "echo", "--listen", LOOP, "--idle-timeout", "1")
        with connectFrom("127.0.0.1", daemon.address("echo")) as sock:
            self.assertTrue(echoes(sock))
            start = time.monotonic()
            self.assertTrue(closedByServer(sock, timeout=5))
            self.assertGreaterEqual(time.monotonic() - start, 0.9)
            self.assertLess(time.monotonic() - start, 2.5)
        line = daemon.logged("idle timeout")
        self.assertIn("4 bytes in, 4 bytes out", line)

    def test_maxLifetime(self) -> None:
        """A streaming connection ends at its maximum lifetime even while data flows."""
        daemon = serve(self, "--proto", "chargen", "--listen", LOOP, "--max-lifetime", "1")
        with connectFrom("127.0.0.1", daemon.address("chargen")) as sock:
            start, total = time.monotonic(), 0
            while chunk := sock.recv(65536):
                total += len(chunk)
                self.assertLess(time.monotonic() - start, 10)
            self.assertGreater(total, 0)
            self.assertLess(time.monotonic() - start, 3)
        daemon.logged("max lifetime")


class BackpressureTests(SynchronousTestCase):
    def test_nonReadingClientsCostBoundedMemory(self) -> None:
        """Clients that stop reading (chargen) or send without reading (echo) leave memory bounded."""
        chargen = serve(self, "--proto", "chargen", "--listen", LOOP)
        echo = serve(self, "--proto", "echo", "--listen", LOOP)
        base = {d: rssKiB(d.process.pid) for d in (chargen, echo)}
        sleepers = [connectFrom("127.0.0.1", chargen.address("chargen")) for _ in range(10)]
        self.addCleanup(lambda: [s.close() for s in sleepers])
        writer = connectFrom("127.0.0.1", echo.address("echo"))
        self.addCleanup(writer.close)
        writer.setblocking(False)
        sent, chunk = 0, b"x" * 65536
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and sent < 200 * 2**20:
            try:
                sent += writer.send(chunk)
            except BlockingIOError:
                time.sleep(0.01)
        time.sleep(1.0)
        growth = {d: rssKiB(d.process.pid) - base[d] for d in (chargen, echo)}
        # Ten stalled chargen readers and an echo client that sent what the kernel would
        # take: each costs about one 64 KiB write buffer, not what it was offered.
        self.assertLess(growth[chargen], 8 * 1024, growth)
        self.assertLess(growth[echo], 8 * 1024, growth)
        self.assertLess(sent, 200 * 2**20)  # the server stopped reading: the sender blocked


class DatagramGuardTests(SynchronousTestCase):
    def askFrom(self, port: int, address: tuple[str, int]) -> bytes | None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(0.5)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError as e:
                if e.errno == errno.EACCES:
                    self.skipTest("binding a port below 1024 needs root here")  # pragma: no cover
                raise
            sock.sendto(b"loop?", address)
            try:
                return sock.recv(100)
            except TimeoutError:
                return None

    def test_noReplyToServicePorts(self) -> None:
        """UDP echo ignores datagrams from ports 7 and 19 (and 1023, 2049), and answers a client port."""
        daemon = serve(self, "--proto", "echo", "--listen", "udp:0:interface=127.0.0.1")
        address = daemon.address("echo", "UDP")
        for port in (7, 19, 1023, 2049):
            self.assertIsNone(self.askFrom(port, address), f"answered source port {port}")
        self.assertEqual(self.askFrom(0, address), b"loop?")
        daemon.logged("dropped datagrams from 127.0.0.1: source-port")
