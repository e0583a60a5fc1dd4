"""
Debian's xinetd, the peer netd is compared with: its internal services on free loopback
ports, in the foreground, configured as the benchmarks run it (C{benchmarks/run.py})
(C{type = INTERNAL}, C{flags = NOLIBWRAP}, logging to /dev/null) but with the services a
scenario needs.  C{make tools} installs it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence

from twisted.trial.unittest import SynchronousTestCase

from tests.adversarial.scenarios import LOOP, descendants, freePorts, treeMemory

__all__ = ["Xinetd", "startXinetd", "xinetdCommand", "xinetdVersion"]


def xinetdCommand() -> str | None:
    for candidate in ("xinetd", "/usr/sbin/xinetd"):
        found = shutil.which(candidate)
        if found:
            return found
    return None


#: xinetd's own limits lifted (as the benchmarks configure it), or left at
#: xinetd's defaults (Debian's /etc/xinetd.conf sets none: cps 50 10, no per-source limit).
XINETD_LIFTED = """\
    instances      = UNLIMITED
    per_source     = UNLIMITED
    cps            = 1000000 1
"""

XINETD_SERVICE = """\
service {name}
{{
    id          = {name}-{kind}
    type        = INTERNAL UNLISTED
    socket_type = {kind}
    protocol    = {protocol}
    wait        = {wait}
    user        = root
    bind        = 127.0.0.1
    port        = {port}
}}
"""


class Xinetd:
    """
    Debian's xinetd in the foreground with its internal services (as the benchmarks
    run it: INTERNAL, NOLIBWRAP, log to /dev/null), on free
    loopback ports.  Only 127.0.0.1 may talk to it: xinetd resolves other peers' names.

    @param services: C{(name, "stream"|"dgram")} pairs; C{port(name, kind)} says where.
    @param lifted: lift xinetd's own limits (else they stay at xinetd's defaults).
    """

    def __init__(self, services: Sequence[tuple[str, str]], lifted: bool = True) -> None:
        command = xinetdCommand()
        if command is None:
            raise FileNotFoundError("xinetd is not installed (make tools)")
        self.directory = tempfile.mkdtemp(prefix="netd-adv-xinetd-")
        ports = freePorts(len(services))
        self.ports = {svc: port for svc, port in zip(services, ports, strict=True)}
        body = "".join(
            XINETD_SERVICE.format(
                name=name,
                kind=kind,
                protocol="tcp" if kind == "stream" else "udp",
                wait="no" if kind == "stream" else "yes",
                port=port,
            )
            for (name, kind), port in self.ports.items()
        )
        limits = XINETD_LIFTED if lifted else ""
        config = (
            "defaults\n{\n" + limits + "    log_type       = FILE /dev/null\n"
            "    log_on_success =\n    log_on_failure =\n    flags          = NOLIBWRAP\n}\n\n"
        ) + body
        path = os.path.join(self.directory, "xinetd.conf")
        with open(path, "w") as f:
            f.write(config)
        self.process = subprocess.Popen(
            [command, "-dontfork", "-stayalive", "-pidfile", self.directory + "/pid", "-f", path],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._waitReady()

    def port(self, name: str, kind: str) -> int:
        return self.ports[(name, kind)]

    def _waitReady(self) -> None:
        deadline = time.monotonic() + 10
        stream = [p for (_, kind), p in self.ports.items() if kind == "stream"]
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"xinetd exited with {self.process.returncode}")
            if self._bound(stream):
                return
            if time.monotonic() > deadline:
                raise AssertionError("xinetd did not start")
            time.sleep(0.05)

    def _bound(self, stream: list[int]) -> bool:
        if stream:
            try:
                socket.create_connection((LOOP, stream[0]), timeout=1).close()
                return True
            except OSError:
                return False
        with open("/proc/net/udp") as f:
            bound = {int(line.split()[1].split(":")[1], 16) for line in f.readlines()[1:]}
        return all(port in bound for port in self.ports.values())

    def memory(self) -> tuple[int, int, int]:
        return treeMemory(self.process.pid)

    def stop(self) -> None:
        """SIGTERM to xinetd's process group (it and its forked servers), then SIGKILL."""
        if self.process.returncode is not None:
            return
        pids = descendants(self.process.pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        for pid in pids[1:]:  # a forked server outside the group, if any
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.directory, ignore_errors=True)


def startXinetd(
    test: SynchronousTestCase, services: Sequence[tuple[str, str]], lifted: bool = True
) -> Xinetd:
    """An L{Xinetd} stopped in cleanup; the test is skipped if xinetd is not installed."""
    if xinetdCommand() is None:
        test.skipTest("xinetd is not installed (make tools installs it)")
    peer = Xinetd(services, lifted)
    test.addCleanup(peer.stop)
    return peer


def xinetdVersion() -> str:
    """C{xinetd -version}'s first line (it prints it on stderr)."""
    command = xinetdCommand()
    if command is None:
        return "xinetd (not installed)"
    found = subprocess.run([command, "-version"], capture_output=True, text=True, timeout=10)
    return (found.stderr or found.stdout).strip().splitlines()[0]
