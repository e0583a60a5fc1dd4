"""
What the adversarial scenarios share: their sizes, the results file the robustness
report is built from, the daemons under attack (netd, and xinetd for comparison) and
the measuring tools (memory of a process tree, latency percentiles, /metrics).

Sizes: C{NETD_ADVERSARIAL=full} selects the figures of the issue (thousands of
connections, 1 GiB streams); anything else the CI mode (smaller, still meaningful).

Figures: when C{NETD_ROBUSTNESS_OUT} names a file, every scenario appends one JSON line
to it (L{record}), before its assertions, so a failing scenario still shows its
figures; C{docs/robustness.py} runs the scenarios and turns those lines into
C{docs/ROBUSTNESS.md}.

The attackers that run in processes of their own are in L{tests.adversarial.attackers},
the xinetd peer in L{tests.adversarial.xinetd}.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import shutil
import socket
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from twisted.trial.unittest import SynchronousTestCase

from tests.integration.daemon import Daemon

__all__ = [
    "FULL",
    "GiB",
    "LOOP",
    "MODE",
    "MiB",
    "CloseWatcher",
    "EchoProbe",
    "Metrics",
    "Netd",
    "PeakMemory",
    "TCP",
    "UDP",
    "closeAll",
    "closedWithin",
    "configFile",
    "connect",
    "descendants",
    "freePorts",
    "ms",
    "percentile",
    "record",
    "roundTrips",
    "serve",
    "size",
    "source",
    "treeMemory",
    "waitUntil",
]

MODE = "full" if os.environ.get("NETD_ADVERSARIAL", "") == "full" else "ci"
FULL = MODE == "full"
LOOP = "127.0.0.1"
TCP = "tcp:0:interface=127.0.0.1"
UDP = "udp:0:interface=127.0.0.1"
ADMIN = "tcp:0:interface=127.0.0.1"
MiB = 1024 * 1024
GiB = 1024 * MiB


def size(ci: Any, full: Any) -> Any:
    """C{full} under C{NETD_ADVERSARIAL=full}, else C{ci}."""
    return full if FULL else ci


# The results file


def record(
    test: SynchronousTestCase,
    scenario: str,
    thrown: str,
    did: str,
    figures: dict[str, Any],
    xinetd: str | None = None,
) -> None:
    """
    Append one scenario's outcome to C{$NETD_ROBUSTNESS_OUT} (if set): what was thrown
    at netd, what it did, the figures, and what xinetd did with the same (if it applies).
    """
    path = os.environ.get("NETD_ROBUSTNESS_OUT")
    if not path:
        return
    line = {
        "scenario": scenario,
        "test": test.id(),
        "mode": MODE,
        "thrown": thrown,
        "did": did,
        "figures": figures,
        "xinetd": xinetd,
        "recorded": time.time(),
    }
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(line) + "\n")


# netd


class Netd(Daemon):
    """
    The real netd (see L{tests.integration.daemon.Daemon}), whose log lines matching
    C{quiet} are counted and dropped as they are read, so a scenario that makes netd
    log per chunk or per line keeps the test process's memory bounded.
    """

    def __init__(self, args: list[str], quiet: str | None = None, **kwargs: Any) -> None:
        self.quiet = re.compile(quiet) if quiet else None
        self.muted = 0
        super().__init__(args, **kwargs)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if self.quiet is not None and self.quiet.search(line):
                self.muted += 1
                continue
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def drain(self) -> None:
        """Take in the log lines read so far (C{lines} grows only while waiting)."""
        with contextlib.suppress(AssertionError):
            self.waitFor(lambda: self._queue.empty(), "the log so far", timeout=0.01)

    def count(self, text: str) -> int:
        """How many log lines read so far contain C{text}."""
        self.drain()
        return sum(text in line for line in self.lines)

    def metrics(self) -> Metrics:
        return Metrics.fetch(self.address("admin"))

    def rssKiB(self) -> int:
        return treeMemory(self.process.pid, pss=False)[0]


def serve(
    test: SynchronousTestCase,
    args: list[str],
    expect: int = 1,
    quiet: str | None = None,
    admin: bool = True,
) -> Netd:
    """
    netd with C{args}, stopped in cleanup; with its admin site unless C{admin} is false
    (a C{--config} file names its own C{admin} endpoint, counted in C{expect}).
    """
    if admin and "--config" not in args:
        args, expect = [*args, "--admin", ADMIN], expect + 1
    daemon = Netd(args, quiet=quiet, expect=expect)
    test.addCleanup(daemon.stop)
    return daemon


def configFile(test: SynchronousTestCase, text: str) -> str:
    """A TOML configuration in a scratch directory (removed in cleanup)."""
    directory = tempfile.mkdtemp(prefix="netd-adv-")
    test.addCleanup(shutil.rmtree, directory, ignore_errors=True)
    path = os.path.join(directory, "netd.toml")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


class Metrics:
    """One scrape of C{/metrics}: C{value(name, **labels)} sums the matching samples."""

    def __init__(self, samples: list[tuple[str, dict[str, str], float]]) -> None:
        self.samples = samples

    @classmethod
    def fetch(cls, address: tuple[str, int]) -> Metrics:
        host, port = address
        with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=20) as response:
            body = response.read().decode("utf-8")
        samples = [
            (sample.name, dict(sample.labels), sample.value)
            for family in text_string_to_metric_families(body)
            for sample in family.samples
        ]
        return cls(samples)

    def value(self, name: str, **labels: str) -> float:
        return sum(
            value
            for sampleName, found, value in self.samples
            if sampleName == name and all(found.get(k) == v for k, v in labels.items())
        )

    def byLabel(self, name: str, label: str, **labels: str) -> dict[str, float]:
        """C{name}'s samples matching C{labels}, keyed by C{label} (e.g. refusal reasons)."""
        found: dict[str, float] = {}
        for sampleName, sampleLabels, value in self.samples:
            if sampleName == name and all(sampleLabels.get(k) == v for k, v in labels.items()):
                key = sampleLabels.get(label, "")
                found[key] = found.get(key, 0.0) + value
        return {k: v for k, v in found.items() if v}


