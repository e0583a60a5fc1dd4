"""
The PROXY protocol behind a real HAProxy (Debian's C{haproxy}, started on loopback):
netd reads the v1 and v2 headers HAProxy sends, applies its access rules and per-source
limits to the real client, and refuses a header from a peer it does not trust.  Other
127.x.y.z source addresses play other clients.
"""

from __future__ import annotations

import os
import shutil
import socket
import struct
import tempfile
import time
import urllib.request
from collections.abc import Callable
from typing import TYPE_CHECKING

from prometheus_client.parser import text_string_to_metric_families
from twisted.trial.unittest import SynchronousTestCase

from tests.adversarial.haproxy import HAProxy, freePort
from tests.integration.daemon import Daemon
from tests.integration.test_policies import closedByServer, connectFrom, echoes

LISTEN = "haproxy:tcp:0:interface=127.0.0.1"
ADMIN = "tcp:0:interface=127.0.0.1"
#: What a client could claim if netd believed anyone: a header naming 10.0.0.1.
FORGED = b"PROXY TCP4 10.0.0.1 127.0.0.1 1234 7\r\n"
#: The fixed start of every v2 header (the PROXY protocol spec, section 2.2).
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V4_CLIENT = socket.inet_aton("10.0.0.1")
V4_LOOP = socket.inet_aton("127.0.0.1")


def serve(test: SynchronousTestCase, *args: str) -> Daemon:
    """netd's echo behind a PROXY-protocol listener on loopback, with its admin site."""
    daemon = Daemon(["--proto", "echo", "--listen", LISTEN, "--admin", ADMIN, *args], expect=2)
    test.addCleanup(daemon.stop)
    return daemon


def scratch(test: SynchronousTestCase) -> str:
    """A short-lived directory (short enough for a unix socket path), removed in cleanup."""
    directory = tempfile.mkdtemp(prefix="netd-haproxy-")
    test.addCleanup(shutil.rmtree, directory, ignore_errors=True)
    return directory


def front(test: SynchronousTestCase, backend: Daemon | str, header: str, **options: str) -> HAProxy:
    """A real HAProxy forwarding to netd's echo listener (or a unix socket) with C{header}."""
    target = backend if isinstance(backend, str) else backend.address("echo")
    proxy = HAProxy(scratch(test), target, header, **options)
    test.addCleanup(proxy.stop)
    return proxy


def counts(admin: Daemon | tuple[str, int]) -> dict[str, float]:
    """The echo service's accepted, active and refused-by-reason figures from /metrics."""
    host, port = admin.address("admin") if isinstance(admin, Daemon) else admin
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10) as response:
        body = response.read().decode("utf-8")
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            if sample.labels.get("service") != "echo":
                continue
            if sample.name == "netd_connections_refused_total":
                found["refused " + sample.labels["reason"]] = sample.value
            elif sample.name == "netd_connections_accepted_total":
                found["accepted"] = sample.value
            elif sample.name == "netd_connections_active":
                found["active"] = sample.value
    return found


def answer(sock: socket.socket, data: bytes, size: int = 4) -> bytes:
    """What comes back for C{data} (up to C{size} bytes); C{b""} if closed unanswered."""
    received = b""
    try:
        sock.sendall(data)
        while len(received) < size:
            chunk = sock.recv(size - len(received))
            if not chunk:
                break
            received += chunk
    except OSError:  # reset: the server closed with our bytes unread
        pass
    return received


def waitUntil(daemon: Daemon, condition: Callable[[], bool], timeout: float = 20.0) -> None:
    """Poll C{condition} (an C{OSError} counts as not yet); fail with netd's log if it never holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if daemon.process.poll() is not None:
            break
        try:
            if condition():
                return
        except OSError:
            pass
        time.sleep(0.05)
    daemon.stop()
    raise AssertionError("netd never got there; log:\n" + "\n".join(daemon.lines))


if TYPE_CHECKING:
    _Base = SynchronousTestCase
else:
    _Base = object


class _ThroughHAProxy(_Base):
    """Rules and limits through HAProxy; the subclasses choose the header version."""

    header: str

    def test_denyAppliesToRealClient(self) -> None:
        """A denied client is closed at once through HAProxy while another client is echoed and logged by its own address."""
        daemon = serve(self, "--deny", "127.0.0.2")
        proxy = front(self, daemon, self.header)
        with connectFrom("127.0.0.2", proxy.address) as refused:
            start = time.monotonic()
            self.assertTrue(closedByServer(refused))
            self.assertLess(time.monotonic() - start, 1.0)
        with connectFrom("127.0.0.3", proxy.address) as served:
            self.assertTrue(echoes(served, b"ping"))
            port = served.getsockname()[1]
        line = daemon.logged(f"echo 127.0.0.3:{port} closed after")
        self.assertIn("4 bytes out", line)
        daemon.logged("echo refused 127.0.0.2: denied")
        self.assertEqual(counts(daemon), {"accepted": 1, "active": 0, "refused denied": 1})
        self.assertNoProxyPeer(daemon)

    def test_perSourceLimitCountsRealClients(self) -> None:
        """Six clients from one address through HAProxy with max-per-source 3: three are served, three closed, another address is served."""
        daemon = serve(self, "--max-per-source", "3", "--rate", "0")
        proxy = front(self, daemon, self.header)
        flood = []
        for _ in range(6):
            flood.append(connectFrom("127.0.0.4", proxy.address))
            self.addCleanup(flood[-1].close)
        served = [sock for sock in flood if echoes(sock)]
        self.assertEqual(len(served), 3)
        closed = [sock for sock in flood if sock not in served and closedByServer(sock)]
        self.assertEqual(len(closed), 3)
        with connectFrom("127.0.0.5", proxy.address) as other:
            self.assertTrue(echoes(other))
            self.assertEqual(counts(daemon)["active"], 4)
        host, port = served[0].getsockname()
        served[0].close()
        daemon.logged(f"echo {host}:{port} closed after")
        with connectFrom("127.0.0.4", proxy.address) as again:
            self.assertTrue(echoes(again))
        daemon.logged("echo refused 127.0.0.4: max-per-source")
        found = counts(daemon)
        self.assertEqual((found["accepted"], found["refused max-per-source"]), (5, 3))
        self.assertNoProxyPeer(daemon)

    def assertNoProxyPeer(self, daemon: Daemon) -> None:
        """HAProxy's own address (127.0.0.1) was never decided on, nor logged as a peer."""
        for line in daemon.lines:
            self.assertNotIn("echo 127.0.0.1:", line)
            self.assertNotIn("refused 127.0.0.1", line)


