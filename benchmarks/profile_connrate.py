"""
C{make profile-connrate}: where a short connection's CPU goes in netd, from accept to close.

netd (echo, limits off) runs pinned to CPU 0 under the harness's connrate load (connect,
64-byte echo, close, 10 at a time, from CPU 1), and py-spy samples it twice: once as an SVG
flame graph, once as collapsed stacks.  Each sample is charged to the phase of its deepest
frame that belongs to one (accept; transport and protocol construction; admission;
TCP_NODELAY; logging; close and counters; the echo itself), and the shares become CPU
microseconds per connection with netd's CPU time over the same load (from C{/proc}).

    .venv/bin/python benchmarks/profile_connrate.py                    # label "before"
    .venv/bin/python benchmarks/profile_connrate.py --label after
    .venv/bin/python benchmarks/profile_connrate.py --label nolog --netd-args '--log-connections no'

Writes C{benchmarks/profiles/connrate-LABEL.svg} (open it in a browser), C{-LABEL.txt}
(collapsed stacks), C{-LABEL.json} (the figures), and C{connrate-phases.md}, the table of
every label recorded so far, which C{BENCHMARKS.md} includes.
"""

from __future__ import annotations

import argparse
import json
import linecache
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
OUT = HERE / "profiles"
TICK = os.sysconf("SC_CLK_TCK")
PHASES = (
    "accept",
    "transport + protocol construction",
    "admission",
    "TCP_NODELAY",
    "logging",
    "close + counters",
    "echo (read, write)",
    "reactor loop, other",
)
IDLE = "waiting in epoll"  # a sample of the idle reactor: not CPU spent on connections
FRAME = re.compile(r"^(?P<func>.*) \((?P<path>[^()]*):(?P<line>\d+)\)$")
NETD_OFF = "--max-per-source 0 --rate 0 --max-connections 0 --idle-timeout 0"


def sourceLine(path: str, line: int) -> str:
    """The text of a frame's line, found under C{sys.path} (py-spy gives relative paths)."""
    for root in sys.path:
        full = os.path.join(root, path)
        if os.path.exists(full):
            return linecache.getline(full, line).strip()
    return ""


def phaseOf(frame: str) -> str | None:
    """The phase one frame belongs to, or None when it says nothing on its own."""
    m = FRAME.match(frame)
    if not m:
        return None
    func, path = m["func"], m["path"]
    name = func.rsplit(".", 1)[-1]
    src = sourceLine(path, int(m["line"])) if path.startswith(("netd/", "twisted/")) else ""
    if name == "doPoll" and ".poll(" in src:
        return IDLE
    if "TCP_NODELAY" in src or "setTcpNoDelay" in func + src:
        return "TCP_NODELAY"
    if (
        path.startswith(("twisted/logger/", "netd/logs/"))
        or path == "twisted/python/log.py"
        or name.startswith("_log")
        or name == "formatAddress"
    ):
        return "logging"
    if name in ("admit", "admitted", "connectionMade", "makeConnection") or path in (
        "netd/admission/rules.py",
        "netd/admission/access.py",
        "netd/admission/ratelimit.py",
        "netd/admission/policy.py",
    ):
        return "admission"
    if "buildProtocol" in name or name in ("__init__", "_buildAddr", "startReading", "addReader"):
        return "transport + protocol construction"
    if name in ("_accept", "accept") or func == "Port.doRead" or ".accept(" in src:
        return "accept"
    if (
        "connectionLost" in name
        or name in ("_closeSocket", "_disconnectSelectable", "removeReader", "loseConnection",
                    "close", "_real_close", "_why", "observeDuration")  # fmt: skip
        or path.startswith(("netd/stats.py", "prometheus_client/"))
    ):
        return "close + counters"
    if name in ("dataReceived", "_dataReceived", "doRead", "doWrite", "write", "writeSomeData"):
        return "echo (read, write)"
    return None


def phases(collapsed: str) -> Counter[str]:
    """Samples per phase from py-spy's collapsed stacks (C{frame;frame;... count})."""
    counts: Counter[str] = Counter()
    memo: dict[str, str | None] = {}
    for line in collapsed.splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack:
            continue
        phase = None
        for frame in reversed(stack.split(";")):
            if frame not in memo:
                memo[frame] = phaseOf(frame)
            phase = memo[frame]
            if phase:
                break
        counts[phase or "reactor loop, other"] += int(n)
    return counts


