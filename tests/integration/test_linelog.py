"""
The line logger's durable output with the real daemon: acknowledged lines survive a
SIGTERM and restart part-way through 20 clients' traffic, and a logrotate loses nothing.

Run as a script it measures throughput instead (20 clients, acks on, no restart):

    .venv/bin/python -m tests.integration.test_linelog [--lines N] [--window W] [--dir DIR] [POLICY ...]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import tempfile
import threading
import time
from collections import Counter

from twisted.trial.unittest import SynchronousTestCase

from tests.integration.daemon import Daemon

LOOP = "127.0.0.1"
CLIENTS = 20
TOTAL = 50_000
#: Lines a client sends before waiting for their answers.
WINDOW = 200
#: The whole run must end well within this (seconds).
DEADLINE = 45.0


def freePort() -> int:
    """A TCP port free on loopback right now (bound to port 0, then released)."""
    with socket.socket() as sock:
        sock.bind((LOOP, 0))
        return int(sock.getsockname()[1])


def lineloggerArgs(
    port: int, output: str, fsync: str = "always", shutdownTimeout: str = "1"
) -> list[str]:
    return [
        "--proto",
        "linelogger",
        "--listen",
        f"tcp:{port}:interface={LOOP}",
        "--output",
        output,
        "--fsync",
        fsync,
        "--ack",
        "yes",
        "--rate",
        "0",
        "--shutdown-timeout",
        shutdownTimeout,
    ]


class Client(threading.Thread):
    """
    Sends its lines over one connection at a time, a window at a time, and counts the
    C{OK}s: the k-th answer on a connection is for the k-th line sent on it.  When the
    connection breaks (or a line is answered C{ERR}) it reconnects and resends every
    line not yet acknowledged, from the first one.

    @ivar acked: C{lines[:acked]} are acknowledged.
    @ivar sends: how many times each line was sent.
    """

    def __init__(
        self, address: tuple[str, int], lines: list[bytes], deadline: float, window: int = WINDOW
    ) -> None:
        super().__init__(daemon=True)
        self.window = window
        #: seconds without an answer before giving up on the connection (and resending)
        self.timeout = 30.0
        self.address = address
        self.lines = lines
        self.deadline = deadline
        self.acked = 0
        self.sends = [0] * len(lines)
        self.connections = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while self.acked < len(self.lines) and time.monotonic() < self.deadline:
                try:
                    sock = socket.create_connection(self.address, timeout=self.timeout)
                except OSError:
                    time.sleep(0.02)  # the daemon is restarting
                    continue
                self.connections += 1
                try:
                    self._session(sock)
                except OSError:
                    pass
                finally:
                    sock.close()
        except BaseException as e:  # reported by the test, not lost in a thread
            self.error = e

    def _session(self, sock: socket.socket) -> None:
        pending = b""
        while self.acked < len(self.lines):
            start = self.acked
            window = self.lines[start : start + self.window]
            for index in range(start, start + len(window)):
                self.sends[index] += 1
            sock.sendall(b"".join(window))
            answered = 0
            while answered < len(window):
                data = sock.recv(65536)
                if not data:
                    raise ConnectionResetError("closed by the daemon")
                pending += data
                while b"\n" in pending:
                    answer, pending = pending.split(b"\n", 1)
                    if answer != b"OK":
                        raise ConnectionAbortedError(f"answered {answer!r}")
                    self.acked += 1
                    answered += 1


def linesOf(client: int, count: int) -> list[bytes]:
    return [b"c%02d-%06d\n" % (client, i) for i in range(count)]


def startClients(
    address: tuple[str, int], total: int, deadline: float, window: int = WINDOW
) -> list[Client]:
    lines = total // CLIENTS
    clients = [Client(address, linesOf(n, lines), deadline, window) for n in range(CLIENTS)]
    for client in clients:
        client.start()
    return clients


def recorded(*paths: str) -> Counter[str]:
    """How many times each line is in the files (every record must parse)."""
    found: Counter[str] = Counter()
    for path in paths:
        with open(path, "rb") as f:
            for raw in f:
                found[json.loads(raw)["line"]] += 1
    return found


class RestartTests(SynchronousTestCase):
    def test_acknowledgedLinesSurviveRestart(self) -> None:
        """
        20 clients send 50,000 lines with acks while the daemon is stopped with SIGTERM
        and restarted on the same port and file: every line ends up acknowledged and in
        the file; one sent once is there exactly once, a resent one at most as often as
        it was sent (at-least-once: a line written whose OK was lost is duplicated).
        """
        output = os.path.abspath(self.mktemp())
        port = freePort()
        deadline = time.monotonic() + DEADLINE
        # No grace: open connections are aborted at once, mid-stream.
        args = lineloggerArgs(port, output, shutdownTimeout="0")
        daemon = Daemon(args)
        self.addCleanup(lambda: daemon.stop())
        clients = startClients((LOOP, port), TOTAL, deadline)
        while sum(c.acked for c in clients) < TOTAL * 0.2:
            self.assertLess(time.monotonic(), deadline, "too slow before the restart")
            time.sleep(0.002)
        daemon.stop()
        ackedAtStop = sum(c.acked for c in clients)
        daemon = Daemon(args)
        for client in clients:
            client.join(max(0.0, deadline - time.monotonic()))
        daemon.stop()

        for client in clients:
            self.assertIsNone(client.error)
            self.assertEqual(client.acked, len(client.lines), "every line acknowledged in time")
        self.assertLess(ackedAtStop, TOTAL, "the restart came part-way")
        self.assertTrue(all(c.connections >= 2 for c in clients))
        found = recorded(output)
        duplicates = 0
        for client in clients:
            for line, sends in zip(client.lines, client.sends, strict=True):
                text = line.decode().rstrip("\n")
                self.assertGreaterEqual(found[text], 1, f"{text} acknowledged but missing")
                self.assertLessEqual(found[text], sends, f"{text} more often than sent")
                self.assertLessEqual(found[text], 2, text)
                if sends == 1:
                    self.assertEqual(found[text], 1, text)
                duplicates += found[text] - 1
        self.assertEqual(sum(found.values()), TOTAL + duplicates, "no line never sent")


class RotationTests(SynchronousTestCase):
    def test_logrotateLosesNothing(self) -> None:
        """
        The file is renamed and SIGUSR1 sent mid-stream: later lines land in a new file,
        the acknowledged earlier ones are in the old one, each line exactly once.
        """
        output = os.path.abspath(self.mktemp())
        port = freePort()
        daemon = Daemon(lineloggerArgs(port, output, fsync="interval=100"))
        self.addCleanup(daemon.stop)
        deadline = time.monotonic() + DEADLINE
        [client] = [Client((LOOP, port), linesOf(0, 20_000), deadline)]
        client.start()
        while client.acked < 5_000:
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.005)
        os.rename(output, output + ".1")
        ackedBefore = client.acked
        daemon.process.send_signal(signal.SIGUSR1)
        daemon.logged(f"{output} reopened")
        client.join(max(0.0, deadline - time.monotonic()))
        daemon.stop()

        self.assertIsNone(client.error)
        self.assertEqual((client.acked, client.connections), (20_000, 1))
        old, new = recorded(output + ".1"), recorded(output)
        expected = [line.decode().rstrip("\n") for line in client.lines]
        self.assertTrue(all(old[text] == 1 for text in expected[:ackedBefore]))
        self.assertGreater(len(new), 0)
        self.assertEqual(old + new, Counter(expected))


def measure(policy: str, total: int, directory: str, window: int) -> float:
    """Lines per second for C{total} lines from 20 acknowledged clients."""
    output = os.path.join(directory, f"{policy}.jsonl")
    port = freePort()
    daemon = Daemon(lineloggerArgs(port, output, fsync=policy))
    try:
        start = time.monotonic()
        clients = startClients((LOOP, port), total, start + 600, window)
        for client in clients:
            client.join()
        elapsed = time.monotonic() - start
    finally:
        daemon.stop()
    assert all(c.acked == len(c.lines) for c in clients)
    assert sum(recorded(output).values()) == total
    os.remove(output)
    return total / elapsed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="linelogger throughput, 20 clients, --ack yes")
    parser.add_argument("--lines", type=int, default=TOTAL, help="in all (default 50,000)")
    parser.add_argument("--window", type=int, default=WINDOW, help="lines in flight per client")
    parser.add_argument("--dir", default=None, help="for the output file (default: a temp dir)")
    parser.add_argument("policies", nargs="*", default=["always", "interval=1000", "never"])
    args = parser.parse_args(argv)
    directory = args.dir or tempfile.mkdtemp(prefix="linelog-bench-")
    for policy in args.policies:
        rate = measure(policy, args.lines, directory, args.window)
        sys.stdout.write(
            f"--fsync {policy:<14} {args.lines} lines, window {args.window}: {rate:,.0f} lines/s\n"
        )
    if args.dir is None:
        os.rmdir(directory)


if __name__ == "__main__":
    main()
