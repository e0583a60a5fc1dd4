"""
The load generator against real servers: every mode against the real netd echo must
verify all bytes and report throughput, and a server that corrupts bytes must make the
run fail.  Runs are kept short; no speed figure is asserted, only that there is one.
"""

from __future__ import annotations

import json
import socket
import socketserver
import sys
import threading
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from tests.integration.daemon import Daemon, run

BENCH = [sys.executable, "-m", "netd.bench"]
LOOP = "127.0.0.1"
ECHO = [
    "--proto", "echo",
    "--listen", f"tcp:0:interface={LOOP}",
    "--listen", f"udp:0:interface={LOOP}",
    "--max-per-source", "0", "--rate", "0", "--udp-rate", "0", "--udp-reply-budget", "0",
    "--max-connections", "0", "--idle-timeout", "0",
]  # fmt: skip
FLIP_AT = 40  # the stream offset whose byte the broken servers corrupt


def bench(port: int, *args: str) -> dict[str, Any]:
    """Run C{netd bench} briefly against C{port} and return its JSON report."""
    argv = BENCH + ["--port", str(port), *args, "--json", "--duration", "0.3", "--warmup", "0.2"]
    result = run(argv, timeout=60)
    lines = result.stdout.splitlines()
    assert len(lines) == 1, (result.stdout, result.stderr)
    report: dict[str, Any] = json.loads(lines[0])
    assert result.returncode == (0 if report["ok"] else 1), (result.returncode, result.stderr)
    return report


class AgainstNetdTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.daemon = Daemon(ECHO, expect=2)
        self.addCleanup(self.daemon.stop)
        self.tcp = self.daemon.address("echo", "TCP")[1]
        self.udp = self.daemon.address("echo", "UDP")[1]

    def assertClean(self, report: dict[str, Any], rate: str) -> dict[str, Any]:
        results: dict[str, Any] = report["results"]
        self.assertIs(report["ok"], True, report)
        self.assertEqual(results["errors"], {"total": 0})
        self.assertGreater(results[rate], 0)
        return results

    def test_requestResponse(self) -> None:
        """rr over two worker processes verifies every echo and merges their samples."""
        results = self.assertClean(bench(self.tcp, "--conns", "4", "--procs", "2"), "rps")
        self.assertEqual(results["established"], 4)
        self.assertGreater(results["lat_us"]["n"], 0)
        self.assertLessEqual(results["lat_us"]["p50"], results["lat_us"]["max"])
        self.assertEqual(results["bytes_sent"], results["bytes_echoed"])

    def test_bulk(self) -> None:
        """bulk streams verified bytes and reports MB/s."""
        self.assertClean(bench(self.tcp, "--mode", "bulk", "--conns", "2"), "MBps")

    def test_connectionRate(self) -> None:
        """connrate completes whole connections from several source addresses."""
        results = self.assertClean(
            bench(self.tcp, "--mode", "connrate", "--conns", "4"), "conns_per_s"
        )
        self.assertGreater(results["exchange_lat_us"]["n"], 0)

    def test_udp(self) -> None:
        """udp gets its datagrams echoed and verified."""
        results = self.assertClean(bench(self.udp, "--mode", "udp", "--size", "64"), "rps")
        self.assertGreater(results["echoed"], 0)

    def test_idle(self) -> None:
        """idle holds its connections, measures the active one, and finds all alive after."""
        report = bench(self.tcp, "--mode", "idle", "--idle", "40", "--procs", "2")
        results = self.assertClean(report, "rps")
        self.assertEqual((results["established"], results["alive_after"]), (40, 40))


class FlippingEcho(socketserver.BaseRequestHandler):
    """Echoes a TCP stream with the byte at offset L{FLIP_AT} inverted."""

    def handle(self) -> None:
        offset = 0
        while data := self.request.recv(65536):
            if offset <= FLIP_AT < offset + len(data):
                data = bytearray(data)
                data[FLIP_AT - offset] ^= 0xFF
            self.request.sendall(data)
            offset += len(data)


class FlippingDatagrams(socketserver.BaseRequestHandler):
    """Echoes each datagram with its last byte inverted."""

    def handle(self) -> None:
        data, sock = self.request
        sock.sendto(data[:-1] + bytes([data[-1] ^ 0xFF]), self.client_address)


class Threaded(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


class BrokenServerTests(SynchronousTestCase):
    def serve(self, server: socketserver.TCPServer) -> int:
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
        thread.start()
        self.addCleanup(thread.join)
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        port = int(server.server_address[1])
        return port

    def test_corruptingTcpEcho(self) -> None:
        """A TCP echo that flips one byte makes the run fail with a mismatch."""
        port = self.serve(Threaded((LOOP, 0), FlippingEcho))
        report = bench(port, "--conns", "2")
        self.assertIs(report["ok"], False)
        self.assertGreater(report["results"]["errors"].get("mismatch", 0), 0)

    def test_corruptingUdpEcho(self) -> None:
        """A UDP echo that flips one byte of each datagram makes the run fail."""
        port = self.serve(socketserver.UDPServer((LOOP, 0), FlippingDatagrams))
        report = bench(port, "--mode", "udp")
        self.assertIs(report["ok"], False)
        self.assertGreater(report["results"]["errors"].get("mismatch", 0), 0)

    def test_silentServerCutOff(self) -> None:
        """A server that never echoes is cut off at the time limit and the run fails."""
        with socket.socket() as silent:  # the kernel accepts; nothing ever reads or writes
            silent.bind((LOOP, 0))
            silent.listen(16)
            port = silent.getsockname()[1]
            report = bench(port, "--conns", "2", "--time-limit", "3")
        self.assertIs(report["ok"], False)
        self.assertIn("time limit", " ".join(report["results"]["problems"]))

    def test_nonLoopbackRefused(self) -> None:
        """A non-loopback target is refused in one line, with nothing sent."""
        with socket.socket() as probe:  # any port: nothing may be sent anyway
            probe.bind((LOOP, 0))
            port = probe.getsockname()[1]
        result = run(BENCH + ["--port", str(port), "--host", "192.0.2.1", "--json"])
        self.assertEqual(result.returncode, 2)
        self.assertEqual(result.stdout, "")
        self.assertEqual(len(result.stderr.strip().splitlines()), 1)
        self.assertIn("loopback", result.stderr)
