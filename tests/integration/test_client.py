"""
C{netd client} as a user runs it: a subprocess against the real daemon on loopback, for
every service over TCP and UDP, a unix socket and TLS; and the failures a user meets
(refused, silent, unverifiable, nobody listening on UDP) as one line and a non-zero status.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests.integration.daemon import NETD, Daemon, run

LOOP = "127.0.0.1"
CLIENT = NETD + ["client"]
#: Every client run is bounded; the client's own limits are far shorter.
RUN_TIMEOUT = 60


def client(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run C{netd client ARGS} to completion, C{stdin} piped in (else no stdin at all)."""
    return subprocess.run(
        CLIENT + list(args),
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )


def serve(test: SynchronousTestCase, proto: str, *extra: str, udp: bool = True) -> Daemon:
    """The real netd serving C{proto} on tcp:0 (and udp:0) on 127.0.0.1."""
    args = ["--proto", proto, "--listen", f"tcp:0:interface={LOOP}", *extra]
    if udp:
        args += ["--listen", f"udp:0:interface={LOOP}"]
    daemon = Daemon(args, expect=2 if udp else 1)
    test.addCleanup(daemon.stop)
    return daemon


def endpoint(daemon: Daemon, service: str, transport: str = "TCP") -> str:
    host, port = daemon.address(service, transport)
    return f"{'udp:' if transport == 'UDP' else ''}{host}:{port}"


def closedPort(kind: socket.SocketKind = socket.SOCK_STREAM) -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind((LOOP, 0))
        return int(sock.getsockname()[1])


def serverHasAck() -> bool:
    """Whether this netd's linelogger can acknowledge lines (a newer server option)."""
    return "--ack" in run(NETD + ["--help"]).stdout


class ClientTestCase(SynchronousTestCase):
    def assertSucceeded(self, result: subprocess.CompletedProcess[str]) -> str:
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertNotIn("Traceback", result.stdout + result.stderr)
        return result.stdout

    def assertOneLineFailure(self, result: subprocess.CompletedProcess[str], fragment: str) -> str:
        self.assertNotEqual(result.returncode, 0, result.stdout)
        self.assertNotIn("Traceback", result.stdout + result.stderr)
        lines = result.stderr.splitlines()
        self.assertEqual(len(lines), 1, result.stderr)
        self.assertTrue(lines[0].startswith("netd client: "), lines[0])
        self.assertIn(fragment, lines[0])
        return lines[0]

    def assertOffsetSmall(self, output: str) -> None:
        match = re.search(r"offset ([+-]\d+) s .*resolution 1 s", output)
        assert match is not None, output
        self.assertLessEqual(abs(int(match[1])), 1)


class ServiceTests(ClientTestCase):
    def test_echo(self) -> None:
        """Echo over TCP prints the reply and round trip; over UDP --count pings with no loss."""
        daemon = serve(self, "echo")
        target = endpoint(daemon, "echo")
        output = self.assertSucceeded(client("echo", target, "--message", "hello"))
        self.assertRegex(output, rf"^hello\n5 bytes from {target} in \d+\.\d+ ms\n$")
        output = self.assertSucceeded(client("echo", target, stdin="from stdin\n"))
        self.assertIn("from stdin\n11 bytes from", output)
        udp = endpoint(daemon, "echo", "UDP")
        output = self.assertSucceeded(client("echo", udp, "--count", "3", "--interval", "0.1"))
        self.assertEqual(output.count(" bytes from "), 3)
        self.assertIn("3 probes sent, 3 replies, 0.0% loss", output)
        self.assertRegex(output, r"rtt min/avg/p99/max = [\d.]+/[\d.]+/[\d.]+/[\d.]+ ms")

    def test_time(self) -> None:
        """Time over TCP and UDP prints the server's time and a small offset from ours."""
        daemon = serve(self, "time")
        for transport in ("TCP", "UDP"):
            output = self.assertSucceeded(client("time", endpoint(daemon, "time", transport)))
            self.assertRegex(output, r"time from .*: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC")
            self.assertOffsetSmall(output)

    def test_daytime(self) -> None:
        """Daytime over TCP and UDP prints the line and an offset at 1 s resolution."""
        daemon = serve(self, "daytime")
        for transport in ("TCP", "UDP"):
            output = self.assertSucceeded(client("daytime", endpoint(daemon, "daytime", transport)))
            self.assertIn("daytime has whole seconds", output)
            self.assertOffsetSmall(output)

    def test_chargen(self) -> None:
        """Chargen's stream and datagrams pass the byte-for-byte pattern check."""
        daemon = serve(self, "chargen", "--allow-amplification")
        output = self.assertSucceeded(client("chargen", endpoint(daemon, "chargen")))
        self.assertIn("1048576 bytes in ", output)
        self.assertIn("pattern OK", output)
        output = self.assertSucceeded(
            client("chargen", endpoint(daemon, "chargen", "UDP"), "--bytes", "2K")
        )
        self.assertIn("2220 bytes in", output)
        self.assertIn("in 5 datagrams; pattern OK (30 whole lines)", output)

    def test_discard(self) -> None:
        """Discard takes every byte over TCP, closing only after us; UDP sends datagrams."""
        daemon = serve(self, "discard")
        output = self.assertSucceeded(
            client("discard", endpoint(daemon, "discard"), "--bytes", "8M")
        )
        self.assertIn("8388608 bytes in ", output)
        self.assertIn("the server read it all and closed only after we did", output)
        output = self.assertSucceeded(
            client("discard", endpoint(daemon, "discard", "UDP"), "--bytes", "10K")
        )
        self.assertIn("in 10 datagrams", output)

    def test_linelogger(self) -> None:
        """
        The linelogger logs each line sent over TCP and UDP; with acks (when this netd
        offers them) every line is OK once written, and without them a client waiting
        for acks fails at its timeout.
        """
        hasAck = serverHasAck()
        output = os.path.abspath(self.mktemp())
        extra = ["--ack", "yes", "--output", output] if hasAck else []
        daemon = serve(self, "linelogger", *extra)
        target = endpoint(daemon, "linelogger")
        acked = client("linelogger", target, "--ack", "--timeout", "2", stdin="a\nb\nc\n")
        if hasAck:
            self.assertIn("3 lines (6 bytes) sent; 3 OK, 0 ERR\n", self.assertSucceeded(acked))
            with open(output) as f:
                self.assertEqual([json.loads(line)["line"] for line in f], ["a", "b", "c"])
        else:
            self.assertOneLineFailure(acked, "no ack for line 1")
            self.assertIn("0 OK, 0 ERR, 1 unacknowledged", acked.stdout)
        result = client("linelogger", target, stdin="first\nsecond\r\n")
        self.assertIn(
            "2 lines (14 bytes) sent; the server read them all", self.assertSucceeded(result)
        )
        daemon.logged("'second'")
        udp = endpoint(daemon, "linelogger", "UDP")
        self.assertSucceeded(client("linelogger", udp, stdin="over udp\n"))
        daemon.logged("'over udp'")

    def test_unixEcho(self) -> None:
        """Echo works over a unix socket."""
        # A short directory: a unix socket path may not exceed 107 bytes, and the test
        # tree under a CI checkout can be deep.
        directory = tempfile.mkdtemp(prefix="netd-client-")
        self.addCleanup(shutil.rmtree, directory, True)
        path = os.path.join(directory, "echo.sock")
        # The harness reads TCP/UDP addresses from the log; for a path, poll the socket.
        daemon = Daemon(["--proto", "echo", "--listen", f"unix:{path}"], wait=False)
        self.addCleanup(daemon.stop)
        deadline = time.monotonic() + 20
        while not os.path.exists(path):
            self.assertIsNone(daemon.process.poll(), "netd exited")
            self.assertLess(time.monotonic(), deadline, "netd never listened on the socket")
            time.sleep(0.05)
        output = self.assertSucceeded(client("echo", f"unix:{path}", "--message", "over unix"))
        self.assertIn(f"over unix\n9 bytes from unix:{path} in ", output)