def cpuSeconds(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def pin(cpu: int) -> list[str]:
    if len(os.sched_getaffinity(0)) < 2 or shutil.which("taskset") is None:
        return []
    return ["taskset", "-c", str(cpu)]


def profile(args: argparse.Namespace) -> dict:
    bin = Path(sys.executable).parent
    pyspy = shutil.which("py-spy", path=str(bin)) or shutil.which("py-spy")
    if pyspy is None:
        raise SystemExit("py-spy is not installed: pip install -e '.[bench]'")
    loadgen = HERE / "build" / "loadgen"
    if not loadgen.exists():
        subprocess.run([sys.executable, str(HERE / "run.py"), "--build-only"], check=True)
    OUT.mkdir(exist_ok=True)
    log = Path(tempfile.mkdtemp(prefix="netd-profile-")) / "netd.log"  # a line per connection
    netdArgv = [str(bin / "twistd"), "-n", "--pidfile=", "netd", "--proto", "echo",
                "--listen", "tcp:0:interface=127.0.0.1", *NETD_OFF.split(),
                *shlex.split(args.netd_args)]  # fmt: skip
    with open(log, "wb") as f:
        netd = subprocess.Popen(
            pin(0) + netdArgv, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
    try:
        port = None
        deadline = time.monotonic() + 30
        while port is None and time.monotonic() < deadline and netd.poll() is None:
            found = re.search(r"listening on TCP 127\.0\.0\.1:(\d+)", log.read_text())
            port = int(found.group(1)) if found else time.sleep(0.05)
        if port is None:
            raise SystemExit(f"netd did not start: {log.read_text()[-500:]}")
        total = 2 * args.duration + 2
        load = subprocess.Popen(
            pin(1) + [str(loadgen), "--mode", "connrate", "--conns", "10", "--size", "64",
                      "--srcs", "8", "--port", str(port), "--duration", str(total),
                      "--warmup", "0"],  # fmt: skip
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        time.sleep(1)
        cpu0, t0 = cpuSeconds(netd.pid), time.monotonic()
        record = [*pin(1), pyspy, "record", "--pid", str(netd.pid), "--rate", str(args.rate),
                  "--duration", str(args.duration), "--nonblocking"]  # fmt: skip
        svg, raw = OUT / f"connrate-{args.label}.svg", OUT / f"connrate-{args.label}.txt"
        for fmt, path in (("flamegraph", svg), ("raw", raw)):
            subprocess.run(record + ["--format", fmt, "--output", str(path)], check=True,
                           capture_output=True, timeout=args.duration + 60)  # fmt: skip
        cpu1, t1 = cpuSeconds(netd.pid), time.monotonic()
        out, _ = load.communicate(timeout=total + 30)
        report = json.loads(out)
    finally:
        os.killpg(netd.pid, signal.SIGTERM)
        netd.wait(10)
        shutil.rmtree(log.parent, ignore_errors=True)
    counts = phases(raw.read_text())
    idle = counts.pop(IDLE, 0)
    samples = sum(counts.values())
    # connections completed while profiled: the run's rate times the profiled wall time
    conns = report["results"]["rate"] * (t1 - t0)
    perConn = 1e6 * (cpu1 - cpu0) / conns if conns else 0.0
    return {
        "label": args.label,
        "when": time.strftime("%Y-%m-%d %H:%M %Z"),
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                                 capture_output=True, text=True).stdout.strip() or "?",
        "netd": shlex.join(netdArgv[1:]),
        "rate_conn_s": report["results"]["rate"],
        "ok": report["ok"],
        "server_cpu_pct": round(100 * (cpu1 - cpu0) / (t1 - t0), 1),
        "cpu_us_per_conn": round(perConn, 1),
        "samples": samples,
        "idle_samples": idle,
        "phases": {p: counts.get(p, 0) for p in PHASES},
    }


def table() -> str:
    """C{connrate-phases.md}: every recorded label side by side."""
    runs = [json.loads(p.read_text()) for p in sorted(OUT.glob("connrate-*.json"))]
    runs.sort(key=lambda r: (r["label"] != "before", r["when"]))
    head = ["phase"] + [f"{r['label']}: % / µs per conn" for r in runs]
    rows = []
    for phase in PHASES:
        cells = [phase]
        for r in runs:
            share = r["phases"].get(phase, 0) / (r["samples"] or 1)
            cells.append(f"{100 * share:.1f} % / {share * r['cpu_us_per_conn']:.1f}")
        rows.append(cells)
    rows.append(["**total**"] + [f"100 % / {r['cpu_us_per_conn']:.1f}" for r in runs])
    lines = [
        "## Where a connection's CPU goes (profile)",
        "",
        "`make profile-connrate` (`benchmarks/profile_connrate.py`): netd echo, limits off, "
        "pinned to CPU 0 under connrate (connect, 64 B echo, close; 10 at a time) from CPU 1, "
        "sampled by py-spy (`--nonblocking`; samples of the reactor waiting in `epoll_wait` left out). A sample counts for the phase of its deepest "
        "frame that names one; µs per connection = that share of netd's CPU time (from "
        "`/proc`) over the connections completed while sampling. Sampling slows netd a "
        "little, and the machine is shared: read shares, not absolute times.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
        *("| " + " | ".join(r) + " |" for r in rows),
        "",
    ]
    for r in runs:
        lines.append(
            f"- **{r['label']}** ({r['when']}, netd at commit {r.get('commit', '?')}): `twistd {r['netd']}`, {r['rate_conn_s']:.0f} "
            f"conn/s while sampled, netd at {r['server_cpu_pct']} % CPU, {r['samples']} samples "
            f"(verified: {'yes' if r['ok'] else 'NO'}); flame graph "
            f"[`benchmarks/profiles/connrate-{r['label']}.svg`](benchmarks/profiles/connrate-{r['label']}.svg), "
            f"stacks `connrate-{r['label']}.txt`."
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[1])
    parser.add_argument("--label", default="before", help="names the output files (before)")
    parser.add_argument("--duration", type=int, default=5, help="seconds per py-spy record (5)")
    parser.add_argument("--rate", type=int, default=250, help="samples per second (250)")
    parser.add_argument("--netd-args", default="", help="more netd options, quoted")
    parser.add_argument("--table-only", action="store_true", help="only rewrite the table")
    args = parser.parse_args(argv)
    if not re.fullmatch(r"[\w-]+", args.label):
        parser.error("--label: letters, digits, - and _ only")
    if not args.table_only:
        result = profile(args)
        (OUT / f"connrate-{args.label}.json").write_text(json.dumps(result, indent=1) + "\n")
        print(json.dumps(result, indent=1))
    (OUT / "connrate-phases.md").write_text(table())
    print(f"wrote {OUT / 'connrate-phases.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
