"""
Faults under the real daemon: the line log's file system fills up (ENOSPC) or fails
(EIO), netd is killed with SIGKILL mid-stream (and the disk loses what was not fsynced,
as in a power cut), and the configuration is replaced by broken ones and reloaded under
load.  The file-system scenarios need root (tmpfs and loop mounts made by the test).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from collections import Counter
from functools import partial
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from tests.adversarial.disks import LoopDisk, fill, tmpfs
from tests.adversarial.scenarios import (
    LOOP,
    Netd,
    configFile,
    connect,
    ms,
    percentile,
    record,
    roundTrips,
    serve,
    size,
    source,
    waitUntil,
)

#: How long the disk stays full (or failing) before the space comes back.
FAULT_SECONDS = size(2.0, 6.0)
#: Lines a client sends before waiting for their OKs.
WINDOW = 20
#: The longest wait between two write attempts (netd.logs.output.RETRY_MAX).
RETRY_MAX = 5.0
#: How long the SIGKILL scenario streams before the kill.
KILL_AFTER = size(2.0, 5.0)
FSYNC_MS = 200
#: Broken reloads under load.
RELOADS = size(9, 45)
QUIET = r"\[netd\.protocols\.logger\.\w+#info\]"


class AckedSender(threading.Thread):
    """
    Sends numbered lines to an acknowledging line logger, a window at a time, and
    notes when each line was first sent and when it was acknowledged; a broken
    connection is reopened and every line not yet acknowledged sent again.
    """

    def __init__(self, address: tuple[str, int], name: str, window: int = WINDOW) -> None:
        super().__init__(daemon=True)
        self.address = address
        self.name = name
        self.window = window
        self.sentAt: list[float] = []
        self.ackedAt: list[float] = []
        self.connections = 0
        self.stopping = threading.Event()

    def line(self, index: int) -> str:
        return f"{self.name}-{index:07d} " + "x" * 40

    @property
    def acked(self) -> int:
        return len(self.ackedAt)

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                sock = connect(self.address, LOOP, timeout=1)
            except OSError:
                time.sleep(0.02)
                continue
            self.connections += 1
            try:
                self._session(sock)
            except OSError:
                time.sleep(0.02)
            finally:
                sock.close()

    def _session(self, sock: socket.socket) -> None:
        pending = b""
        while not self.stopping.is_set():
            start = self.acked
            batch = range(start, start + self.window)
            now = time.monotonic()
            for index in batch:
                if index == len(self.sentAt):
                    self.sentAt.append(now)
            sock.sendall(b"".join(self.line(i).encode() + b"\n" for i in batch))
            while self.acked < batch.stop:
                try:
                    data = sock.recv(4096)
                except TimeoutError:
                    if self.stopping.is_set():
                        return
                    continue
                if not data:
                    raise ConnectionResetError("closed")
                pending += data
                while b"\n" in pending:
                    answer, pending = pending.split(b"\n", 1)
                    if answer != b"OK":
                        raise ConnectionAbortedError(answer.decode())
                    self.ackedAt.append(time.monotonic())

    def finish(self) -> None:
        self.stopping.set()
        self.join(30)


def readRecords(path: str) -> tuple[Counter[str], list[bytes]]:
    """Every record's line, counted, and the raw lines that are not JSON records."""
    found: Counter[str] = Counter()
    bad: list[bytes] = []
    with open(path, "rb") as f:
        for raw in f:
            try:
                found[json.loads(raw)["line"]] += 1
            except (ValueError, KeyError, TypeError):
                bad.append(raw)
    return found, bad


def lineloggerArgs(output: str, *more: str) -> list[str]:
    return [
        "--proto",
        "linelogger",
        "--listen",
        "tcp:0:interface=127.0.0.1",
        "--output",
        output,
        "--ack",
        "yes",
        "--rate",
        "0",
        *more,
    ]


def missing(sender: AckedSender, found: Counter[str], upTo: int) -> list[int]:
    """Which of the first C{upTo} lines of C{sender} are not in C{found}."""
    return [i for i in range(upTo) if found[sender.line(i)] == 0]


