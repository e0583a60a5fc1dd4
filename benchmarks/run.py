"""
C{make bench}: netd against its reference servers, one after another in one run, under the
project's own C load generator (C{benchmarks/loadgen/loadgen.c}).

The method (why each step):
 - every server process is pinned to CPU 0 and the load generator to CPU 1 (C{taskset}),
   so client and server never compete for one core;
 - servers take turns, in an order that rotates by one each repetition, so drift on a
   shared machine hits them all alike; each gets a fresh process per block of cases;
 - a server's figure is divided by its baseline's figure B{of the same repetition}, and the
   median of those paired ratios is what the targets are judged on;
 - every byte a server sends back is verified by the load generator; a run with any error
   is flagged and never silently counted;
 - server CPU (its whole process tree, from C{/proc/PID/stat}) and peak RSS are sampled for
   every case, per-CPU busy and steal from C{/proc/stat}.

    .venv/bin/python benchmarks/run.py                      # what make bench runs
    .venv/bin/python benchmarks/run.py --reps 5 --duration 2
    .venv/bin/python benchmarks/run.py --smoke --out-dir /tmp/b    # seconds (make bench-smoke)
    .venv/bin/python benchmarks/run.py --render-only        # BENCHMARKS.md from the last results
    .venv/bin/python benchmarks/run.py --list               # servers and cases

Nothing here asserts a speed: each target is reported as met or not met, with its spread.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
BUILD = HERE / "build"
PEERS = HERE / "peers"
SERVER_CPU, CLIENT_CPU = 0, 1
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
TICK = os.sysconf("SC_CLK_TCK")
ANNOUNCED = re.compile(rb"(?:^PORT |listening on (?:TCP|UDP) 127\.0\.0\.1:)(\d+)\s*$", re.M)

#: C programs built from source when older than it (also by the Makefile).
PROGRAMS = {"loadgen": HERE / "loadgen" / "loadgen.c", "cserver": PEERS / "cserver.c"}


@dataclass(frozen=True)
class Case:
    """One load: a load generator mode and its arguments, for servers of one C{kind}."""

    name: str
    mode: str
    args: tuple[str, ...]
    kind: str = "echo"  # echo | daytime

    @property
    def udp(self) -> bool:
        return self.mode == "udp"


CASES = (
    # a longer timeout: a server with a small backlog (Twisted's 50) drops SYNs under a burst,
    # and the kernel retries them after 1 s, then 3 s more
    Case("idle10k", "idle", ("--idle", "10000", "--hold", "1", "--timeout", "10")),
    Case("rr64_c1", "rr", ("--conns", "1", "--size", "64")),
    Case("rr64_c10", "rr", ("--conns", "10", "--size", "64")),
    Case("rr64_c100", "rr", ("--conns", "100", "--size", "64")),
    Case("rr1k_c10", "rr", ("--conns", "10", "--size", "1024")),
    Case("bulk_k4", "bulk", ("--conns", "4")),
    Case("connrate_c10", "connrate", ("--conns", "10", "--size", "64", "--srcs", "8")),
    Case("wac_c10", "wac", ("--conns", "10", "--min", "20", "--max", "100", "--suffix", "\r\n"), "daytime"),
    Case("udp64", "udp", ("--size", "64")),
)
SMOKE_CASES = (
    Case("idle200", "idle", ("--idle", "200", "--hold", "0.2")),
    Case("rr64_c10", "rr", ("--conns", "10", "--size", "64")),
    Case("connrate_c10", "connrate", ("--conns", "10", "--size", "64", "--srcs", "8")),
    Case("wac_c10", "wac", ("--conns", "10", "--min", "20", "--max", "100", "--suffix", "\r\n"), "daytime"),
    Case("udp64", "udp", ("--size", "64")),
)


@dataclass
class Server:
    """
    How to start one server: a command per transport with C{{port}} (announced servers get
    0 and print the port they bound, as C{PORT n} or netd's "listening on" line; C{fixed}
    servers -- xinetd, systemd-socket-activate -- are given a port the kernel just handed
    out, with a retry if another process takes it first).
    """

    name: str
    kind: str  # echo | daytime
    tcp: str
    udp: str | None = None  # None: no UDP case; "same": the TCP process also echoes UDP
    fixed: bool = False
    loadgen: dict[str, tuple[str, ...]] = field(default_factory=dict)  # extra args per mode
    what: str = ""
    idle: bool = True  # False: a process per connection; 10,000 of them would swamp the machine


NETD_OFF = "--max-per-source 0 --rate 0 --max-connections 0 --idle-timeout 0"
NETD_UDP_OFF = "--udp-rate 0 --udp-reply-budget 0"


def servers(python: str) -> dict[str, Server]:
    """Every server the harness knows, by name."""
    twistd = f"{Path(python).parent}/twistd -n --pidfile= netd"
    p = shown(PEERS)
    c = shown(BUILD / "cserver")
    netd = f"{twistd} --listen tcp:{{port}}:interface=127.0.0.1 {NETD_OFF}"
    netdUdp = f"{twistd} --proto echo --listen udp:{{port}}:interface=127.0.0.1 {NETD_UDP_OFF}"
    one = {"connrate": ("--srcs", "1"), "wac": ("--srcs", "1")}  # xinetd: see the caveats
    table = [
        Server("c-epoll", "echo", f"{c} echo {{port}}", "same",
               what="C epoll echo (`peers/cserver.c`): the machine's limit here"),
        Server("uvloop", "echo", f"{python} {p}/asyncio_server.py echo {{port}} --uvloop",
               f"{python} {p}/asyncio_server.py udp-echo {{port}} --uvloop",
               what="asyncio `Protocol` echo on uvloop (`peers/asyncio_server.py`)"),
        Server("asyncio", "echo", f"{python} {p}/asyncio_server.py echo {{port}}",
               f"{python} {p}/asyncio_server.py udp-echo {{port}}",
               what="the same on asyncio's own loop"),
        Server("twisted", "echo", f"{python} {p}/twisted_echo.py {{port}}",
               f"{python} {p}/twisted_udp_echo.py {{port}}",
               what="the canonical Twisted echo (10 lines, `peers/twisted_echo.py`; UDP "
               "`twisted_udp_echo.py`), epoll reactor: **the baseline** of the echo cases"),
        Server("netd", "echo", f"{netd} --proto echo", netdUdp,
               what=f"netd echo, limits off (`{NETD_OFF}`), default per-connection log line"),
        Server("netd-nolog", "echo", f"{netd} --proto echo --log-connections no", None,
               what="the same with `--log-connections no`"),
        Server("xinetd", "echo", "{xinetd:echo}", "same", fixed=True, loadgen=one, idle=False,
               what="xinetd's internal echo (Debian xinetd, foreground, generated config)"),
        Server("c-epoll-daytime", "daytime", f"{c} daytime {{port}}", what="C epoll daytime"),
        Server("uvloop-daytime", "daytime",
               f"{python} {p}/asyncio_server.py daytime {{port}} --uvloop",
               what="asyncio daytime on uvloop"),
        Server("twisted-daytime", "daytime", f"{python} {p}/twisted_daytime.py {{port}}",
               what="a five-line Twisted daytime (`peers/twisted_daytime.py`): **the baseline** "
               "of write-and-close"),
        Server("netd-daytime", "daytime", f"{netd} --proto daytime",
               what="netd daytime, limits off, default per-connection log line"),
        Server("netd-daytime-nolog", "daytime", f"{netd} --proto daytime --log-connections no",
               what="the same with `--log-connections no`"),
        Server("xinetd-daytime", "daytime", "{xinetd:daytime}", fixed=True, loadgen=one,
               what="xinetd's internal daytime"),
        # programs per connection (issue 9): connrate against /bin/cat started per connection
        Server("xinetd-cat", "echo", "{xinetd:cat}", fixed=True, loadgen=one, idle=False,
               what="xinetd running `/bin/cat` per connection"),
        Server("socket-activate-cat", "echo",
               "systemd-socket-activate --accept --inetd -l 127.0.0.1:{port} /bin/cat",
               fixed=True, idle=False,
               what="`systemd-socket-activate --accept --inetd /bin/cat`"),
    ]  # fmt: skip
    return {s.name: s for s in table}


DEFAULT = (
    "c-epoll", "uvloop", "twisted", "netd", "netd-nolog", "xinetd",
    "c-epoll-daytime", "uvloop-daytime", "twisted-daytime", "netd-daytime",
    "netd-daytime-nolog", "xinetd-daytime",
)  # fmt: skip
SMOKE = ("c-epoll", "twisted", "netd", "twisted-daytime", "netd-daytime")
BASELINE = {"echo": "twisted", "daytime": "twisted-daytime"}


# ---- small helpers ---------------------------------------------------------------------


def shown(path: str | Path) -> str:
    """A path as commands show it: relative to the repository when inside it."""
    text = os.path.abspath(path)
    rel = os.path.relpath(text, REPO)
    return text if rel.startswith("..") else rel


def build() -> None:
    """Compile the C programs into C{benchmarks/build/} when missing or older than the source."""
    BUILD.mkdir(exist_ok=True)
    for name, source in PROGRAMS.items():
        out = BUILD / name
        if not out.exists() or out.stat().st_mtime < source.stat().st_mtime:
            subprocess.run(["gcc", "-O2", "-Wall", "-o", str(out), str(source)], check=True)


def cpus() -> tuple[list[str], list[str]]:
    """C{taskset} prefixes for the server and the client; none on a one-CPU machine."""
    if len(os.sched_getaffinity(0)) < 2 or shutil.which("taskset") is None:
        return [], []
    return ["taskset", "-c", str(SERVER_CPU)], ["taskset", "-c", str(CLIENT_CPU)]


def kernelPort() -> int:
    """A TCP+UDP port free right now (only for servers that cannot announce their own)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            try:
                u.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port


