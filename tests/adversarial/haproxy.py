"""
A real HAProxy (Debian's C{haproxy}) in front of netd, for tests.

The test writes the configuration, runs C{haproxy -db} (foreground, no daemon, no
master process) on a free loopback port in TCP mode, waits until the port accepts and
kills it in cleanup.  Every address in the configuration is an IP literal and there is
no C{resolvers} section, so HAProxy never asks DNS; every timeout is short, so a stuck
test fails instead of hanging.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time

__all__ = ["HAProxy", "haproxyCommand"]

#: The source address whose connections HAProxy drops without touching the backend:
#: the readiness probe uses it, so waiting for HAProxy never shows up in netd's figures.
PROBE_SOURCE = "127.0.0.254"
START_TIMEOUT = 10.0
BIND_ATTEMPTS = 3

CONFIG = """\
global
    nbthread 1
    maxconn 200

defaults
    mode tcp
    timeout connect 2s
    timeout client 10s
    timeout server 10s
    retries 0

frontend clients
    bind {listen}
    tcp-request connection reject if {{ src {probe} }}
{frontendOptions}
    default_backend netd

backend netd
    server netd {backend} {header}{source}
"""


def haproxyCommand() -> str:
    """
    The haproxy binary (Debian puts it in /usr/sbin, not always on C{PATH}).

    @raise AssertionError: when it is not installed: these tests must fail loudly, not
        skip, so a machine without it cannot pass them by accident.
    """
    for candidate in ("haproxy", "/usr/sbin/haproxy"):
        found = shutil.which(candidate)
        if found:
            return found
    raise AssertionError(
        "haproxy is not installed: run `make tools` (apt-get install haproxy); "
        "the PROXY-protocol tests need the real proxy"
    )


def freePort(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (HAProxy cannot report a port 0 it bound)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class HAProxy:
    """
    One running HAProxy forwarding C{127.0.0.1:<free port>} to C{backend}.

    @param directory: where the configuration and HAProxy's output are written.
    @param backend: netd's C{haproxy:} listener: C{(host, port)}, or a unix socket path.
    @param header: C{"send-proxy"} (v1) or C{"send-proxy-v2"}, with any server options.
    @param source: the address HAProxy connects to netd from (the kernel's choice, which
        is C{127.0.0.1} on loopback, if C{None}).
    @param frontendOptions: extra lines for the frontend section.
    @ivar address: where clients connect.
    """

    def __init__(
        self,
        directory: str,
        backend: tuple[str, int] | str,
        header: str,
        source: str | None = None,
        frontendOptions: str = "",
    ) -> None:
        self.command = haproxyCommand()
        self.directory = directory
        self.backend = backend
        self.header = header
        self.source = source
        self.frontendOptions = frontendOptions
        self.process: subprocess.Popen[bytes] | None = None
        self.address = ("127.0.0.1", 0)
        for _ in range(BIND_ATTEMPTS):  # another process may take the free port first
            if self._start(freePort()):
                return
        raise AssertionError(f"haproxy did not start; its output:\n{self.output()}")

    def configuration(self) -> str:
        if isinstance(self.backend, str):
            backend = f"unix@{self.backend}"
        else:
            backend = "{}:{}".format(*self.backend)
        return CONFIG.format(
            listen=f"{self.address[0]}:{self.address[1]}",
            probe=PROBE_SOURCE,
            frontendOptions=self.frontendOptions,
            backend=backend,
            header=self.header,
            source=f" source {self.source}" if self.source else "",
        )

    def _start(self, port: int) -> bool:
        """Start on C{port}; whether it then accepts (C{False}: it exited, e.g. port taken)."""
        self.address = ("127.0.0.1", port)
        config = os.path.join(self.directory, "haproxy.cfg")
        with open(config, "w") as f:
            f.write(self.configuration())
        with open(os.path.join(self.directory, "haproxy.log"), "wb") as log:
            self.process = subprocess.Popen(
                [self.command, "-db", "-f", config],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            if self._accepts():
                return True
            time.sleep(0.05)
        self.stop()
        raise AssertionError(f"haproxy did not accept within {START_TIMEOUT}s:\n{self.output()}")

    def _accepts(self) -> bool:
        """
        Whether HAProxy itself answers: a probe from L{PROBE_SOURCE} is accepted, then
        closed by HAProxy's rule (so a kernel backlog alone does not count as ready).
        """
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.settimeout(1.0)
            probe.bind((PROBE_SOURCE, 0))
            try:
                probe.connect(self.address)
                return probe.recv(1) == b""
            except ConnectionResetError:
                return True
            except OSError:
                return False

    def output(self) -> str:
        try:
            with open(os.path.join(self.directory, "haproxy.log"), errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        """Terminate HAProxy (SIGTERM, then SIGKILL after five seconds)."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