class FullDiskTests(SynchronousTestCase):
    def test_fullDiskIsLoggedCountedAndRecovered(self) -> None:
        """On a full disk netd logs once, counts, keeps lines in memory, pauses TCP clients, drops and counts datagrams past max-buffer, and writes everything once space returns."""
        directory = tmpfs(self, "256k")
        output = os.path.join(directory, "lines.jsonl")
        daemon = serve(
            self,
            lineloggerArgs(output, "--listen", "udp:0:interface=127.0.0.1")
            + ["--fsync", "always", "--max-buffer", "16K", "--udp-rate", "0"],
            expect=2,
            quiet=QUIET,
        )
        sender = AckedSender(daemon.address("linelogger"), "tcp")
        sender.start()
        self.addCleanup(sender.finish)
        waitUntil(lambda: sender.acked >= 200, 20, "acked lines before the disk fills")
        filler = fill(directory)
        fullAt = time.monotonic()
        datagrams = self._udpWhile(daemon.address("linelogger", "UDP"), FAULT_SECONDS)
        full = daemon.metrics()
        ackedWhileFull = sender.acked
        os.remove(os.path.join(directory, "filler"))
        freedAt = time.monotonic()
        waitUntil(
            lambda: daemon.count("is written again") > 0, RETRY_MAX + 5, "the write to recover"
        )
        recovered = time.monotonic() - freedAt
        waitUntil(lambda: sender.acked >= ackedWhileFull + 200, 20, "acks after recovery")
        sender.finish()
        after = daemon.metrics()
        daemon.stop()
        found, bad = readRecords(output)
        tcpLines = sum(n for line, n in found.items() if line.startswith("tcp-"))
        udpLines = sum(n for line, n in found.items() if line.startswith("udp-"))
        received = int(after.value("netd_datagrams_received_total"))
        dropped = int(after.value("netd_linelog_dropped_lines_total"))
        lost = missing(sender, found, sender.acked)
        duplicates = sum(n - 1 for line, n in found.items() if n > 1)
        figures = {
            "filler bytes": filler,
            "full for s": round(freedAt - fullAt, 2),
            "failed writes": int(after.value("netd_linelog_failed_writes_total")),
            "buffered lines while full": int(full.value("netd_linelog_buffered_lines")),
            "tcp acked before/while full/after": [
                ackedWhileFull,
                sender.acked - ackedWhileFull,
            ],
            "recovered after s": round(recovered, 2),
            "datagrams sent/received/written/dropped": [datagrams, received, udpLines, dropped],
            "tcp lines in file": tcpLines,
            "acked lines missing": len(lost),
            "duplicates": duplicates,
            "unparseable lines": len(bad),
            "'cannot write' log lines": daemon.count("cannot write"),
        }
        record(
            self,
            "enospc",
            thrown=(
                "the line log (--fsync always, --ack yes, --max-buffer 16K, --udp-rate 0) on a 256 KiB tmpfs"
                f" filled by another file for {figures['full for s']} s while a TCP client sends"
                " acknowledged lines and another source sends a line per datagram"
            ),
            did=(
                f"logged ENOSPC once, counted {figures['failed writes']} failed writes (retried"
                f" with backoff), held {figures['buffered lines while full']} lines in memory and"
                " stopped reading the TCP client (no OK while full); dropped and counted"
                f" {dropped} of {received} datagrams past max-buffer; wrote everything"
                f" {recovered:.1f} s after the space came back; {len(lost)} acknowledged lines"
                f" missing, {duplicates} duplicates, {len(bad)} unreadable lines; datagram lines"
                f" written + dropped = {udpLines + dropped} of {received} received"
            ),
            figures=figures,
        )
        self.assertEqual(lost, [])
        self.assertEqual(bad, [])
        self.assertEqual(duplicates, 0)
        self.assertEqual(figures["'cannot write' log lines"], 1)
        self.assertGreater(int(after.value("netd_linelog_failed_writes_total")), 0)
        self.assertGreater(dropped, 0)
        self.assertEqual(udpLines + dropped, received, "every datagram line written or counted")
        self.assertLessEqual(recovered, RETRY_MAX + 2)

    def _udpWhile(self, address: tuple[str, int], seconds: float) -> int:
        """A line per datagram, 10 every 20 ms, from another source, for C{seconds}."""
        sent = 0
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind((source(3), 0))
            start = time.monotonic()
            while time.monotonic() - start < seconds:
                for _ in range(10):
                    sock.sendto(f"udp-{sent:07d} ".encode() + b"y" * 40, address)
                    sent += 1
                time.sleep(0.02)
        return sent