def session(sid: int) -> list[list[str]]:
    """The C{/proc/PID/stat} fields (after the command name) of every process of a session."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[3]) == sid:
            found.append(fields)
    return found


def cpuSeconds(procs: list[list[str]]) -> float:
    """User+system time of the processes and of the children they reaped."""
    return sum(sum(int(f[i]) for i in (11, 12, 13, 14)) for f in procs) / TICK


def procStat() -> dict[str, list[int]]:
    with open("/proc/stat") as f:
        return {
            line.split()[0]: [int(v) for v in line.split()[1:9]]
            for line in f
            if line.startswith("cpu")
        }


def busySteal(a: dict[str, list[int]], b: dict[str, list[int]], cpu: int) -> tuple[float, float]:
    """Busy % and steal % of one CPU between two C{/proc/stat} samples."""
    d = [y - x for x, y in zip(a[f"cpu{cpu}"], b[f"cpu{cpu}"], strict=True)]
    total = sum(d) or 1
    return round(100 * (total - d[3] - d[4]) / total, 1), round(100 * d[7] / total, 1)


class PeakMemory(threading.Thread):
    """The peak RSS of a session's processes while a case runs (every 0.2 s)."""

    def __init__(self, sid: int) -> None:
        super().__init__(daemon=True)
        self.sid, self.peakKb, self.peakProcs = sid, 0, 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            procs = session(self.sid)
            self.peakKb = max(self.peakKb, sum(int(f[21]) for f in procs) * PAGE_KB)
            self.peakProcs = max(self.peakProcs, len(procs))
            self.done.wait(0.2)


