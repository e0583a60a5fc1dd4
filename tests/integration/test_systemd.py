"""
systemd integration against real processes, without systemd as PID 1: socket
activation through C{systemd-socket-activate}, notifications read from a socket the
test binds itself, and the shipped unit files checked by C{systemd-analyze}.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from unittest import SkipTest

from twisted.trial.unittest import SynchronousTestCase

from tests.integration.daemon import TWISTD, Daemon

CONTRIB = Path(__file__).resolve().parents[2] / "contrib" / "systemd"
UNITS = sorted(CONTRIB.glob("netd*.s*")) + [CONTRIB / "netd.target"]
#: How long anything here may take: a daemon start, a reply, a notification.
TIMEOUT = 20.0
#: The worst exposure the shipped service may score in C{systemd-analyze security}.
MAX_EXPOSURE = 2.0
#: The same for netd-exec.service, which runs as root to start programs as other users
#: (2.3 measured with systemd 252: root, CAP_SETUID/CAP_SETGID/CAP_KILL, no PrivateUsers=).
MAX_EXEC_EXPOSURE = 2.5


def need(*tools: str) -> None:
    """Skip unless C{tools} are installed (the Makefile's C{tools} target installs them)."""
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        raise SkipTest(f"not installed: {', '.join(missing)} (run `make tools`)")


def freePorts(kinds: list[socket.SocketKind]) -> list[int]:
    """Loopback ports free right now, one per socket kind, all distinct."""
    held = []
    for kind in kinds:
        sock = socket.socket(socket.AF_INET, kind)
        sock.bind(("127.0.0.1", 0))
        held.append(sock)
    ports = [sock.getsockname()[1] for sock in held]
    for sock in held:
        sock.close()
    return ports


def activate(ports: list[int], names: list[str], datagram: bool = False) -> list[str]:
    """
    C{systemd-socket-activate} binding C{ports} on loopback, named C{names} (every
    inherited socket's name, including those passed down from an outer activation).
    It passes on only the variables named with C{-E}.
    """
    command = ["systemd-socket-activate", *(["--datagram"] if datagram else [])]
    for port in ports:
        command += ["-l", f"127.0.0.1:{port}"]
    command += [f"--fdname={':'.join(names)}", "-E", "PYTHONUNBUFFERED=1"]
    for name in ("PYTHONPATH", "COVERAGE_PROCESS_START"):
        if name in os.environ:
            command += ["-E", name]
    return command


def netdUnder(*activations: list[str]) -> list[str]:
    """The C{twistd netd} command run by C{activations}, outermost first."""
    return (
        [part for command in activations for part in command]
        + TWISTD
        + [
            "-n",
            "--pidfile=",
            "netd",
        ]
    )


def exchange(address: tuple[str, int], data: bytes) -> bytes:
    """Send one datagram and return the reply (which may wait for netd to start)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(TIMEOUT)
        sock.sendto(data, address)
        return sock.recv(65536)


def echoed(address: tuple[str, int], data: bytes = b"hello\r\n") -> bytes:
    """Send C{data} over TCP and read as many bytes back."""
    with socket.create_connection(address, timeout=TIMEOUT) as sock:
        sock.sendall(data)
        reply = b""
        while len(reply) < len(data):
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
        return reply


class SocketActivationTests(SynchronousTestCase):
    def setUp(self) -> None:
        need("systemd-socket-activate")

    def start(self, command: list[str], args: list[str]) -> Daemon:
        """Start the activator; netd replaces it at the first connection or datagram."""
        daemon = Daemon(args, command=command, wait=False)
        self.addCleanup(daemon.stop)
        daemon.logged("Listening on", timeout=TIMEOUT)
        return daemon

    def test_tcpSocketByName(self) -> None:
        """A stream socket named echo serves echo when netd listens on systemd:...:name=echo."""
        [port] = freePorts([socket.SOCK_STREAM])
        daemon = self.start(
            netdUnder(activate([port], ["echo"])),
            ["--proto", "echo", "--listen", "systemd:domain=INET:name=echo"],
        )
        self.assertEqual(echoed(("127.0.0.1", port)), b"hello\r\n")
        daemon.logged(f"echo listening on TCP 127.0.0.1:{port}")
        self.assertEqual(echoed(("127.0.0.1", port), b"again"), b"again")
        self.assertEqual(daemon.stop(), -signal.SIGTERM)

    def test_udpSocketByName(self) -> None:
        """A datagram socket named echo-udp serves echo when netd listens on systemd-udp:name=echo-udp."""
        [port] = freePorts([socket.SOCK_DGRAM])
        daemon = self.start(
            netdUnder(activate([port], ["echo-udp"], datagram=True)),
            ["--proto", "echo", "--listen", "systemd-udp:name=echo-udp"],
        )
        self.assertEqual(exchange(("127.0.0.1", port), b"first"), b"first")
        daemon.logged(f"echo listening on UDP 127.0.0.1:{port}")
        self.assertEqual(exchange(("127.0.0.1", port), b"second"), b"second")

    def test_wrongKindOfSocketIsOneLine(self) -> None:
        """A stream socket given to systemd-udp: stops startup with one line saying why."""
        [port] = freePorts([socket.SOCK_STREAM])
        daemon = self.start(
            netdUnder(activate([port], ["echo"])),
            ["--proto", "echo", "--listen", "systemd-udp:name=echo"],
        )
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT).close()
        line = daemon.logged("netd: echo: cannot listen", timeout=TIMEOUT)
        self.assertEqual(
            line,
            "netd: echo: cannot listen on systemd-udp:name=echo: inherited descriptor 3 "
            "is a stream socket, this listener needs a datagram one (ListenDatagram=)",
        )
        self.assertEqual(daemon.process.wait(TIMEOUT), 1)

    def test_shippedConfigServesEveryShippedSocket(self) -> None:
        """contrib/systemd/netd-classic.toml serves all eight sockets of the shipped units."""
        udpNames = ["echo-udp", "daytime-udp", "time-udp"]
        tcpNames = ["echo", "discard", "daytime", "chargen", "time"]
        ports = freePorts([socket.SOCK_DGRAM] * 3 + [socket.SOCK_STREAM] * 5)
        udp = dict(zip(udpNames, ports[:3], strict=True))
        tcp = dict(zip(tcpNames, ports[3:], strict=True))
        # The outer activator passes its datagram sockets down to the inner one, which
        # adds the stream sockets: netd inherits all eight, named as the units name them.
        daemon = self.start(
            netdUnder(
                activate(list(udp.values()), udpNames, datagram=True),
                activate(list(tcp.values()), udpNames + tcpNames),
            ),
            ["--config", str(CONTRIB / "netd-classic.toml")],
        )
        self.assertEqual(exchange(("127.0.0.1", udp["echo-udp"]), b"ping"), b"ping")
        daemon.waitFor(lambda: len(daemon.listeners) == 8 and daemon.running(), "8 listeners")
        self.assertEqual(echoed(("127.0.0.1", tcp["echo"])), b"hello\r\n")
        self.assertTrue(exchange(("127.0.0.1", udp["daytime-udp"]), b"").endswith(b"\r\n"))
        self.assertEqual(len(exchange(("127.0.0.1", udp["time-udp"]), b"")), 4)
        with socket.create_connection(("127.0.0.1", tcp["chargen"]), timeout=TIMEOUT) as sock:
            self.assertEqual(len(sock.recv(74)), 74)
        with socket.create_connection(("127.0.0.1", tcp["daytime"]), timeout=TIMEOUT) as sock:
            self.assertTrue(sock.recv(100).endswith(b"\r\n"))


class NotificationTests(SynchronousTestCase):
    def setUp(self) -> None:
        directory = tempfile.mkdtemp(prefix="netd-notify-")
        self.addCleanup(shutil.rmtree, directory, True)
        self.notifyPath = os.path.join(directory, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(self.sock.close)
        self.sock.bind(self.notifyPath)
        self.watchdogs = 0

    def next(self) -> str:
        """The next notification other than a watchdog ping (those are counted)."""
        deadline = time.monotonic() + TIMEOUT
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.fail("no notification within the timeout")
            self.sock.settimeout(remaining)
            message = self.sock.recv(65536).decode("utf-8")
            if message == "WATCHDOG=1":
                self.watchdogs += 1
            else:
                return message

    def test_readyReloadStopAndWatchdog(self) -> None:
        """netd says READY=1 once it accepts connections, RELOADING=1/READY=1 on SIGHUP, STOPPING=1 on SIGTERM, and pings the watchdog."""
        [port] = freePorts([socket.SOCK_STREAM])
        config = self.mktemp()
        with open(config, "w") as f:
            f.write(f'[services.echo]\nlisten = ["tcp:{port}:interface=127.0.0.1"]\n')
        daemon = Daemon(
            ["--config", config],
            env={"NOTIFY_SOCKET": self.notifyPath, "WATCHDOG_USEC": "200000"},
            wait=False,
        )
        self.addCleanup(daemon.stop)

        ready = self.next()
        self.assertEqual(echoed(("127.0.0.1", port)), b"hello\r\n")  # at once: already bound
        self.assertEqual(ready, f"READY=1\nSTATUS=serving echo (tcp:{port}:interface=127.0.0.1)")

        deadline = time.monotonic() + TIMEOUT
        while self.watchdogs < 5 and time.monotonic() < deadline:
            self.sock.settimeout(max(deadline - time.monotonic(), 0.01))
            self.assertEqual(self.sock.recv(65536), b"WATCHDOG=1")
            self.watchdogs += 1
        self.assertGreaterEqual(self.watchdogs, 5)

        before = time.monotonic_ns() // 1000
        daemon.process.send_signal(signal.SIGHUP)
        reloading = self.next()
        match = re.fullmatch(
            r"RELOADING=1\nMONOTONIC_USEC=(\d+)\nSTATUS=reloading configuration", reloading
        )
        assert match is not None, reloading
        self.assertTrue(before <= int(match[1]) <= time.monotonic_ns() // 1000)
        self.assertEqual(self.next(), ready)

        daemon.process.send_signal(signal.SIGTERM)
        self.assertEqual(self.next(), "STOPPING=1\nSTATUS=stopping: finishing open connections")
        self.assertEqual(daemon.stop(), -signal.SIGTERM)


#: In a process with a reduced capability set: fork a child that becomes nobody (as
#: setpriv --reuid does), wait until it has, then signal it as netd stops a program.
_SIGNAL_CHILD = """
import os, resource, signal
upRead, upWrite = os.pipe()
downRead, downWrite = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(upRead); os.close(downWrite)
    os.setgroups([]); os.setgid(65534); os.setuid(65534)
    status = open("/proc/self/status").read()
    os.write(upWrite, b"0" if "CapEff:\t0000000000000000" in status else b"c")
    os.read(downRead, 1)
    os._exit(0)
os.close(upWrite); os.close(downRead)
caps = os.read(upRead, 1).decode()
limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
try:
    os.kill(pid, signal.SIGTERM)
    print("child", 65534, limit, caps, "signalled")
except PermissionError:
    print("child", 65534, limit, caps, "EPERM")
os.close(downWrite)
os.waitpid(pid, 0)
"""


class UnitFileTests(SynchronousTestCase):
    def setUp(self) -> None:
        need("systemd-analyze")

    def verify(self, edit: str = "") -> subprocess.CompletedProcess[str]:
        """
        C{systemd-analyze verify} on a copy of the units, with C{edit} added to the
        service.  verify requires C{ExecStart} to exist, so the copy runs the netd
        installed next to this Python instead of /usr/local/bin/netd.
        """
        directory = tempfile.mkdtemp(prefix="netd-units-")
        self.addCleanup(shutil.rmtree, directory, True)
        netd = Path(sys.executable).parent / "netd"
        for unit in UNITS:
            text = unit.read_text().replace("/usr/local/bin/netd", str(netd))
            if unit.name == "netd.service":
                text = text.replace("[Service]\n", f"[Service]\n{edit}")
            (Path(directory) / unit.name).write_text(text)
        return subprocess.run(
            ["systemd-analyze", "verify", *(os.path.join(directory, u.name) for u in UNITS)],
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )

    def test_unitsVerifyCleanly(self) -> None:
        """systemd-analyze verify accepts every shipped unit without a single warning."""
        self.assertIn("netd.service", [unit.name for unit in UNITS])
        result = self.verify()
        self.assertEqual((result.returncode, result.stderr), (0, ""))

    def test_verifyWarningsAreCaught(self) -> None:
        """A misspelt key only warns (exit 0), which is why the lint requires an empty stderr."""
        result = self.verify(edit="ProtectSytem=strict\n")
        self.assertEqual(result.returncode, 0)
        self.assertIn("Unknown key 'ProtectSytem'", result.stderr)

    def exposure(self, unit: str, threshold: float) -> float:
        """C{systemd-analyze security}'s overall exposure of a shipped unit, gated at C{threshold}."""
        command = ["systemd-analyze", "security", "--offline=true"]
        result = subprocess.run(
            [*command, f"--threshold={int(threshold * 10)}", str(CONTRIB / unit)],
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        match = re.search(
            rf"Overall exposure level for {re.escape(unit)}: (\d+\.\d) (\w+)", result.stdout
        )
        assert match is not None, result.stdout + result.stderr
        self.assertLessEqual(float(match[1]), threshold, match[0])
        self.assertIn(match[2], ("OK", "SAFE"))
        self.assertEqual(result.returncode, 0, result.stderr)
        return float(match[1])

    def test_serviceIsHardened(self) -> None:
        """systemd-analyze security rates the shipped service at most 2.0 (OK or SAFE)."""
        self.exposure("netd.service", MAX_EXPOSURE)

    def test_execCapabilitiesSuffice(self) -> None:
        """With only netd-exec.service's capabilities, root starts a child as another user with limits and signals it; without CAP_KILL it cannot."""
        if os.geteuid() != 0 or shutil.which("setpriv") is None:
            if os.environ.get("NETD_REQUIRE_ALL") == "1":
                self.fail("needs root and setpriv (util-linux)")
            raise SkipTest("needs root and setpriv (util-linux)")
        unit = (CONTRIB / "netd-exec.service").read_text()
        [line] = [x for x in unit.splitlines() if x.startswith("CapabilityBoundingSet=")]
        capabilities = [c.removeprefix("CAP_").lower() for c in line.split("=", 1)[1].split()]

        def run(keep: list[str]) -> subprocess.CompletedProcess[str]:
            bounding = ",".join(["-all", *(f"+{c}" for c in keep)])
            return subprocess.run(
                ["setpriv", f"--bounding-set={bounding}", "--",
                 "prlimit", "--nofile=256:256", "--", sys.executable, "-c", _SIGNAL_CHILD],
                capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
            )  # fmt: skip

        allowed = run(capabilities)
        self.assertEqual((allowed.returncode, allowed.stdout), (0, "child 65534 256 0 signalled\n"))
        refused = run([c for c in capabilities if c != "kill"])
        self.assertEqual((refused.returncode, refused.stdout), (0, "child 65534 256 0 EPERM\n"))

    def test_execServiceIsHardened(self) -> None:
        """The unit for programs run as other users rates at most 2.5 (OK), root's capabilities cut to switching users, signalling them and binding ports."""
        self.assertIn(CONTRIB / "netd-exec.service", UNITS)
        self.exposure("netd-exec.service", MAX_EXEC_EXPOSURE)
        settings = dict(
            line.split("=", 1)
            for line in (CONTRIB / "netd-exec.service").read_text().splitlines()
            if "=" in line and not line.startswith("#")
        )
        self.assertEqual(
            settings["CapabilityBoundingSet"].split(),
            ["CAP_SETUID", "CAP_SETGID", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
        )
        self.assertEqual(
            (settings["AmbientCapabilities"], settings["NoNewPrivileges"]), ("", "yes")
        )
        self.assertNotIn("User", settings)