class FailingDiskTests(SynchronousTestCase):
    def test_ioErrorIsLoggedCountedAndRecovered(self) -> None:
        """When fsync fails with EIO, netd logs once, counts, writes the lines again and acknowledges nothing until a write is durable; after the disk recovers no acknowledged line is missing from what the disk holds."""
        disk = LoopDisk(self, sizeMiB=32, journal=False)
        disk.occupy(20)
        output = os.path.join(disk.path, "lines.jsonl")
        daemon = serve(self, lineloggerArgs(output, "--fsync", "always"), quiet=QUIET)
        sender = AckedSender(daemon.address("linelogger"), "eio")
        sender.start()
        self.addCleanup(sender.finish)
        waitUntil(lambda: sender.acked >= 200, 20, "acked lines before the disk fails")
        # Every block the file gets from now on lies past the end of the device.
        disk.failBeyond(max(disk.endOf("lines.jsonl"), disk.endOf("occupied")) + 4096)
        failingAt = time.monotonic()
        waitUntil(lambda: daemon.count("Input/output error") > 0, 10, "the I/O error")
        ackedAtFailure = sender.acked
        time.sleep(FAULT_SECONDS)
        failing = daemon.metrics()
        ackedWhileFailing = sender.acked - ackedAtFailure
        disk.failBeyond(0)
        repairedAt = time.monotonic()
        waitUntil(lambda: daemon.count("is written again") > 0, RETRY_MAX + 5, "recovery")
        recovered = time.monotonic() - repairedAt
        waitUntil(lambda: sender.acked >= ackedAtFailure + 200, 20, "acks after recovery")
        sender.finish()
        after = daemon.metrics()
        daemon.stop()
        cached, cachedBad = readRecords(output)
        disk.remount()
        found, bad = readRecords(output)
        lost = missing(sender, found, sender.acked)
        figures = {
            "failing for s": round(repairedAt - failingAt, 2),
            "failed writes": int(after.value("netd_linelog_failed_writes_total")),
            "buffered lines while failing": int(failing.value("netd_linelog_buffered_lines")),
            "acked while failing": ackedWhileFailing,
            "recovered after s": round(recovered, 2),
            "acked lines": sender.acked,
            "acked lines missing on disk": len(lost),
            "records on disk": sum(found.values()),
            "duplicates on disk": sum(n - 1 for n in found.values() if n > 1),
            "unreadable lines on disk": len(bad),
            "unreadable bytes on disk": sum(len(b) for b in bad),
            "duplicates in the page cache": sum(n - 1 for n in cached.values() if n > 1),
            "'cannot write' log lines": daemon.count("cannot write"),
        }
        record(
            self,
            "eio",
            thrown=(
                "the line log (--fsync always, --ack yes) on ext4 over a loop device that is"
                f" cut short under it for {figures['failing for s']} s (writeback of every new"
                " block fails: fsync returns EIO), then restored, while a client sends acknowledged"
                " lines; then the file system is remounted and the file read from the device"
            ),
            did=(
                f"logged the I/O error once, counted {figures['failed writes']} failed calls,"
                f" acknowledged {ackedWhileFailing} lines while failing and wrote the unsynced"
                f" lines again on each retry; recovered {recovered:.1f} s after the disk did."
                f" On the device: {len(lost)} of {sender.acked} acknowledged lines missing,"
                f" {figures['unreadable lines on disk']} unreadable line(s)"
                f" ({figures['unreadable bytes on disk']:,} bytes: blocks whose writeback"
                " failed read back as zeros)"
            ),
            figures=figures,
        )
        self.assertEqual(lost, [], "an acknowledged line is missing from the disk")
        # Lines may still be acknowledged while the device fails: writes into blocks it
        # already holds can succeed and be fsynced.  What must hold is that every
        # acknowledged line is on the device afterwards (asserted above).
        self.assertEqual(figures["'cannot write' log lines"], 1)
        self.assertGreater(figures["failed writes"], 0)
        self.assertEqual([raw for raw in cachedBad if raw.strip()], [], "only padding")