# ---- xinetd's configuration ------------------------------------------------------------

XINETD_DEFAULTS = """defaults
{
    instances      = UNLIMITED
    per_source     = UNLIMITED
    cps            = 1000000 1
    log_type       = FILE /dev/null
    log_on_success =
    log_on_failure =
    flags          = NOLIBWRAP
}
"""


def xinetdConfig(what: str, port: int) -> str:
    """
    A configuration for xinetd's internal echo (TCP and UDP), daytime, or C{/bin/cat} per
    connection, on C{port} of 127.0.0.1, with xinetd's own limits lifted (so the load, not a
    throttle, is measured) and nothing logged.
    """

    def service(name: str, socketType: str, body: str) -> str:
        return (
            f"service {name}\n{{\n    id = {name}-{socketType}\n    socket_type = {socketType}\n"
            f"    protocol = {'tcp' if socketType == 'stream' else 'udp'}\n"
            f"    wait = {'no' if socketType == 'stream' else 'yes'}\n    user = root\n"
            f"    bind = 127.0.0.1\n    port = {port}\n{body}}}\n"
        )

    internal = "    type = INTERNAL UNLISTED\n"
    if what == "echo":
        services = service("echo", "stream", internal) + service("echo", "dgram", internal)
    elif what == "daytime":
        services = service("daytime", "stream", internal)
    else:
        services = service("netdcat", "stream", "    type = UNLISTED\n    server = /bin/cat\n")
    return XINETD_DEFAULTS + services


