"""
The admin HTTP interface of the real C{twistd -n netd}, over loopback HTTP with
C{urllib.request}: health, metrics after real traffic, the services page, the tutorial
pages, and where C{--admin} binds.
"""

from __future__ import annotations

import json
import signal
import socket
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ElementTree
from email.message import Message

from prometheus_client.parser import text_string_to_metric_families
from twisted.trial.unittest import SynchronousTestCase

from tests.integration.daemon import Daemon

LOOP = "tcp:0:interface=127.0.0.1"
TIMEOUT = 10


def serveEcho(test: SynchronousTestCase, admin: str = LOOP) -> Daemon:
    """netd serving echo on loopback, with the admin site on C{admin}."""
    daemon = Daemon(["--proto", "echo", "--listen", LOOP, "--admin", admin], expect=2)
    test.addCleanup(daemon.stop)
    return daemon


def get(daemon: Daemon, path: str, method: str = "GET") -> tuple[int, Message, bytes]:
    """Status, headers and body of one request to the admin site (errors included)."""
    host, port = daemon.address("admin")
    request = urllib.request.Request(f"http://{host}:{port}{path}", method=method)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers, error.read()


def echoOnce(daemon: Daemon, payload: bytes) -> bytes:
    """One echo exchange; returns once the server has seen the connection end."""
    with socket.create_connection(daemon.address("echo"), timeout=TIMEOUT) as sock:
        sock.sendall(payload)
        received = b""
        while len(received) < len(payload):
            received += sock.recv(65536)
    daemon.logged("closed after")
    return received


def metrics(daemon: Daemon) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    status, headers, body = get(daemon, "/metrics")
    assert status == 200, status
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body.decode("utf-8"))
        for sample in family.samples
    }


class AdminTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.daemon = serveEcho(self)

    def test_healthz(self) -> None:
        """A daemon serving every listener answers /healthz with 200 and {"status":"ok"}."""
        status, headers, body = get(self.daemon, "/healthz")
        self.assertEqual((status, headers["Content-Type"]), (200, "application/json"))
        self.assertEqual(body, b'{"status":"ok"}\n')

    def test_metricsCountRealTraffic(self) -> None:
        """After one echo exchange /metrics counts one accepted connection, its bytes and its duration."""
        self.assertEqual(echoOnce(self.daemon, b"hello\n"), b"hello\n")
        found = metrics(self.daemon)
        echo = frozenset({("service", "echo")})
        self.assertEqual(found[("netd_connections_accepted_total", echo)], 1)
        self.assertEqual(found[("netd_received_bytes_total", echo)], 6)
        self.assertEqual(found[("netd_sent_bytes_total", echo)], 6)
        self.assertEqual(found[("netd_connection_duration_seconds_count", echo)], 1)
        self.assertEqual(found[("netd_connections_active", echo)], 0)
        self.assertIn(("process_open_fds", frozenset()), found)

    def test_openStreamVisibleBeforeItEnds(self) -> None:
        """Bytes of a connection still open are in /metrics already."""
        with socket.create_connection(self.daemon.address("echo"), timeout=TIMEOUT) as sock:
            sock.sendall(b"x" * 1000)
            received = 0
            while received < 1000:
                received += len(sock.recv(65536))
            found = metrics(self.daemon)
            echo = frozenset({("service", "echo")})
            self.assertEqual(found[("netd_received_bytes_total", echo)], 1000)
            self.assertEqual(found[("netd_connections_active", echo)], 1)

    def test_services(self) -> None:
        """/services describes the running echo service with its bound listener."""
        status, headers, body = get(self.daemon, "/services")
        self.assertEqual((status, headers["Content-Type"]), (200, "application/json"))
        [service] = json.loads(body)["services"]
        host, port = self.daemon.address("echo")
        self.assertEqual((service["name"], service["protocol"]), ("echo", "echo"))
        [listener] = service["listeners"]
        self.assertEqual(
            (listener["description"], listener["address"], listener["up"]),
            (LOOP, f"{host}:{port}", True),
        )
        self.assertEqual(service["policy"]["max-connections"], 1000)

    def test_helloEscapes(self) -> None:
        """/hello greets the name given, with its markup escaped."""
        status, headers, body = get(self.daemon, "/hello?name=%3Cb%3Ex%3C/b%3E")
        self.assertEqual((status, headers["Content-Type"]), (200, "text/html; charset=utf-8"))
        self.assertIn(b"Hello, &lt;b&gt;x&lt;/b&gt;!", body)
        self.assertNotIn(b"<b>", body)

    def test_localtime(self) -> None:
        """/localtime is XML holding the server's local time in ctime form."""
        before = time.time()
        status, headers, body = get(self.daemon, "/localtime")
        self.assertEqual((status, headers["Content-Type"]), (200, "application/xml"))
        element = ElementTree.fromstring(body)
        self.assertEqual(element.tag, "localtime")
        told = time.mktime(time.strptime(element.text or "", "%a %b %d %H:%M:%S %Y"))
        self.assertLess(abs(told - before), 5)

    def test_errors(self) -> None:
        """Unknown paths are 404 and other methods 405 with Allow: GET, HEAD."""
        self.assertEqual(get(self.daemon, "/nope")[0], 404)
        status, headers, _ = get(self.daemon, "/hello", "POST")
        self.assertEqual((status, headers["Allow"]), (405, "GET, HEAD"))

    def test_stopsCleanly(self) -> None:
        """After serving the WSGI pages the daemon still stops at once on SIGTERM, without an error."""
        get(self.daemon, "/hello")
        started = time.monotonic()
        self.assertIn(self.daemon.stop(), (0, -signal.SIGTERM))
        self.assertLess(time.monotonic() - started, 10)
        self.assertIn("Main loop terminated.", "\n".join(self.daemon.lines))
        self.assertFalse([line for line in self.daemon.lines if "Traceback" in line])