# Memory


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def descendants(pid: int) -> list[int]:
    """C{pid} and every process below it."""
    tree, found, todo = _children(), [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(tree.get(current, ()))
    return found


def _kib(path: str, key: str) -> int:
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def treeMemory(pid: int, pss: bool = True) -> tuple[int, int, int]:
    """
    RSS and PSS (KiB; PSS 0 unless C{pss}) summed over C{pid}'s process tree, and how
    many processes.  PSS counts a page shared by forked children once in all, RSS once
    per child.
    """
    pids = descendants(pid)
    rss = sum(_kib(f"/proc/{p}/status", "VmRSS:") for p in pids)
    pssKiB = sum(_kib(f"/proc/{p}/smaps_rollup", "Pss:") for p in pids) if pss else 0
    return rss, pssKiB, len(pids)


class PeakMemory:
    """
    Samples a process tree's RSS (and with C{pss}, its PSS and process count) every
    C{period} seconds in a thread; C{peak}, C{peakPss} in KiB.
    """

    def __init__(self, pid: int, period: float = 0.05, pss: bool = False) -> None:
        self.pid = pid
        self.period = period
        self.pss = pss
        rss, pssKiB, processes = treeMemory(pid, pss)
        self.start = self.peak = rss
        self.startPss = self.peakPss = pssKiB
        self.processes = processes
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> None:
        rss, pss, processes = treeMemory(self.pid, self.pss)
        self.peak = max(self.peak, rss)
        self.peakPss = max(self.peakPss, pss)
        self.processes = max(self.processes, processes)

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self.sample()

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    @property
    def growthMiB(self) -> float:
        return round((self.peak - self.start) / 1024, 1)


# Addresses, ports, latency


def source(index: int) -> str:
    """The C{index}-th client address in 127.0.0.0/8 other than 127.0.0.1."""
    return f"127.0.{1 + index // 250}.{2 + index % 250}"


def freePorts(count: int) -> list[int]:
    """C{count} consecutive loopback ports free for both TCP and UDP right now."""
    for _ in range(500):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind((LOOP, 0))
            base = probe.getsockname()[1]
        if base + count > 65000:
            continue
        held = []
        try:
            for port in range(base, base + count):
                for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                    sock = socket.socket(socket.AF_INET, kind)
                    held.append(sock)
                    if kind == socket.SOCK_STREAM:  # as a listener binds: TIME_WAIT is no obstacle
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    sock.bind((LOOP, port))
        except OSError:
            continue
        finally:
            for sock in held:
                sock.close()
        return list(range(base, base + count))
    raise AssertionError("no free run of ports")


def connect(address: tuple[str, int], host: str = LOOP, timeout: float = 5.0) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.settimeout(timeout)
    sock.bind((host, 0))
    sock.connect(address)
    return sock


def roundTrips(sock: socket.socket, until: Callable[[int], bool], size: int = 64) -> list[float]:
    """Echo round trips on C{sock} (seconds each) until C{until(count)} is true."""
    payload = b"r" * size
    times: list[float] = []
    while not until(len(times)):
        start = time.perf_counter()
        sock.sendall(payload)
        got = 0
        while got < size:
            chunk = sock.recv(size - got)
            if not chunk:
                raise ConnectionError("echo closed")
            got += len(chunk)
        times.append(time.perf_counter() - start)
    return times


class EchoProbe(threading.Thread):
    """Echo round trips on one connection from C{host} until L{finish}: what another client sees."""

    def __init__(self, address: tuple[str, int], host: str) -> None:
        super().__init__(daemon=True)
        self.sock = connect(address, host, timeout=30)
        self.stopping = threading.Event()
        self.times: list[float] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.times = roundTrips(self.sock, lambda n: self.stopping.wait(0.01))
        except OSError as e:
            self.error = e

    def finish(self) -> dict[str, Any]:
        """Stop; the round trips' count and percentiles (ms), and any error."""
        self.stopping.set()
        self.join(60)
        self.sock.close()
        return {
            "round trips": len(self.times),
            "p50 ms": ms(percentile(self.times, 50)),
            "p99 ms": ms(percentile(self.times, 99)),
            "max ms": ms(max(self.times, default=0)),
            "error": repr(self.error) if self.error else None,
        }


def closeAll(*groups: Iterable[socket.socket]) -> None:
    """Close every socket of C{groups}."""
    for group in groups:
        for sock in group:
            sock.close()


def percentile(values: Sequence[float], p: float) -> float:
    """The nearest-rank C{p}th percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))
    return ordered[int(rank) - 1]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def waitUntil(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll C{condition} every 10 ms; return the seconds it took; fail after C{timeout}."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)
    return time.monotonic() - start


class CloseWatcher(threading.Thread):
    """
    Notes when the server closes each socket L{add}ed (EOF or reset; data it sends is
    read and ignored), from a thread of its own: C{closed} maps an index to the
    C{time.monotonic()} of the close, however long the caller is busy elsewhere.
    """

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.poller = select.epoll()
        self.socks: dict[int, tuple[int, socket.socket]] = {}
        self.closed: dict[int, float] = {}
        self.stopping = threading.Event()
        self.start()

    def add(self, sock: socket.socket) -> int:
        index = len(self.socks)
        self.socks[sock.fileno()] = (index, sock)
        self.poller.register(sock.fileno(), select.EPOLLIN | select.EPOLLRDHUP)
        return index

    def run(self) -> None:
        while not self.stopping.is_set():
            for fd, _ in self.poller.poll(0.1):
                index, sock = self.socks[fd]
                try:
                    data = sock.recv(65536, socket.MSG_DONTWAIT)
                except (BlockingIOError, TimeoutError):
                    continue
                except OSError:
                    data = b""
                if not data:
                    self.closed[index] = time.monotonic()
                    self.poller.unregister(fd)

    def waitAll(self, timeout: float) -> dict[int, float]:
        """Wait until every socket is closed, or C{timeout}; the closes seen."""
        deadline = time.monotonic() + timeout
        while len(self.closed) < len(self.socks) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.stopping.set()
        self.join(5)
        self.poller.close()
        return dict(self.closed)


def closedWithin(socks: Sequence[socket.socket], timeout: float) -> dict[int, float]:
    """
    Wait up to C{timeout} for the server to close each socket (EOF or reset; data the
    server sends is read and ignored); return C{index -> time.monotonic()} of the close
    for those it closed.
    """
    poller = select.epoll()
    index = {}
    for i, sock in enumerate(socks):
        poller.register(sock.fileno(), select.EPOLLIN | select.EPOLLRDHUP)
        index[sock.fileno()] = i
    start = time.monotonic()
    closed: dict[int, float] = {}
    try:
        while len(closed) < len(socks):
            left = start + timeout - time.monotonic()
            if left <= 0:
                break
            for fd, _ in poller.poll(min(left, 0.5)):
                i = index[fd]
                sock = socks[i]
                try:
                    data = sock.recv(65536, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    closed[i] = time.monotonic()
                    poller.unregister(fd)
    finally:
        poller.close()
    return closed