# ---- one server process ------------------------------------------------------------------


class Process:
    """One started server, pinned, in its own session (so its tree can be measured)."""

    def __init__(self, server: Server, udp: bool, log: Path, pin: list[str]) -> None:
        self.server, self.udp, self.log, self.pin = server, udp, log, pin
        self.tmp = Path(tempfile.mkdtemp(prefix="netd-bench-"))

    def command(self, port: int) -> list[str]:
        template = self.server.udp if self.udp and self.server.udp != "same" else self.server.tcp
        assert template is not None
        if template.startswith("{xinetd:"):
            config = self.tmp / "xinetd.conf"
            config.write_text(xinetdConfig(template[8:-1], port))
            xinetd = shutil.which("xinetd") or "/usr/sbin/xinetd"
            argv = [xinetd, "-dontfork", "-stayalive", "-pidfile", str(self.tmp / "pid")]
            return argv + ["-f", str(config)]
        return shlex.split(template.format(port=port))

    def start(self) -> None:
        for attempt in range(5):
            port = kernelPort() if self.server.fixed else 0
            self.argv = self.pin + self.command(port)
            with open(self.log, "ab") as log:
                log.write(f"\n=== {time.strftime('%H:%M:%S')} {shlex.join(self.argv)}\n".encode())
                self.offset = log.tell()
                self.proc = subprocess.Popen(
                    self.argv,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                    cwd=REPO,
                )
            self.port = port
            if self.waitReady():
                time.sleep(0.2)  # settle before the memory baseline
                self.baseProcs = len(session(self.proc.pid))
                return
            self.stop()
            if not self.server.fixed or attempt == 4:
                break
        tail = self.log.read_bytes()[-600:].decode(errors="replace")
        raise RuntimeError(f"{self.server.name} did not start: {tail}")

    def waitReady(self, limit: float = 30.0) -> bool:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            if self.port == 0:
                with open(self.log, "rb") as f:
                    f.seek(self.offset)
                    found = ANNOUNCED.search(f.read())
                if found:
                    self.port = int(found.group(1))
                    return True
            elif self.answers():
                return True
            time.sleep(0.05)
        return False

    def answers(self) -> bool:
        """A fixed-port server is up when it accepts (TCP) or echoes (UDP)."""
        if self.udp:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(0.2)
                try:
                    s.sendto(b"ready?", ("127.0.0.1", self.port))
                    return s.recv(64) == b"ready?"
                except OSError:
                    return False
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def settle(self, limit: float = 30.0) -> bool:
        """Wait until the last case has drained: no extra processes, the tree idle."""
        end = time.monotonic() + limit
        while time.monotonic() < end and self.proc.poll() is None:
            before = cpuSeconds(session(self.proc.pid))
            time.sleep(0.1)
            procs = session(self.proc.pid)
            if len(procs) <= self.baseProcs and cpuSeconds(procs) - before <= 0.003:
                return True
        return False

    def stop(self) -> None:
        """SIGTERM the process group we started, SIGKILL after 5 s."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(5)
                if not session(self.proc.pid):
                    break
            except subprocess.TimeoutExpired:
                continue
        shutil.rmtree(self.tmp, ignore_errors=True)


# ---- one case --------------------------------------------------------------------------


def loadgenArgv(case: Case, proc: Process, args: argparse.Namespace, pin: list[str]) -> list[str]:
    argv = [*pin, shown(BUILD / "loadgen"), "--mode", case.mode, "--port", str(proc.port)]
    argv += list(case.args) + list(proc.server.loadgen.get(case.mode, ()))
    if case.mode == "idle":
        argv += ["--sid", str(proc.proc.pid)]
    else:
        argv += ["--duration", str(args.duration), "--warmup", str(args.warmup)]
    return argv


def measure(case: Case, proc: Process, args: argparse.Namespace, pin: list[str]) -> dict[str, Any]:
    """Run one case against a started server: the load generator's report and our samples."""
    record: dict[str, Any] = {"unsettled": not proc.settle()}
    argv = loadgenArgv(case, proc, args, pin)
    record["cmd"] = shlex.join(argv)
    sampler = PeakMemory(proc.proc.pid)
    stat0, cpu0, t0 = procStat(), cpuSeconds(session(proc.proc.pid)), time.monotonic()
    sampler.start()
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=240, cwd=REPO)
        record["loadgen"] = json.loads(done.stdout) if done.stdout.strip() else None
        if done.returncode not in (0, 1) or record["loadgen"] is None:
            record["error"] = f"loadgen exit {done.returncode}: {done.stderr.strip()[-300:]}"
    except subprocess.TimeoutExpired:
        record["loadgen"], record["error"] = None, "loadgen timed out"
    except json.JSONDecodeError as e:
        record["loadgen"], record["error"] = None, f"bad loadgen output: {e}"
    sampler.done.set()
    sampler.join()
    proc.settle(10)  # the server's work for this case includes closing its connections
    wall = time.monotonic() - t0
    stat1 = procStat()
    record["server_cpu_pct"] = round(100 * (cpuSeconds(session(proc.proc.pid)) - cpu0) / wall, 1)
    record["server_peak_rss_kb"], record["server_peak_procs"] = sampler.peakKb, sampler.peakProcs
    for label, cpu in (("server_cpu", SERVER_CPU), ("client_cpu", CLIENT_CPU)):
        if f"cpu{cpu}" in stat1:
            record[f"{label}_busy_pct"], record[f"{label}_steal_pct"] = busySteal(stat0, stat1, cpu)
    if proc.proc.poll() is not None:
        record["error"] = (record.get("error", "") + f" server exited ({proc.proc.returncode})").strip()
    return record


