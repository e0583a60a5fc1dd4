"""
C{--workers 2} against real processes: the parent holds the sockets, two workers serve
them, the parent restarts a killed worker, replaces its workers on reload, and leaves
no process behind when it stops (or dies).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Callable

from prometheus_client.parser import text_string_to_metric_families
from twisted.trial.unittest import SynchronousTestCase

from tests.integration.daemon import Daemon
from tests.integration.test_admin import get
from tests.integration.test_policies import echoes
from tests.integration.test_systemd import activate, freePorts, need, netdUnder
from tests.integration.test_tls import LINE, TLSTestCase, pyEcho

LOOP = "tcp:0:interface=127.0.0.1"
UDP_LOOP = "udp:0:interface=127.0.0.1"
TIMEOUT = 15.0
READY = re.compile(r"worker (\d+) ready \(pid (\d+)\)")
#: A worker's line for a finished connection: its pid and the client's port.
CLOSED = re.compile(r"worker \d+ \(pid (\d+)\): echo 127\.0\.0\.1:(\d+) closed after")


def readyPids(daemon: Daemon) -> list[int]:
    """The pids of the workers that reported ready so far, in order."""
    return [int(m.group(2)) for line in daemon.lines for m in [READY.search(line)] if m]


def waitReady(daemon: Daemon, count: int) -> list[int]:
    """Wait until C{count} workers (in all) reported ready; their pids."""
    daemon.waitFor(lambda: len(readyPids(daemon)) >= count, f"{count} workers ready", TIMEOUT)
    return readyPids(daemon)


def alive(pid: int) -> bool:
    """Whether process C{pid} exists and is not a zombie (waiting for a reaper)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def eventually(condition: Callable[[], bool], timeout: float = TIMEOUT) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def metric(daemon: Daemon, name: str, **labels: str) -> float | None:
    """One sample of the parent's /metrics (which must parse as Prometheus text)."""
    status, _, body = get(daemon, "/metrics")
    assert status == 200, status
    for family in text_string_to_metric_families(body.decode("utf-8")):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return None


def serveEcho(test: SynchronousTestCase, *extra: str) -> Daemon:
    """netd serving echo over TCP and UDP with two workers and the admin site."""
    args = ["--proto", "echo", "--listen", LOOP, "--listen", UDP_LOOP, "--admin", LOOP]
    daemon = Daemon([*args, "--workers", "2", *extra], expect=3)
    test.addCleanup(daemon.stop)
    waitReady(daemon, 2)
    return daemon


def echoBatch(daemon: Daemon, count: int) -> dict[int, int]:
    """C{count} concurrent echo connections; client port -> pid of the worker that served it."""
    sockets = [
        socket.create_connection(daemon.address("echo"), timeout=TIMEOUT) for _ in range(count)
    ]
    ports = []
    for sock in sockets:
        assert echoes(sock, b"spread"), "no echo"
        ports.append(sock.getsockname()[1])
        sock.close()

    def served() -> dict[int, int]:
        found = {
            int(m.group(2)): int(m.group(1))
            for line in daemon.lines
            for m in [CLOSED.search(line)]
            if m
        }
        return {port: found[port] for port in ports if port in found}

    daemon.waitFor(lambda: len(served()) == count, "the connections' log lines", TIMEOUT)
    return served()


