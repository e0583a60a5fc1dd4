"""
Reload on SIGHUP and the graceful stop on SIGTERM, against the real daemon.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time

from twisted.trial.unittest import SynchronousTestCase

from tests.integration.daemon import TWISTD, Daemon
from tests.integration.test_policies import closedByServer, echoes

ECHO = '[services.echo]\nlisten = ["tcp:0:interface=127.0.0.1"]\n'
DISCARD = '[services.discard]\nlisten = ["tcp:0:interface=127.0.0.1"]\n'
DAYTIME = '[services.daytime]\nlisten = ["tcp:0:interface=127.0.0.1"]\n'


def refuses(address: tuple[str, int]) -> bool:
    try:
        socket.create_connection(address, timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


class ReloadTests(SynchronousTestCase):
    def writeConfig(self, text: str) -> str:
        path = getattr(self, "configPath", None) or self.mktemp()
        self.configPath = path
        with open(path + ".new", "w") as f:
            f.write(text)
        os.replace(path + ".new", path)
        return path

    def test_reloadAddsAndRemovesWhileAConnectionStaysOpen(self) -> None:
        """SIGHUP adds and removes services; an open connection of an unchanged listener carries on."""
        path = self.writeConfig(ECHO + DISCARD)
        daemon = Daemon(["--config", path], expect=2)
        self.addCleanup(daemon.stop)
        echoAddress, discardAddress = daemon.address("echo"), daemon.address("discard")
        with socket.create_connection(echoAddress, timeout=5) as kept:
            self.assertTrue(echoes(kept, b"before"))
            self.writeConfig(ECHO + "max-connections = 10\n" + DAYTIME)
            daemon.process.send_signal(signal.SIGHUP)
            daemon.logged("reloaded")
            daemon.logged("daytime listening on TCP")
            self.assertTrue(echoes(kept, b"after"))
            self.assertTrue(refuses(discardAddress))
            with socket.create_connection(daemon.address("daytime"), timeout=5) as day:
                self.assertTrue(day.recv(100).endswith(b"\r\n"))
            with socket.create_connection(echoAddress, timeout=5) as fresh:
                self.assertTrue(echoes(fresh))

    def test_badConfigIsRejectedAndTheOldOneKeepsServing(self) -> None:
        """A reload with an invalid file is logged and changes nothing."""
        path = self.writeConfig(ECHO)
        daemon = Daemon(["--config", path])
        self.addCleanup(daemon.stop)
        self.writeConfig(ECHO + "max-conections = 3\n")
        daemon.process.send_signal(signal.SIGHUP)
        line = daemon.logged("reload rejected")
        self.assertIn("unknown key 'max-conections'", line)
        with socket.create_connection(daemon.address("echo"), timeout=5) as sock:
            self.assertTrue(echoes(sock))

    def test_reloadChangesRulesOfARunningListener(self) -> None:
        """A changed rule applies to new connections on the same socket, without a rebind."""
        path = self.writeConfig(ECHO)
        daemon = Daemon(["--config", path])
        self.addCleanup(daemon.stop)
        address = daemon.address("echo")
        with socket.create_connection(address, timeout=5) as kept:
            self.assertTrue(echoes(kept))  # accepted (and admitted) before the reload
            self.writeConfig(ECHO + 'deny = ["127.0.0.1"]\n')
            daemon.process.send_signal(signal.SIGHUP)
            daemon.logged("reloaded")
            self.assertTrue(echoes(kept))
            with socket.create_connection(address, timeout=5) as refused:
                self.assertTrue(closedByServer(refused))


class StopTests(SynchronousTestCase):
    def test_gracefulStopLetsOpenConnectionsFinish(self) -> None:
        """SIGTERM stops accepting, lets an open connection finish, then exits."""
        daemon = Daemon(
            ["--proto", "echo", "--listen", "tcp:0:interface=127.0.0.1", "--shutdown-timeout", "10"]
        )
        self.addCleanup(daemon.stop)
        address = daemon.address("echo")
        with socket.create_connection(address, timeout=5) as sock:
            self.assertTrue(echoes(sock))
            daemon.process.send_signal(signal.SIGTERM)
            daemon.logged("waiting up to 10.0s for 1 open connections")
            self.assertTrue(refuses(address))
            self.assertTrue(echoes(sock, b"still here"))
        start = time.monotonic()
        status = daemon.process.wait(10)
        self.assertLess(time.monotonic() - start, 5)
        self.assertIn(status, (0, -signal.SIGTERM))
        daemon.stop()
        self.assertTrue(any("closed after" in line for line in daemon.lines))

    def test_shutdownTimeoutAbortsStragglers(self) -> None:
        """A connection still open at the shutdown timeout is closed and the daemon exits."""
        daemon = Daemon(
            ["--proto", "echo", "--listen", "tcp:0:interface=127.0.0.1", "--shutdown-timeout", "1"]
        )
        self.addCleanup(daemon.stop)
        with socket.create_connection(daemon.address("echo"), timeout=5) as sock:
            self.assertTrue(echoes(sock))
            start = time.monotonic()
            daemon.process.send_signal(signal.SIGTERM)
            self.assertTrue(closedByServer(sock, timeout=5))
            daemon.process.wait(10)
            self.assertGreaterEqual(time.monotonic() - start, 0.9)
        daemon.stop()
        self.assertTrue(
            any("shutdown" in line and "closed after" in line for line in daemon.lines),
            daemon.lines,
        )

    def test_logrotateSignalKeepsWorking(self) -> None:
        """twistd's SIGUSR1 log rotation still works with netd running."""
        logfile = os.path.abspath(self.mktemp())
        daemon = Daemon(
            ["--proto", "echo", "--listen", "tcp:0:interface=127.0.0.1"],
            command=TWISTD + ["-n", "--pidfile=", "--logfile", logfile, "netd"],
            wait=False,
        )
        self.addCleanup(daemon.stop)
        deadline = time.monotonic() + 10
        while "running on" not in (open(logfile).read() if os.path.exists(logfile) else ""):
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.05)
        daemon.process.send_signal(signal.SIGUSR1)
        while not os.path.exists(logfile + ".1"):
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.05)
        with open(logfile + ".1") as f:
            self.assertIn("running on", f.read())


class JsonLogTests(SynchronousTestCase):
    def test_logFormatJson(self) -> None:
        """--log-format json writes one JSON object per line, connection records included."""
        process = subprocess.Popen(
            TWISTD
            + [
                "-n",
                "--pidfile=",
                "netd",
                "--proto",
                "daytime",
                "--listen",
                "tcp:0:interface=127.0.0.1",
                "--log-format",
                "json",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
        self.addCleanup(lambda: process.poll() is None and process.kill())
        assert process.stdout is not None
        records = []
        for line in process.stdout:
            records.append(json.loads(line))
            if "listening on" in records[-1]["message"]:
                break
        port = int(records[-1]["message"].rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.recv(100)
        for line in process.stdout:
            records.append(json.loads(line))
            if "closed after" in records[-1]["message"]:
                break
        process.send_signal(signal.SIGTERM)
        rest, _ = process.communicate(timeout=10)
        records += [json.loads(line) for line in rest.splitlines()]
        closed = [r for r in records if "closed after" in r["message"]][0]
        self.assertEqual(closed["service"], "daytime")
        self.assertEqual(closed["reason"], "server closed")
        self.assertGreater(closed["bytesOut"], 20)
        self.assertTrue(all({"time", "level", "message"} <= set(r) for r in records))