class KillTests(SynchronousTestCase):
    def test_sigkillLosesAtMostTheFsyncInterval(self) -> None:
        """After SIGKILL the file is valid JSON lines with every acknowledged line; a power cut at that instant loses only lines younger than the fsync interval."""
        disk = LoopDisk(self, sizeMiB=64, journal=True)
        output = os.path.join(disk.path, "lines.jsonl")
        args = lineloggerArgs(output, "--fsync", f"interval={FSYNC_MS}")
        daemon = Netd(args, quiet=QUIET)
        self.addCleanup(daemon.stop)
        senders = [AckedSender(daemon.address("linelogger"), f"k{n}", window=50) for n in range(4)]
        for sender in senders:
            sender.start()
            self.addCleanup(sender.finish)
        time.sleep(KILL_AFTER)
        daemon.process.send_signal(signal.SIGKILL)
        killedAt = time.monotonic()
        snapshot = disk.snapshot()
        daemon.stop()
        for sender in senders:
            sender.finish()
        cut, cutBad = readRecords(os.path.join(snapshot, "lines.jsonl"))
        acked = sum(s.acked for s in senders)
        ackedLost = sum(len(missing(s, cut, s.acked)) for s in senders)
        lostAges = [
            killedAt - s.sentAt[i]
            for s in senders
            for i in range(len(s.sentAt))
            if cut[s.line(i)] == 0
        ]
        restarted = Netd(args, quiet=QUIET)
        self.addCleanup(restarted.stop)
        with connect(restarted.address("linelogger"), LOOP) as sock:
            sock.sendall(b"after the restart\n")
            self.assertEqual(sock.recv(3), b"OK\n")
        restarted.stop()
        found, bad = readRecords(output)
        crashLost = sum(len(missing(s, found, s.acked)) for s in senders)
        figures = {
            "acked lines": acked,
            "acked lines missing after the crash": crashLost,
            "unreadable lines after restart": len(bad),
            "power cut: acked lines missing": ackedLost,
            "power cut: sent lines missing": len(lostAges),
            "power cut: oldest missing line ms": ms(max(lostAges, default=0)),
            "power cut: unreadable lines": len(cutBad),
        }
        record(
            self,
            "sigkill",
            thrown=(
                f"4 clients stream acknowledged lines (--fsync interval={FSYNC_MS}) to a line log"
                f" on ext4; SIGKILL after {KILL_AFTER:g} s; the disk's backing file is copied at"
                " once (a power cut: what only the page cache held is lost), then netd restarts"
                " on the same file"
            ),
            did=(
                f"after the restart the file is valid JSON lines ({len(bad)} unreadable) with all"
                f" {acked:,} acknowledged lines and the new one; in the power-cut copy"
                f" {ackedLost} acknowledged lines are missing and {len(lostAges)} sent lines"
                f" are, the oldest sent {figures['power cut: oldest missing line ms']:.0f} ms"
                f" before the kill (fsync interval {FSYNC_MS} ms)"
            ),
            figures=figures,
        )
        self.assertGreater(acked, 0)
        self.assertEqual(crashLost, 0)
        self.assertLessEqual(len(bad), 1, bad)
        self.assertIn("after the restart", found)
        self.assertEqual(ackedLost, 0)
        self.assertLessEqual(len(cutBad), 1, cutBad)
        self.assertLess(max(lostAges, default=0), FSYNC_MS / 1000 + 1.0)


GOOD_CONFIG = """\
admin = "tcp:0:interface=127.0.0.1"
[services.echo]
listen = ["tcp:{port}:interface=127.0.0.1"]
rate = 0
max-connections = {limit}
"""

#: What an operator might save by mistake: each must be refused, the old config kept.
BROKEN_CONFIGS = {
    "TOML syntax error": "[services.echo\nlisten = 1\n",
    "unknown key": '[services.echo]\nlisten = ["tcp:{port}:interface=127.0.0.1"]\nmax-conections = 5\n',
    "bad value": '[services.echo]\nlisten = ["tcp:{port}:interface=127.0.0.1"]\nmax-connections = "lots"\n',
    "unknown protocol": '[services.echo]\nprotocol = "nope"\nlisten = ["tcp:{port}:interface=127.0.0.1"]\n',
    "bad endpoint": '[services.echo]\nlisten = ["tcp:notaport"]\n',
    "no service": "shutdown-timeout = 5\n",
    "two services, one address": (
        '[services.echo]\nlisten = ["tcp:{port}:interface=127.0.0.1"]\n'
        '[services.other]\nprotocol = "echo"\nlisten = ["tcp:{port}:interface=127.0.0.1"]\n'
    ),
    "binary garbage": "\x00\xff\xfe garbage \x01",
    "file missing": "",
}