class TlsTests(ClientTestCase):
    def setUp(self) -> None:
        if shutil.which("openssl") is None:
            raise SkipTest("the openssl command is not installed")
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        self.cert = os.path.join(directory, "cert.pem")
        key = os.path.join(directory, "key.pem")
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
             "-addext", "subjectAltName=IP:127.0.0.1", "-days", "2", "-keyout", key, "-out", self.cert],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        listen = f"ssl:0:interface={LOOP}:privateKey={key}:certKey={self.cert}"
        self.daemon = Daemon(["--proto", "echo", "--listen", listen])
        self.addCleanup(self.daemon.stop)
        host, port = self.daemon.address("echo", "TCP")
        self.target = f"tls:{host}:{port}"

    def test_verified(self) -> None:
        """Echo over TLS verified against --ca works, one-shot and as a ping."""
        output = self.assertSucceeded(
            client("echo", self.target, "--ca", self.cert, "--message", "sealed")
        )
        self.assertIn("sealed\n6 bytes from 127.0.0.1:", output)
        output = self.assertSucceeded(
            client("echo", self.target, "--ca", self.cert, "--count", "2", "--interval", "0.1")
        )
        self.assertIn("2 probes sent, 2 replies, 0.0% loss", output)

    def test_unverifiable(self) -> None:
        """A certificate the client cannot verify is one line and a non-zero status."""
        result = client("echo", self.target, "--message", "x", "--timeout", "5")
        self.assertOneLineFailure(result, "TLS handshake with 127.0.0.1:")
        self.assertIn("certificate verify failed", result.stderr)

    def test_insecure(self) -> None:
        """--insecure connects without verifying, and warns once."""
        result = client("echo", self.target, "--insecure", "--message", "x")
        self.assertSucceeded(result)
        self.assertEqual(result.stderr.count("not verified"), 1)


class FailureTests(ClientTestCase):
    def test_refused(self) -> None:
        """A refused TCP connection is one line naming the address, and exit status 1."""
        port = closedPort()
        result = client("echo", f"{LOOP}:{port}", "--message", "x")
        line = self.assertOneLineFailure(result, "Connection refused")
        self.assertEqual(line, f"netd client: cannot connect to {LOOP}:{port}: Connection refused")

    def test_udpNobodyListening(self) -> None:
        """A UDP ping to a closed port reports 100% loss and exits non-zero."""
        port = closedPort(socket.SOCK_DGRAM)
        result = client(
            "echo", f"udp:{LOOP}:{port}", "--count", "3", "--interval", "0.1", "--timeout", "1"
        )
        self.assertNotEqual(result.returncode, 0)
        self.assertNotIn("Traceback", result.stdout + result.stderr)
        self.assertIn("3 probes sent, 0 replies, 100.0% loss", result.stdout)

    def test_silentServer(self) -> None:
        """A server that accepts but never answers is a timeout: one line, promptly."""
        with socket.socket() as silent:
            silent.bind((LOOP, 0))
            silent.listen()
            port = silent.getsockname()[1]
            started = time.monotonic()
            result = client("daytime", f"{LOOP}:{port}", "--timeout", "0.5")
            self.assertLess(time.monotonic() - started, RUN_TIMEOUT / 2)
        self.assertOneLineFailure(result, f"no daytime from {LOOP}:{port} within 0.5 s")