class BindTests(SynchronousTestCase):
    def test_barePortIsLoopback(self) -> None:
        """--admin 0 binds the admin site to 127.0.0.1 only."""
        daemon = serveEcho(self, "0")
        host, port = daemon.address("admin")
        self.assertEqual(host, "127.0.0.1")
        self.assertEqual(get(daemon, "/healthz")[0], 200)

    def test_busyPortIsOneLine(self) -> None:
        """An admin port already in use ends startup with one line naming it."""
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1]
            daemon = Daemon(["--proto", "echo", "--listen", LOOP, "--admin", str(port)], wait=False)
            status = daemon.process.wait(30)
            daemon.stop()
        self.assertNotEqual(status, 0)
        self.assertIn(
            f"admin: cannot listen on tcp:{port}:interface=127.0.0.1: Address already in use",
            "\n".join(daemon.lines),
        )


class LineLogMetricsTests(SynchronousTestCase):
    def test_outputCountersAreExported(self) -> None:
        """The line logger's output counters appear in /metrics once lines are written."""
        import socket
        import urllib.request

        from prometheus_client.parser import text_string_to_metric_families

        from tests.integration.daemon import Daemon

        output = self.mktemp()
        daemon = Daemon(
            [
                "--proto",
                "linelogger",
                "--listen",
                "tcp:0:interface=127.0.0.1",
                "--output",
                output,
                "--fsync",
                "always",
                "--ack",
                "yes",
                "--admin",
                "tcp:0:interface=127.0.0.1",
            ],
            expect=2,
        )
        self.addCleanup(daemon.stop)
        with socket.create_connection(daemon.address("linelogger"), timeout=5) as sock:
            sock.sendall(b"one\ntwo\n")
            got = b""
            while got.count(b"OK\n") < 2:
                got += sock.recv(100)
        host, port = daemon.address("admin")
        with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
        samples = {
            (s.name, s.labels.get("service")): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }
        self.assertEqual(samples[("netd_linelog_written_lines_total", "linelogger")], 2)
        self.assertGreaterEqual(samples[("netd_linelog_fsyncs_total", "linelogger")], 1)
        self.assertEqual(samples[("netd_linelog_dropped_lines_total", "linelogger")], 0)