def cell(record: dict[str, Any]) -> str:
    """One progress line's figures."""
    report = record.get("loadgen")
    if not report:
        return f"ERROR {record.get('error', '')}"
    r = report["results"]
    if report["mode"] == "idle":
        text = f"{r['established']} held, {r.get('kib_per_conn_pss', 0):.2f} KiB/conn"
    else:
        text = f"{r['rate']:>10.1f} {r['unit']}  p99 {r['lat_us']['p99']} us"
    if not report["ok"] or record.get("error"):
        text += f"  ERRORS {r['errors']} {record.get('error', '')}"
    return text


# ---- the run -----------------------------------------------------------------------------


def blocks(server: Server, cases: list[Case]) -> list[tuple[bool, list[Case]]]:
    """
    The fresh processes a server gets in one repetition, each with its cases: the idle case
    alone (memory counts from a fresh start), then the other TCP cases, then UDP.
    """
    mine = [c for c in cases if c.kind == server.kind and (server.idle or c.mode != "idle")]
    idle = [c for c in mine if c.mode == "idle"]
    tcp = [c for c in mine if not c.udp and c.mode != "idle"]
    udp = [c for c in mine if c.udp] if server.udp else []
    if server.udp == "same":
        return [(False, b) for b in (idle, tcp + udp) if b]
    return [(u, b) for u, b in ((False, idle), (False, tcp), (True, udp)) if b]