class V1Tests(_ThroughHAProxy, SynchronousTestCase):
    header = "send-proxy"


class V2Tests(_ThroughHAProxy, SynchronousTestCase):
    header = "send-proxy-v2"

    def test_typeLengthValueFieldsAreSkipped(self) -> None:
        """A v2 header carrying HAProxy's optional fields (checksum, unique id) still names the real client."""
        daemon = serve(self, "--deny", "127.0.0.2")
        proxy = front(
            self,
            daemon,
            "send-proxy-v2 proxy-v2-options crc32c,unique-id",
            frontendOptions="    unique-id-format %ci:%cp_%Ts_%rt",
        )
        with connectFrom("127.0.0.3", proxy.address) as served:
            self.assertEqual(answer(served, b"hello", 5), b"hello")
            port = served.getsockname()[1]
        with connectFrom("127.0.0.2", proxy.address) as refused:
            self.assertTrue(closedByServer(refused))
        daemon.logged(f"echo 127.0.0.3:{port} closed after")
        self.assertEqual(counts(daemon), {"accepted": 1, "active": 0, "refused denied": 1})


class TrustTests(SynchronousTestCase):
    def test_forgedHeaderFromUntrustedPeer(self) -> None:
        """A PROXY header sent straight to netd from outside trusted-proxies is refused; the same header from a trusted proxy is believed."""
        daemon = serve(self, "--trusted-proxies", "127.0.0.1")
        proxy = front(self, daemon, "send-proxy", source="127.0.0.1")
        with connectFrom("127.0.0.6", proxy.address) as client:
            self.assertTrue(echoes(client))
            port = client.getsockname()[1]
        daemon.logged(f"echo 127.0.0.6:{port} closed after")
        listener = daemon.address("echo")
        with connectFrom("127.0.0.9", listener) as forger:
            self.assertEqual(answer(forger, FORGED + b"ping"), b"")
            self.assertTrue(closedByServer(forger))
        daemon.logged("echo refused 127.0.0.9: untrusted-proxy")
        with connectFrom("127.0.0.1", listener) as trusted:
            self.assertEqual(answer(trusted, FORGED + b"ping"), b"ping")
        daemon.logged("echo 10.0.0.1:1234 closed after")
        self.assertEqual(len([line for line in daemon.lines if "10.0.0.1" in line]), 1)
        found = counts(daemon)
        self.assertEqual((found["accepted"], found["refused untrusted-proxy"]), (2, 1))

    def test_garbageInsteadOfHeader(self) -> None:
        """A trusted peer that sends anything but a valid PROXY header is closed unanswered, each one counted as proxy-header."""
        daemon = serve(self, "--trusted-proxies", "127.0.0.1")
        listener = daemon.address("echo")
        garbage = [
            b"GET / HTTP/1.0\r\n\r\n",
            b"PROXY TCP4 10.0.0.1 nonsense\r\nping",
            b"PROXY TCP4 evil.example 127.0.0.1 1234 7\r\nping",
            b"PROXY TCP4 " + b"1" * 200,
            # A v2 signature with version 1 in the version nibble.
            V2_SIGNATURE + struct.pack("!BBH4s4sHH", 0x11, 0x11, 12, V4_CLIENT, V4_LOOP, 1, 7),
        ]
        for data in garbage:
            with connectFrom("127.0.0.1", listener) as sock:
                self.assertEqual(answer(sock, data), b"", data)
                self.assertTrue(closedByServer(sock), data)
        daemon.logged("echo refused 127.0.0.1: proxy-header")
        self.assertEqual(counts(daemon), {"accepted": 0, "active": 0, "refused proxy-header": 5})


class UnixSocketTests(SynchronousTestCase):
    def test_proxyOnUnixSocket(self) -> None:
        """HAProxy connecting to netd over a unix socket is believed (loopback being trusted), and rules judge the real client."""
        path = os.path.join(scratch(self), "netd.sock")
        admin = ("127.0.0.1", freePort())
        args = ["--proto", "echo", "--listen", f"haproxy:unix:{path}", "--deny", "127.0.0.2"]
        args += ["--admin", f"tcp:{admin[1]}:interface=127.0.0.1"]
        # The harness reads TCP addresses from the log, not paths: poll the socket and /metrics.
        daemon = Daemon(args, wait=False)
        self.addCleanup(daemon.stop)
        waitUntil(daemon, lambda: os.path.exists(path) and "accepted" in counts(admin))
        proxy = front(self, path, "send-proxy-v2")
        with connectFrom("127.0.0.2", proxy.address) as refused:
            self.assertTrue(closedByServer(refused))
        with connectFrom("127.0.0.3", proxy.address) as served:
            self.assertTrue(echoes(served))
        waitUntil(daemon, lambda: counts(admin)["active"] == 0)
        self.assertEqual(counts(admin), {"accepted": 1, "active": 0, "refused denied": 1})