def rejectedMoreThan(daemon: Netd, count: int) -> bool:
    return daemon.count("reload rejected") > count


class ReloadTests(SynchronousTestCase):
    def test_brokenReloadsUnderLoad(self) -> None:
        """Broken configurations reloaded with SIGHUP under load are rejected and logged, the old one keeps serving, and no request fails."""
        from tests.adversarial.scenarios import freePorts

        port = freePorts(1)[0]
        path = configFile(self, GOOD_CONFIG.format(port=port, limit=100))
        daemon = serve(self, ["--config", path], expect=2)
        address = daemon.address("echo")
        stop = threading.Event()
        outcome: dict[str, Any] = {"fresh ok": 0, "fresh failed": 0, "errors": Counter()}
        persistent = connect(address, source(1))
        self.addCleanup(persistent.close)
        times: list[float] = []
        looper = threading.Thread(
            target=lambda: times.extend(roundTrips(persistent, lambda n: stop.is_set())),
            daemon=True,
        )
        opener = threading.Thread(target=self._fresh, args=(address, stop, outcome), daemon=True)
        looper.start()
        opener.start()
        variants = list(BROKEN_CONFIGS.items())
        start = time.monotonic()
        for n in range(RELOADS):
            name, text = variants[n % len(variants)]
            if name == "file missing":
                os.remove(path)
            else:
                with open(path, "w", encoding="utf-8", errors="surrogateescape") as f:
                    f.write(text.replace("{port}", str(port)))
            daemon.process.send_signal(signal.SIGHUP)
            waitUntil(partial(rejectedMoreThan, daemon, n), 10, f"rejecting {name}")
            time.sleep(0.05)
        with open(path, "w", encoding="utf-8") as f:
            f.write(GOOD_CONFIG.format(port=port, limit=200))
        daemon.process.send_signal(signal.SIGHUP)
        daemon.logged("reloaded ")
        time.sleep(0.2)
        stop.set()
        looper.join(10)
        opener.join(10)
        elapsed = time.monotonic() - start
        metrics = daemon.metrics()
        rejected = daemon.count("reload rejected")
        figures = {
            "broken reloads": RELOADS,
            "rejected (log)": rejected,
            "rejected (metrics)": int(metrics.value("netd_config_reload_failures_total")),
            "applied": int(metrics.value("netd_config_reloads_total")),
            "round trips": len(times),
            "round trip p99 ms": ms(percentile(times, 99)),
            "round trip max ms": ms(max(times, default=0)),
            "new connections ok/failed": [outcome["fresh ok"], outcome["fresh failed"]],
            "errors": dict(outcome["errors"]),
            "seconds": round(elapsed, 1),
        }
        record(
            self,
            "reload-broken",
            thrown=(
                f"{RELOADS} SIGHUPs, each after overwriting the configuration with a broken one"
                f" ({', '.join(BROKEN_CONFIGS)}), then a good one; meanwhile one client does echo"
                " round trips on an open connection and another opens a new connection every"
                " 10 ms"
            ),
            did=(
                f"rejected all {rejected} (each logged, counted in /metrics), kept serving the"
                f" old configuration on the same port, then applied the good one; {len(times):,}"
                f" round trips (max {figures['round trip max ms']} ms) and"
                f" {outcome['fresh ok']:,} new connections, {outcome['fresh failed']} failed"
            ),
            figures=figures,
        )
        self.assertEqual(rejected, RELOADS)
        self.assertEqual(figures["rejected (metrics)"], RELOADS)
        self.assertEqual(figures["applied"], 1)
        self.assertEqual(outcome["fresh failed"], 0, outcome["errors"])
        self.assertGreater(len(times), 100)
        self.assertGreater(outcome["fresh ok"], 50)

    def _fresh(self, address: tuple[str, int], stop: threading.Event, outcome: dict) -> None:
        while not stop.wait(0.01):
            try:
                with connect(address, source(2), timeout=5) as sock:
                    sock.sendall(b"new")
                    if sock.recv(3) != b"new":
                        raise ConnectionError("no echo")
                outcome["fresh ok"] += 1
            except OSError as e:
                outcome["fresh failed"] += 1
                outcome["errors"][type(e).__name__] += 1