def run(args: argparse.Namespace, table: dict[str, Server], results: Path) -> list[dict[str, Any]]:
    serverPin, clientPin = cpus()
    if clientPin:
        os.sched_setaffinity(0, {CLIENT_CPU})  # the driver stays off the server's CPU
    logs = results / "logs"
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(parents=True)
    records: list[dict[str, Any]] = []
    names = list(args.servers)
    with open(results / f"{args.tag}.jsonl", "w") as out:
        for rep in range(args.reps):
            order = names[rep % len(names) :] + names[: rep % len(names)]
            print(f"rep {rep + 1}/{args.reps}: {' '.join(order)}", flush=True)
            for name in order:
                server = table[name]
                for udp, block in blocks(server, args.cases):
                    log = logs / f"{name}{'-udp' if udp else ''}.log"
                    proc = Process(server, udp, log, serverPin)
                    try:
                        proc.start()
                    except RuntimeError as e:
                        for case in block:
                            record = {"server": name, "rep": rep, "case": case.name,
                                      "mode": case.mode, "error": f"start failed: {e}"}  # fmt: skip
                            records.append(record)
                            out.write(json.dumps(record) + "\n")
                        print(f"  {name:20} start failed: {e}", flush=True)
                        continue
                    try:
                        for case in block:
                            record = {"server": name, "rep": rep, "case": case.name,
                                      "mode": case.mode, "kind": case.kind,
                                      "server_cmd": shlex.join(proc.argv)}  # fmt: skip
                            record.update(measure(case, proc, args, clientPin))
                            records.append(record)
                            out.write(json.dumps(record) + "\n")
                            out.flush()
                            print(f"  {name:20} {case.name:13} {cell(record)}", flush=True)
                    finally:
                        proc.stop()
    return records


# ---- the machine -----------------------------------------------------------------------