class WorkersTests(SynchronousTestCase):
    def test_twoWorkersServeTCPAndUDP(self) -> None:
        """Two workers share the echo listeners: connections spread over both, /metrics counts them all."""
        daemon = serveEcho(self)
        workers = set(readyPids(daemon))
        self.assertEqual(len(workers), 2)
        served: dict[int, int] = {}
        while set(served.values()) != workers and len(served) < 400:
            served.update(echoBatch(daemon, 40))
        self.assertEqual(set(served.values()), workers)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.settimeout(TIMEOUT)
            for n in range(10):
                udp.sendto(b"datagram %d" % n, daemon.address("echo", "UDP"))
                self.assertEqual(udp.recv(100), b"datagram %d" % n)
        self.assertTrue(
            eventually(
                lambda: (
                    metric(daemon, "netd_connections_accepted_total", service="echo") == len(served)
                )
            ),
            metric(daemon, "netd_connections_accepted_total", service="echo"),
        )
        # Workers report their counters at intervals: wait for the report, as above.
        self.assertTrue(
            eventually(lambda: metric(daemon, "netd_datagrams_sent_total", service="echo") == 10),
            metric(daemon, "netd_datagrams_sent_total", service="echo"),
        )
        self.assertEqual(metric(daemon, "netd_workers"), 2)

    def test_killedWorkerIsRestarted(self) -> None:
        """A worker killed with SIGKILL is restarted, and the service carries on meanwhile."""
        daemon = serveEcho(self)
        first, second = readyPids(daemon)
        os.kill(first, signal.SIGKILL)
        for _ in range(20):
            with socket.create_connection(daemon.address("echo"), timeout=TIMEOUT) as sock:
                self.assertTrue(echoes(sock))
        daemon.logged(f"(pid {first}) exited unexpectedly: killed by SIGKILL")
        replacement = waitReady(daemon, 3)[2]
        self.assertNotIn(replacement, (first, second))
        self.assertTrue(alive(replacement))
        with socket.create_connection(daemon.address("echo"), timeout=TIMEOUT) as sock:
            self.assertTrue(echoes(sock))
        self.assertEqual(metric(daemon, "netd_worker_restarts_total"), 1)

    def test_reloadAddsAService(self) -> None:
        """SIGHUP adds a service to new workers; kept listeners (a unix socket too) keep serving."""
        directory = tempfile.mkdtemp(prefix="netd-workers-")
        self.addCleanup(shutil.rmtree, directory)
        path, unix = os.path.join(directory, "netd.toml"), os.path.join(directory, "echo.sock")
        echo = (
            "workers = 2\nshutdown-timeout = 3\n[services.echo]\n"
            f'listen = ["{LOOP}", "unix:{unix}"]\n'
        )
        with open(path, "w") as f:
            f.write(echo)
        daemon = Daemon(["--config", path], expect=2)
        self.addCleanup(daemon.stop)
        old = set(waitReady(daemon, 2))
        with socket.create_connection(daemon.address("echo"), timeout=TIMEOUT) as kept:
            self.assertTrue(echoes(kept, b"before"))
            with open(path, "w") as f:
                f.write(echo + f'[services.daytime]\nlisten = ["{LOOP}"]\n')
            daemon.process.send_signal(signal.SIGHUP)
            daemon.logged("daytime listening on TCP")
            new = set(waitReady(daemon, 4)) - old
            self.assertEqual(len(new), 2)
            self.assertTrue(echoes(kept, b"after"))
            with socket.create_connection(daemon.address("daytime"), timeout=TIMEOUT) as day:
                self.assertTrue(day.recv(100).endswith(b"\r\n"))
            with socket.create_connection(daemon.address("echo"), timeout=TIMEOUT) as fresh:
                self.assertTrue(echoes(fresh))
        self.assertTrue(eventually(lambda: not any(alive(pid) for pid in old)))
        with socket.socket(socket.AF_UNIX) as local:
            local.settimeout(TIMEOUT)
            local.connect(unix)
            self.assertTrue(echoes(local))

    def test_stopEndsEveryProcess(self) -> None:
        """SIGTERM on the parent ends it and every worker: no process is left behind."""
        daemon = serveEcho(self)
        workers = readyPids(daemon)
        self.assertEqual(daemon.stop(), -signal.SIGTERM)  # twistd exits by the signal
        self.assertEqual([pid for pid in workers if alive(pid)], [])
        self.assertEqual(
            len([line for line in daemon.lines if "stopped: exit status 0" in line]), 2
        )

    def test_workersStopWhenTheParentDies(self) -> None:
        """Workers whose parent is killed outright stop by themselves."""
        daemon = serveEcho(self)
        workers = readyPids(daemon)
        daemon.process.kill()
        daemon.process.wait(TIMEOUT)
        self.assertTrue(eventually(lambda: not any(alive(pid) for pid in workers)))

    def test_oneWorkerIsThisProcess(self) -> None:
        """Without --workers, netd serves in its own process and starts none."""
        daemon = Daemon(["--proto", "echo", "--listen", LOOP])
        self.addCleanup(daemon.stop)
        with socket.create_connection(daemon.address("echo"), timeout=TIMEOUT) as sock:
            self.assertTrue(echoes(sock))
        pid = daemon.process.pid
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            self.assertEqual(f.read().split(), [])
        self.assertFalse(any("worker" in line for line in daemon.lines))

    def test_socketActivatedListenerIsShared(self) -> None:
        """A socket from systemd is served by both workers, which find it by its name."""
        need("systemd-socket-activate")
        [port] = freePorts([socket.SOCK_STREAM])
        args = ["--proto", "echo", "--listen", "systemd:domain=INET:name=echo", "--workers", "2"]
        daemon = Daemon(args, command=netdUnder(activate([port], ["echo"])), wait=False)
        self.addCleanup(daemon.stop)
        daemon.logged("Listening on", timeout=TIMEOUT)
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
            self.assertTrue(echoes(sock))
        waitReady(daemon, 2)
        for _ in range(10):
            with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
                self.assertTrue(echoes(sock))
        self.assertFalse(any("exited unexpectedly" in line for line in daemon.lines))


class TLSWorkersTests(TLSTestCase):
    def test_workersServeTLS(self) -> None:
        """An ssl: listener is shared too: each worker completes its own handshakes."""
        daemon = Daemon(["--proto", "echo", "--listen", self.listen, "--workers", "2"], expect=1)
        self.addCleanup(daemon.stop)
        waitReady(daemon, 2)
        for _ in range(10):
            self.assertEqual(pyEcho(daemon.address("echo"), self.context()), LINE)
