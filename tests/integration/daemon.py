"""
The real daemon in a child process, for integration tests.

It is started exactly as a user starts it (C{twistd -n netd ...} or the C{netd} script),
on port 0 on loopback, and its log is read to learn where each listener is: no port is
guessed, so parallel runs never collide.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from typing import Any

TWISTD = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]
NETD = [sys.executable, "-c", "from netd.main import main; main()"]
LISTENING = re.compile(r"(\S+) listening on (\w+) (\S+)$")
STARTUP_TIMEOUT = 20.0


def _dieWithParent() -> None:
    """
    In the child, before exec: be killed if the test process dies (Linux), so a test
    run cut short never leaves a daemon behind holding ports.
    """
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def run(
    argv: list[str], timeout: float = 30.0, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion (for commands that must fail fast)."""
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL
    )


class Daemon:
    """
    A running netd; C{stop()} sends SIGTERM.  Use as a context manager or register
    C{stop} as a test cleanup.

    @ivar listeners: C{(service, transport) -> (host, port)} from the startup log.
    """

    def __init__(
        self,
        args: list[str],
        command: list[str] | None = None,
        env: dict[str, str] | None = None,
        expect: int = 1,
        wait: bool = True,
    ) -> None:
        argv = (command or TWISTD + ["-n", "--pidfile=", "netd"]) + args
        environ = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            env=environ,
            preexec_fn=_dieWithParent,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.listeners: dict[tuple[str, str], tuple[str, int]] = {}
        if wait:
            self._waitForStartup(expect)

    def _waitForStartup(self, expect: int) -> None:
        """Wait for the listeners; a daemon that never gets there is killed, not leaked."""
        try:
            self.waitFor(
                lambda: len(self.listeners) >= expect and self.running(), "all listeners up"
            )
        except BaseException:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            raise

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def running(self) -> bool:
        return any("running on" in line for line in self.lines)

    def waitFor(self, condition: Any, what: str, timeout: float = STARTUP_TIMEOUT) -> None:
        """Read the log until C{condition()} holds; fail with the log so far if it does not."""
        deadline = time.monotonic() + timeout
        while not condition():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"timed out waiting for {what}; log:\n" + "\n".join(self.lines)
                )
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                if condition():
                    return
                raise AssertionError(
                    f"netd exited waiting for {what}; log:\n" + "\n".join(self.lines)
                )
            self.lines.append(line)
            match = LISTENING.search(line)
            if match:
                service, transport, address = match.groups()
                if transport == "UNIX":
                    self.listeners[(service, transport)] = (address, 0)
                    continue
                host, _, port = address.rpartition(":")
                self.listeners[(service, transport)] = (host.strip("[]"), int(port))

    def address(self, service: str, transport: str = "TCP") -> tuple[str, int]:
        return self.listeners[(service, transport)]

    def logged(self, text: str, timeout: float = 10.0) -> str:
        """Wait until a log line containing C{text} appears, and return it."""
        found: list[str] = []

        def seen() -> bool:
            found[:] = [line for line in self.lines if text in line]
            return bool(found)

        self.waitFor(seen, repr(text), timeout)
        return found[0]

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, then wait; returns the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            status = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            status = self.process.wait()
        self._reader.join(5)
        while not self._queue.empty():
            line = self._queue.get()
            if line is not None:
                self.lines.append(line)
        return status

    def __enter__(self) -> Daemon:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