def output(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (done.stdout + done.stderr).strip()


def machine(python: str) -> dict[str, Any]:
    """What the figures were measured on, and the software versions."""
    lscpu = dict(
        (k.strip(), v.strip())
        for k, _, v in (line.partition(":") for line in output(["lscpu"]).splitlines())
    )
    probe = (
        "import platform, twisted, netd\n"
        "try:\n import uvloop; u = uvloop.__version__\nexcept ImportError:\n u = '-'\n"
        "print(platform.python_version(), twisted.__version__, u, netd.__version__)"
    )
    py, tw, uv, nd = (output([python, "-c", probe]).split() + ["?"] * 4)[:4]
    xv = re.search(r"\d[\d.]+", output(["xinetd", "-version"]) or output(["/usr/sbin/xinetd", "-version"]))
    return {
        "cpu_model": lscpu.get("Model name", platform.processor()),
        "cpus": os.cpu_count(),
        "hypervisor": lscpu.get("Hypervisor vendor", "-"),
        "kernel": platform.release(),
        "python": py,
        "twisted": tw,
        "uvloop": uv,
        "netd": nd,
        "xinetd": xv.group(0) if xv else "-",
        "gcc": output(["gcc", "-dumpfullversion"]),
        "nofile_hard": output(["sh", "-c", "ulimit -Hn"]),
    }


def background(seconds: float = 2.0) -> list[float]:
    """Busy % of each CPU while nothing of ours runs: what the machine's other users take."""
    a = procStat()
    time.sleep(seconds)
    b = procStat()
    return [busySteal(a, b, i)[0] for i in range(os.cpu_count() or 1) if f"cpu{i}" in b]


# ---- the command line ----------------------------------------------------------------------


def sibling(name: str) -> ModuleType:
    """A module of this directory (C{benchmarks/} is scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"netd_benchmarks_{name}", HERE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def parseArgs(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--servers", default=",".join(DEFAULT), help="comma-separated servers (see --list)")
    add("--cases", default="", help="comma-separated cases (default: all)")
    add("--reps", type=int, default=3, help="repetitions (default 3)")
    add("--duration", type=float, default=1.0, help="measured seconds per case (default 1)")
    add("--warmup", type=float, default=0.3, help="seconds of load before measuring (0.3)")
    add("--smoke", action="store_true",
        help="seconds: 1 repetition of 0.3 s, a few servers and cases (make bench-smoke)")  # fmt: skip
    add("--out-dir", type=Path, default=REPO,
        help="where BENCHMARKS.md, benchmarks/bench.png and benchmarks/results/ go")  # fmt: skip
    add("--tag", default="run", help="results/<tag>.jsonl (default run)")
    add("--render-only", action="store_true", help="re-render from the results already there")
    add("--no-plot", action="store_true", help="no PNG (matplotlib missing)")
    add("--list", action="store_true", help="list the servers and cases, then exit")
    add("--build-only", action="store_true", help="only compile the C programs")
    args = parser.parse_args(argv)
    pool = {c.name: c for c in CASES + SMOKE_CASES}
    if args.smoke:
        args.reps, args.duration, args.warmup = 1, 0.3, 0.1
        if args.servers == ",".join(DEFAULT):
            args.servers = ",".join(SMOKE)
        if not args.cases:
            args.cases = ",".join(c.name for c in SMOKE_CASES)
    names = [n for n in args.cases.split(",") if n] or [c.name for c in CASES]
    unknown = [n for n in names if n not in pool]
    if unknown:
        parser.error(f"unknown case(s): {', '.join(unknown)}")
    args.cases = [pool[n] for n in names]
    args.servers = [s for s in args.servers.split(",") if s]
    args.out_dir = args.out_dir.resolve()
    return args


def main(argv: list[str]) -> int:
    args = parseArgs(argv)
    python = shown(sys.executable)
    table = servers(python)
    if args.build_only:
        build()
        return 0
    if args.list:
        for server in table.values():
            print(f"{server.name:20} {server.kind:8} {server.tcp}\n{'':29} udp: {server.udp}")
        print("cases:", " ".join(f"{c.name}({c.kind})" for c in CASES))
        return 0
    unknown = [s for s in args.servers if s not in table]
    if unknown:
        raise SystemExit(f"unknown server(s): {', '.join(unknown)} (see --list)")
    results = args.out_dir / "benchmarks" / "results"
    report = sibling("report")
    if not args.render_only:
        build()
        results.mkdir(parents=True, exist_ok=True)
        meta: dict[str, Any] = {
            "machine": machine(python),
            "started": time.strftime("%Y-%m-%d %H:%M %Z"),
            "loadavg_start": Path("/proc/loadavg").read_text().split()[:3],
            "background_start": background(0.3 if args.smoke else 2.0),
            "command": shlex.join([python, shown(__file__), *argv]),
            "make": os.environ.get("NETD_BENCH_MAKE"),
            "reps": args.reps,
            "duration": args.duration,
            "warmup": args.warmup,
            "pinned": bool(cpus()[0]),
            "order": args.servers,
            "servers": {n: {"what": table[n].what, "tcp": table[n].tcp, "udp": table[n].udp}
                        for n in args.servers},  # fmt: skip
            "cases": {c.name: {"mode": c.mode, "args": list(c.args), "kind": c.kind}
                      for c in args.cases},  # fmt: skip
            "tag": args.tag,
        }
        started = time.monotonic()
        run(args, table, results)
        meta["run_s"] = round(time.monotonic() - started)
        meta["loadavg_end"] = Path("/proc/loadavg").read_text().split()[:3]
        meta["background_end"] = background(0.3 if args.smoke else 2.0)
        (results / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    data = report.load(results)
    png = args.out_dir / "benchmarks" / "bench.png"
    plotted = False
    if not args.no_plot:
        plotted = sibling("plot").render(data, png, report.TARGETS)
    (args.out_dir / "BENCHMARKS.md").write_text(
        report.render(data, "benchmarks/bench.png" if plotted else None)
    )
    print(f"wrote {args.out_dir / 'BENCHMARKS.md'}" + (f" and {png}" if plotted else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
