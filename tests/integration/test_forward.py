"""
Port forwarding with the real C{twistd -n netd --forward ...} on loopback, in front of
real backends: netd's own echo in another process, a backend on plain sockets that
answers only after the end of its input (half-close), Twisted's own C{haproxy:} server
endpoint in another process, and a real HAProxy reading netd's PROXY header.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable

from twisted.trial.unittest import SynchronousTestCase

from tests.adversarial.haproxy import haproxyCommand
from tests.integration.daemon import NETD, STARTUP_TIMEOUT, TWISTD, Daemon, _dieWithParent, run
from tests.integration.test_admin import metrics
from tests.integration.test_policies import rssKiB
from tests.test_tls import writePKI

LOOP = "tcp:0:interface=127.0.0.1"
TIMEOUT = 10.0
MIB = 1024 * 1024
BACKEND = os.path.join(os.path.dirname(__file__), "proxybackend.py")


def payload(size: int = MIB) -> bytes:
    """Bytes that show any loss, duplication or reordering."""
    return (bytes(range(251)) * (size // 251 + 1))[:size]


def readAll(sock: socket.socket) -> bytes:
    """Everything until the end of input (the socket's timeout bounds each wait)."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def readExactly(sock: socket.socket, size: int) -> bytes:
    chunks, count = [], 0
    while count < size:
        chunk = sock.recv(min(65536, size - count))
        if not chunk:
            break
        chunks.append(chunk)
        count += len(chunk)
    return b"".join(chunks)


def sendInThread(sock: socket.socket, data: bytes, shutdown: bool) -> threading.Thread:
    """Send C{data} (then shut down sending) while the caller reads: neither side can stall."""

    def send() -> None:
        sock.sendall(data)
        if shutdown:
            sock.shutdown(socket.SHUT_WR)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def forward(test: SynchronousTestCase, target: str, *extra: str) -> Daemon:
    """netd forwarding a loopback listener to C{target}, with its admin site."""
    daemon = Daemon(["--forward", target, "--listen", LOOP, "--admin", LOOP, *extra], expect=2)
    test.addCleanup(daemon.stop)
    return daemon


class OneShotBackend:
    """
    A backend on plain sockets for one connection, served by C{answer(connection)} in a
    thread; the connection is closed when it returns.
    """

    def __init__(self, test: SynchronousTestCase, answer: Callable[[socket.socket], None]) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(TIMEOUT)
        test.addCleanup(self.listener.close)
        self.address = self.listener.getsockname()
        self.answer = answer
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        connection, _ = self.listener.accept()
        with connection:
            connection.settimeout(TIMEOUT)
            self.answer(connection)


def echoAfterEnd(connection: socket.socket) -> None:
    """Read until the end of input, then send it all back: a lost half-close gets nothing."""
    connection.sendall(readAll(connection))


class ProxyBackend:
    """Twisted's C{haproxy:} server endpoint in its own process (L{proxybackend})."""

    def __init__(self, test: SynchronousTestCase) -> None:
        self.process = subprocess.Popen(
            [sys.executable, BACKEND],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            preexec_fn=_dieWithParent,
        )
        test.addCleanup(self.stop)
        found: list[str] = []
        reader = threading.Thread(
            target=lambda: found.append(self.process.stdout.readline()),  # type: ignore[union-attr]
            daemon=True,
        )
        reader.start()
        reader.join(STARTUP_TIMEOUT)
        if not found or not found[0].startswith("listening "):
            raise AssertionError(f"the haproxy: backend did not start: {found!r}")
        self.port = int(found[0].split()[1])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


def whoAmI(address: tuple[str, int], prefix: bytes = b"") -> tuple[list[str], tuple[str, int]]:
    """Ask the L{ProxyBackend} through netd who it thinks we are; also our own address."""
    with socket.create_connection(address, timeout=TIMEOUT) as sock:
        sock.sendall(prefix + b"?")
        line = readAll(sock).decode("ascii")
        return line.split(), sock.getsockname()


class RelayTests(SynchronousTestCase):
    def test_roundTripThroughNetdEcho(self) -> None:
        """1 MiB goes through the forward to netd's echo in another process and comes back whole, counted."""
        backend = Daemon(["--proto", "echo", "--listen", LOOP])
        self.addCleanup(backend.stop)
        host, port = backend.address("echo")
        daemon = forward(self, f"tcp:{host}:{port}")
        data = payload()
        with socket.create_connection(daemon.address("forward"), timeout=TIMEOUT) as sock:
            sender = sendInThread(sock, data, shutdown=False)
            received = readExactly(sock, len(data))
            sender.join(TIMEOUT)
        self.assertEqual(len(received), len(data))
        self.assertTrue(received == data)
        line = daemon.logged("forward 127.0.0.1:")
        self.assertIn(f"{MIB} bytes in, {MIB} bytes out", line)
        found = metrics(daemon)
        forwarded = frozenset({("service", "forward")})
        self.assertEqual(found[("netd_forward_connections_total", forwarded)], 1)
        for direction in ("to-backend", "to-client"):
            labels = frozenset({("service", "forward"), ("direction", direction)})
            self.assertEqual(found[("netd_forward_bytes_total", labels)], MIB)

    def test_halfClose(self) -> None:
        """A client that shuts down its sending side still gets every byte of the backend's answer."""
        backend = OneShotBackend(self, echoAfterEnd)
        daemon = forward(self, "tcp:{}:{}".format(*backend.address))
        data = payload()
        with socket.create_connection(daemon.address("forward"), timeout=TIMEOUT) as sock:
            sender = sendInThread(sock, data, shutdown=True)
            received = readAll(sock)
            sender.join(TIMEOUT)
        self.assertEqual(len(received), len(data))
        self.assertTrue(received == data)
        backend.thread.join(TIMEOUT)
        self.assertFalse(backend.thread.is_alive())

    def test_backendThatDoesNotReadCostsBoundedMemory(self) -> None:
        """A backend that stops reading stops netd reading the client: memory stays bounded."""
        held: list[socket.socket] = []
        backend = OneShotBackend(self, lambda c: (held.append(c), done.wait(TIMEOUT)))
        done = threading.Event()
        daemon = forward(self, "tcp:{}:{}".format(*backend.address))
        self.addCleanup(done.set)  # first: the backend's close ends the stalled relay
        base = rssKiB(daemon.process.pid)
        sent, chunk = 0, b"x" * 65536
        with socket.create_connection(daemon.address("forward"), timeout=TIMEOUT) as sock:
            sock.setblocking(False)
            deadline = time.monotonic() + TIMEOUT
            # Send until the socket stays unwritable for a second (everything on the way
            # is full) or 256 MiB went out (nothing stopped us: no backpressure).
            while sent < 256 * MIB and time.monotonic() < deadline:
                if not select.select([], [sock], [], 1.0)[1]:
                    break
                try:
                    sent += sock.send(chunk)
                except BlockingIOError:
                    continue
            growth = rssKiB(daemon.process.pid) - base
        self.assertLess(sent, 64 * MIB)  # loopback buffers plus netd's two 64 KiB buffers
        self.assertLess(growth, 8 * 1024, f"netd grew by {growth} KiB after {sent} bytes")

    def test_failedConnectClosesCountsAndLogs(self) -> None:
        """A backend that refuses closes the client; the failure is logged and counted."""
        with socket.socket() as refusing:  # bound, never listening: connects are refused
            refusing.bind(("127.0.0.1", 0))
            port = refusing.getsockname()[1]
            daemon = forward(self, f"tcp:127.0.0.1:{port}")
            with socket.create_connection(daemon.address("forward"), timeout=TIMEOUT) as sock:
                sock.sendall(b"anyone?")
                self.assertEqual(readAll(sock), b"")
            line = daemon.logged("cannot connect to")
        self.assertIn(f"forward: cannot connect to tcp:127.0.0.1:{port}", line)
        daemon.logged("closed after")
        found = metrics(daemon)
        refused = frozenset({("service", "forward"), ("reason", "refused")})
        self.assertEqual(found[("netd_forward_connect_failures_total", refused)], 1)
        self.assertEqual(
            found[("netd_forward_connections_total", frozenset({("service", "forward")}))], 0
        )

    def test_policyAppliesBeforeConnecting(self) -> None:
        """A denied client is refused by netd and no connect to the backend is even tried."""
        with socket.socket() as refusing:  # any connect would be counted as refused
            refusing.bind(("127.0.0.1", 0))
            port = refusing.getsockname()[1]
            daemon = forward(self, f"tcp:127.0.0.1:{port}", "--deny", "127.0.0.1")
            with socket.create_connection(daemon.address("forward"), timeout=TIMEOUT) as sock:
                self.assertEqual(readAll(sock), b"")
            daemon.logged("refused 127.0.0.1: denied")
            found = metrics(daemon)
        for reason in ("refused", "timeout", "unreachable", "error"):
            labels = frozenset({("service", "forward"), ("reason", reason)})
            self.assertEqual(found[("netd_forward_connect_failures_total", labels)], 0)
        self.assertEqual(
            found[("netd_forward_connections_total", frozenset({("service", "forward")}))], 0
        )


class TLSListenerTests(SynchronousTestCase):
    def test_backendEndClosesTheTLSClientCleanly(self) -> None:
        """Behind an ssl: listener, bytes go both ways and the backend's end closes TLS properly."""
        if shutil.which("openssl") is None:
            if os.environ.get("NETD_REQUIRE_ALL") == "1":
                self.fail("the openssl command is not installed (run `make tools`)")
            self.skipTest("the openssl command is not installed (run `make tools`)")
        paths = writePKI(os.path.abspath(self.mktemp()))
        size = 64 * 1024
        backend = OneShotBackend(self, lambda c: c.sendall(readExactly(c, size)))
        listen = (
            f"ssl:0:interface=127.0.0.1:privateKey={paths['server.key']}"
            f":certKey={paths['server.pem']}"
        )
        daemon = Daemon(["--forward", "tcp:{}:{}".format(*backend.address), "--listen", listen])
        self.addCleanup(daemon.stop)
        context = ssl.create_default_context(cafile=paths["ca.pem"])
        data = payload(size)
        with socket.create_connection(daemon.address("forward"), timeout=TIMEOUT) as raw:
            with context.wrap_socket(
                raw, server_hostname="localhost", suppress_ragged_eofs=False
            ) as sock:
                sock.sendall(data)
                received = readAll(sock)  # an EOF without close_notify would raise here
        self.assertTrue(received == data)


class SendProxyTests(SynchronousTestCase):
    def test_twistedBackendSeesTheClient(self) -> None:
        """Behind Twisted's haproxy: endpoint, a backend sees the real client and netd's listener (v1)."""
        backend = ProxyBackend(self)
        daemon = forward(self, f"tcp:127.0.0.1:{backend.port}", "--send-proxy", "v1")
        seen, me = whoAmI(daemon.address("forward"))
        self.assertEqual(seen, [me[0], str(me[1]), *map(str, daemon.address("forward"))])

    def test_realClientBehindHaproxyListener(self) -> None:
        """Behind a haproxy: listener, the v2 header netd sends on names the client its own header named."""
        backend = ProxyBackend(self)
        daemon = Daemon(
            [
                "--forward",
                f"tcp:127.0.0.1:{backend.port}",
                "--send-proxy",
                "v2",
                "--listen",
                "haproxy:" + LOOP,
            ]
        )
        self.addCleanup(daemon.stop)
        header = b"PROXY TCP4 203.0.113.9 192.0.2.1 5555 443\r\n"
        seen, _ = whoAmI(daemon.address("forward"), prefix=header)
        self.assertEqual(seen, ["203.0.113.9", "5555", "192.0.2.1", "443"])

    def test_realHAProxyReadsTheHeader(self) -> None:
        """A real HAProxy accepts netd's header (v2, then v1 after a reload) and passes the client on."""
        directory = tempfile.mkdtemp(prefix="netd-fwd-")
        self.addCleanup(shutil.rmtree, directory, ignore_errors=True)
        report = HeaderReport(self)
        socketPath = os.path.join(directory, "h.sock")
        haproxy = startHAProxy(self, directory, socketPath, report.address)
        config = os.path.join(directory, "netd.toml")
        writeConfig(config, f'forward = "unix:{socketPath}"\nsend-proxy = "v2"\n')
        daemon = Daemon(["--config", config])
        self.addCleanup(daemon.stop)
        address = daemon.address("api")
        me = askThrough(address)
        self.assertEqual(report.next(), f"PROXY TCP4 {me[0]} {address[0]} {me[1]} {address[1]}")
        writeConfig(config, f'forward = "unix:{socketPath}"\nsend-proxy = "v1"\n')
        daemon.process.send_signal(signal.SIGHUP)
        daemon.logged("reloaded")
        me = askThrough(address)
        self.assertEqual(report.next(), f"PROXY TCP4 {me[0]} {address[0]} {me[1]} {address[1]}")
        self.assertIsNone(haproxy.poll())


class BadTargetTests(SynchronousTestCase):
    def test_hostNameIsOneLine(self) -> None:
        """A host name target stops startup with one line naming --forward: netd never resolves."""
        for command in (NETD, TWISTD + ["-n", "--pidfile=", "netd"]):
            result = run(command + ["--forward", "tcp:backend.example:443", "--listen", LOOP])
            self.assertNotEqual(result.returncode, 0)
            self.assertNotIn("Traceback", result.stdout + result.stderr)
            lines = result.stderr.strip().splitlines()
            self.assertEqual(len(lines), 1, result.stderr)
            self.assertIn("--forward: 'backend.example' is not an IP address", lines[0])

    def test_hostNameOnReloadKeepsTheRunningTarget(self) -> None:
        """A reload naming a host name is logged in one line and the running forward goes on."""
        backend = ProxyBackend(self)
        config = os.path.join(tempfile.mkdtemp(prefix="netd-fwd-"), "netd.toml")
        self.addCleanup(shutil.rmtree, os.path.dirname(config), ignore_errors=True)
        writeConfig(config, f'forward = "tcp:127.0.0.1:{backend.port}"\nsend-proxy = "v1"\n')
        daemon = Daemon(["--config", config])
        self.addCleanup(daemon.stop)
        writeConfig(config, 'forward = "tcp:backend.example:443"\n')
        daemon.process.send_signal(signal.SIGHUP)
        line = daemon.logged("reload rejected")
        self.assertIn("service 'api': forward: 'backend.example' is not an IP address", line)
        seen, me = whoAmI(daemon.address("api"))
        self.assertEqual(seen[:2], ["127.0.0.1", str(me[1])])


def writeConfig(path: str, keys: str) -> None:
    """A config file with one forward service, C{api}, on a loopback port of the kernel's choice."""
    with open(path, "w") as f:
        f.write(f'[services.api]\nlisten = ["{LOOP}"]\n{keys}')


class HeaderReport:
    """
    HAProxy's backend on plain sockets: for each connection, the PROXY v1 line HAProxy
    sends (what it understood of netd's header), then an answer so the client knows.
    """

    def __init__(self, test: SynchronousTestCase) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(TIMEOUT)
        test.addCleanup(self.listener.close)
        self.address = self.listener.getsockname()

    def next(self) -> str:
        connection, _ = self.listener.accept()
        with connection:
            connection.settimeout(TIMEOUT)
            line = b""
            while not line.endswith(b"\r\n") and len(line) < 108:
                chunk = connection.recv(1)
                if not chunk:
                    break
                line += chunk
            connection.sendall(b"ok\n")
        return line.decode("ascii").rstrip("\r\n")


def askThrough(address: tuple[str, int]) -> tuple[str, int]:
    """Connect through netd and HAProxy; our own address (the reply is read in the background)."""
    sock = socket.create_connection(address, timeout=TIMEOUT)
    sock.sendall(b"?")
    me = sock.getsockname()
    threading.Thread(target=lambda: (readAll(sock), sock.close()), daemon=True).start()
    return me


HAPROXY = """\
global
    nbthread 1
    maxconn 20

defaults
    mode tcp
    timeout connect 2s
    timeout client 10s
    timeout server 10s

frontend fromnetd
    bind unix@{socket} accept-proxy
    default_backend report

backend report
    server report {host}:{port} send-proxy
"""


def startHAProxy(
    test: SynchronousTestCase, directory: str, socketPath: str, report: tuple[str, int]
) -> subprocess.Popen[bytes]:
    """HAProxy reading PROXY headers on a unix socket, passing them on as v1 to C{report}."""
    path = os.path.join(directory, "haproxy.cfg")
    with open(path, "w") as f:
        f.write(HAPROXY.format(socket=socketPath, host=report[0], port=report[1]))
    process = subprocess.Popen(
        [haproxyCommand(), "-db", "-f", path],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=_dieWithParent,
    )

    def stop() -> None:
        process.terminate()
        try:
            process.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    test.addCleanup(stop)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not os.path.exists(socketPath):
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError("haproxy did not bind its unix socket")
        time.sleep(0.05)
    return process
