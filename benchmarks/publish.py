"""
C{make bench}: netd against its peers in one run under one load generator, written up as
C{BENCHMARKS.md} and C{benchmarks/bench.png}.

 1. The independent harness (C{../shared/bench/run.py} and its C load generator) measures
    the peers -- the canonical Twisted echo on the epoll reactor, asyncio and uvloop
    protocol echo servers, socketserver's ThreadingTCPServer and ForkingTCPServer,
    xinetd's internal echo -- and netd twice: limits off (C{netd}) and every policy, the
    admin/metrics endpoint and connection logging on (C{netd-policies}).
 2. Cross-check: netd's own generator (C{python -m netd.bench}) and the C generator load
    the same servers, with the same pinning, interleaved, through the harness's own server
    handling (imported from C{run.py}, not copied).
 3. The records become C{BENCHMARKS.md} and the plot (C{summary.py}, C{plot.py}).

    .venv/bin/python benchmarks/publish.py                  # what make bench runs (~25 min)
    .venv/bin/python benchmarks/publish.py --reps 5         # more repetitions
    .venv/bin/python benchmarks/publish.py --smoke --out-dir /tmp/b   # seconds: CI's smoke
    .venv/bin/python benchmarks/publish.py --render-only    # re-render from benchmarks/results

Nothing here asserts a speed: the targets are reported as met or not met.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PEERS = (
    "twisted-epoll",
    "asyncio",
    "asyncio-uvloop",
    "socketserver-threading",
    "socketserver-forking",
    "xinetd",
)
NETD = ("netd", "netd-policies")
BASELINE = "twisted-epoll"
XCHECK_CASES = ("rr64_c10", "rr64_c100", "udp64")
XCHECK_SERVERS = ("twisted-epoll", "netd")
GENERATORS = ("loadgen", "netd-bench")
TAG = "harness"  # results/harness.jsonl, .md, logs/harness/ (the harness's names)

# netd with every limit off, and with every policy on at limits the load never reaches.
NETD_OFF = (
    "--max-per-source 0 --rate 0 --max-connections 0 --idle-timeout 0",
    "--udp-rate 0 --udp-reply-budget 0",
)
POLICIES = (
    "--allow 127.0.0.0/8 --deny 192.0.2.0/24 --deny 198.51.100.0/24 --deny 2001:db8::/32 "
    "--admin tcp:0:interface=127.0.0.1"
)
NETD_ON = (
    f"{POLICIES} --max-per-source 20000 --rate 100000 --burst 100000 "
    "--max-connections 20000 --idle-timeout 300 --max-lifetime 3600",
    f"{POLICIES} --udp-rate 1000000 --udp-burst 1000000 --udp-reply-budget 10000000",
)


def sibling(name: str) -> ModuleType:
    """A module of this directory (C{benchmarks/} is scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"netd_benchmarks_{name}", HERE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def loadHarness(harness: Path) -> ModuleType:
    """The shared harness's C{run.py} as a module: its servers, pinning and CPU sampling."""
    spec = importlib.util.spec_from_file_location("shared_bench_run", harness / "run.py")
    if spec is None or spec.loader is None:
        raise SystemExit(f"no harness at {harness} (run.py missing)")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def shown(path: str | Path) -> str:
    """A path as the commands show it: relative to the repository when inside it."""
    text = os.path.abspath(path)
    rel = os.path.relpath(text, REPO)
    return text if rel.startswith("../..") else rel


def netdCommands(python: str) -> dict[str, tuple[str, str]]:
    """C{name -> (TCP command, UDP command)} with the harness's C{{port}} placeholder."""
    twistd = shown(Path(python).parent / "twistd")
    base = f"{twistd} -n --pidfile= netd --proto echo --listen"
    commands = {}
    for name, (tcp, udp) in zip(NETD, (NETD_OFF, NETD_ON), strict=True):
        commands[name] = (
            f"{base} tcp:{{port}}:interface=127.0.0.1 {tcp}",
            f"{base} udp:{{port}}:interface=127.0.0.1 {udp}",
        )
    return commands


# ---- 1. the harness --------------------------------------------------------------------


def turns(servers: list[str]) -> list[str]:
    """
    The servers in the cyclic order they take turns in (run.py: the C{--with} peers, then the
    C{--server} ones; each repetition rotates it by one): the baseline right before netd, so
    the pairs that matter run back to back, and xinetd right after netd-policies, so its
    aftermath (10,000 children gone, thousands of sockets in TIME_WAIT) never precedes netd
    or the baseline.
    """
    rank = {"xinetd": 0, BASELINE: 99}
    peers = sorted((s for s in servers if s not in NETD), key=lambda s: rank.get(s, 1))
    return peers + [s for s in NETD if s in servers]


def harnessArgv(args: argparse.Namespace, python: str, results: Path) -> list[str]:
    """The exact C{run.py} command line for the servers and cases asked for."""
    peers = [s for s in turns(args.servers) if s not in NETD]
    argv = [python, shown(args.harness / "run.py"), "--python", python]
    if peers:
        argv += ["--with", ",".join(peers)]
    for name, (tcp, udp) in netdCommands(python).items():
        if name in args.servers:
            argv += ["--server", f"{name}={tcp}", "--udp-server", f"{name}={udp}"]
    if args.quick:
        argv.append("--quick")
    else:
        argv += ["--reps", str(args.reps)]
    if args.cases:
        argv += ["--cases", ",".join(args.cases)]
    argv += ["--baseline", BASELINE, "--tag", TAG, "--out", shown(results)]
    return argv


def runHarness(argv: list[str], results: Path) -> float:
    """Run the harness (its progress goes to our stdout); the seconds it took."""
    shutil.rmtree(results / "logs" / TAG, ignore_errors=True)  # it appends to old logs
    print("$ " + shlex.join(argv), flush=True)
    started = time.monotonic()
    done = subprocess.run(argv, cwd=REPO)
    if done.returncode:
        raise SystemExit(f"the harness failed (exit {done.returncode})")
    return time.monotonic() - started


# ---- 2. the generators' cross-check ------------------------------------------------------


def generatorArgv(
    generator: str, harness: ModuleType, python: str, case: tuple, port: int, timing: tuple
) -> list[str]:
    """One generator's command line for one of the harness's cases, the same for both."""
    _, mode, params = case
    duration, warmup = timing
    common = ["--mode", mode, "--port", str(port), "--duration", str(duration)]
    common += ["--warmup", str(warmup)]
    for key, value in params.items():
        common += [f"--{key}", str(value)]
    if mode in ("rr", "bulk"):
        common += ["--timeout", "3"]  # as run.py gives the C generator
    if generator == "loadgen":
        return [shown(os.path.join(harness.BUILD, "loadgen")), *common]
    return [python, "-m", "netd.bench", *common, "--json"]


def measureOnce(harness: ModuleType, server: Any, argv: list[str]) -> dict[str, Any]:
    """Run one generator against a started server, pinned as the harness pins its own."""
    record: dict[str, Any] = {"cmd": shlex.join(argv)}
    server.settle(30)
    stat0, cpu0 = harness.cpu_stat(), harness.cpu_seconds(harness.tree(server.proc.pid))
    started = time.monotonic()
    try:
        out = subprocess.run(
            argv,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
            preexec_fn=harness.client_preexec,
        )
        record["report"] = json.loads(out.stdout.splitlines()[-1]) if out.stdout.strip() else None
        if out.returncode or record["report"] is None:
            record["error"] = f"exit {out.returncode}: {out.stderr.strip()[-300:]}"
    except (subprocess.TimeoutExpired, json.JSONDecodeError) as e:
        record["report"], record["error"] = None, f"{type(e).__name__}: {e}"
    wall = time.monotonic() - started
    stat1 = harness.cpu_stat()
    used = harness.cpu_seconds(harness.tree(server.proc.pid)) - cpu0
    record["server_cpu_pct"] = round(100 * used / wall, 1)
    for label, cpu in (("cpu0", harness.SERVER_CPU), ("cpu1", harness.CLIENT_CPU)):
        busy, steal = harness.cpu_busy(stat0, stat1, f"cpu{cpu}")
        record[f"{label}_busy_pct"], record[f"{label}_steal_pct"] = busy, steal
    return record


def crossCheck(
    args: argparse.Namespace, harness: ModuleType, python: str, results: Path
) -> list[dict[str, Any]]:
    """
    Both generators against the same servers: per repetition, each server gets a fresh
    process per block (TCP cases, then the UDP case), and within a case the generators take
    turns in an order that alternates; servers rotate as in run.py.
    """
    harness.build()
    byId = {case[0]: case for case in harness.CASES}
    cases = [byId[c] for c in args.xcheck_cases]
    peerCommands = harness.peers(python)
    commands = {n: (peerCommands[n]["tcp"], peerCommands[n].get("udp")) for n in peerCommands}
    commands.update(netdCommands(python))
    timing = (0.5, 0.2) if args.quick else (1.0, 0.3)
    reps = 1 if args.quick else args.reps
    logs = results / "logs" / "xcheck"
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(parents=True)
    records: list[dict[str, Any]] = []
    os.sched_setaffinity(0, {harness.CLIENT_CPU})  # as run.py: CPU 0 is the server's
    servers = list(args.xcheck_servers)
    for rep in range(reps):
        order = servers[rep % len(servers) :] + servers[: rep % len(servers)]
        for name in order:
            tcp, udp = commands[name]
            blocks = [
                (tcp, False, [c for c in cases if c[1] != "udp"]),
                (udp, True, [c for c in cases if c[1] == "udp"]),
            ]
            for command, isUdp, block in blocks:
                if not block or command is None:
                    continue
                log = logs / f"{name}{'-udp' if isUdp else ''}.log"
                server = harness.Server(name, command, isUdp, str(log))
                try:
                    server.start()
                    for i, case in enumerate(block):
                        flip = (rep + i) % 2
                        for generator in GENERATORS[flip:] + GENERATORS[:flip]:
                            argv = generatorArgv(
                                generator, harness, python, case, server.port, timing
                            )
                            record = {"server": name, "rep": rep, "case": case[0]}
                            record.update(mode=case[1], generator=generator)
                            record.update(measureOnce(harness, server, argv))
                            records.append(record)
                            print(f"  xcheck {summaryLine(record)}", flush=True)
                finally:
                    server.stop()
    return records


def summaryLine(record: dict[str, Any]) -> str:
    """One progress line for a cross-check record."""
    report = record.get("report") or {}
    rate = (report.get("results") or {}).get("rps")
    head = f"{record['server']:14} {record['case']:10} {record['generator']:10}"
    if rate is None:
        return f"{head} ERROR {record.get('error', '')}"
    p99 = report["results"]["lat_us"]["p99"]
    return f"{head} {rate:>10.1f} req/s  p99 {p99} us  ok={report['ok']}"


# ---- the machine ---------------------------------------------------------------------------


def output(argv: list[str]) -> str:
    """A command's stdout (and stderr), stripped; '' when it cannot run."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (done.stdout + done.stderr).strip()


def machine(python: str) -> dict[str, Any]:
    """What the numbers were measured on: hardware, kernel, software versions, load."""
    lscpu = {}
    for line in output(["lscpu"]).splitlines():
        key, _, value = line.partition(":")
        lscpu[key.strip()] = value.strip()
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    memKb = next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal:"))
    osName = ""
    if Path("/etc/os-release").exists():
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                osName = line.split("=", 1)[1].strip('"')
    probe = (
        "import sys, platform, twisted, netd\n"
        "try:\n import uvloop; u = uvloop.__version__\nexcept ImportError:\n u = None\n"
        "print(platform.python_version(), twisted.__version__, u, netd.__version__)"
    )
    py, tw, uv, nd = (output([python, "-c", probe]).split() + ["?"] * 4)[:4]
    xinetd = [w for w in output(["xinetd", "-version"]).split() if w[:1].isdigit()]
    return {
        "cpu_model": lscpu.get("Model name", platform.processor()),
        "cpus": os.cpu_count(),
        "nproc": output(["nproc"]),
        "threads_per_core": lscpu.get("Thread(s) per core"),
        "hypervisor": lscpu.get("Hypervisor vendor"),
        "mem_gib": round(memKb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "os": osName,
        "python": py,
        "twisted": tw,
        "uvloop": uv,
        "netd": nd,
        "xinetd": xinetd[0] if xinetd else "",
        "gcc": output(["gcc", "-dumpfullversion"]),
        "nofile_hard": output(["sh", "-c", "ulimit -Hn"]),
    }


def background(seconds: float = 3.0) -> list[float]:
    """Busy % of each CPU over C{seconds} while nothing of ours runs: the others' load."""

    def sample() -> list[list[int]]:
        lines = Path("/proc/stat").read_text().splitlines()
        return [
            [int(v) for v in line.split()[1:9]]
            for line in lines
            if line[:3] == "cpu" and line[3].isdigit()
        ]

    before = sample()
    time.sleep(seconds)
    busy = []
    for a, b in zip(before, sample(), strict=True):
        d = [y - x for x, y in zip(a, b, strict=True)]
        busy.append(round(100 * (sum(d) - d[3] - d[4]) / (sum(d) or 1), 1))
    return busy


def loadavg() -> str:
    """The 1, 5 and 15 minute load averages."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# ---- the command line ----------------------------------------------------------------------


def parseArgs(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--harness", type=Path, default=Path(os.environ.get("BENCH_HARNESS", REPO.parent / "shared" / "bench")),
        help="the shared harness directory (default ../shared/bench, or $BENCH_HARNESS)")  # fmt: skip
    add("--out-dir", type=Path, default=REPO,
        help="where BENCHMARKS.md, benchmarks/bench.png and benchmarks/results/ go "
        "(default: the repository)")  # fmt: skip
    add("--reps", type=int, default=3, help="repetitions (default 3, the harness's)")
    add("--quick", action="store_true", help="1 repetition, 0.5 s per case (run.py --quick)")
    add("--smoke", action="store_true",
        help="seconds: --quick, twisted-epoll and netd, rr64_c10 and udp64, one cross-check case")  # fmt: skip
    add("--servers", default=",".join(PEERS + NETD), help="servers (default: all)")
    add("--cases", default="", help="harness case ids (default: all)")
    add("--xcheck-servers", default=",".join(XCHECK_SERVERS), help="cross-check servers")
    add("--xcheck-cases", default=",".join(XCHECK_CASES), help="cross-check cases ('' : none)")
    add("--render-only", action="store_true", help="re-render from the results already there")
    add("--no-plot", action="store_true", help="no PNG (when matplotlib is not installed)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.quick = True
        args.servers, args.cases = "twisted-epoll,netd", "rr64_c10,udp64"
        args.xcheck_servers, args.xcheck_cases = "twisted-epoll,netd", "rr64_c10"
    split = lambda text: [x for x in text.split(",") if x]  # noqa: E731
    args.servers, args.cases = split(args.servers), split(args.cases)
    args.xcheck_servers, args.xcheck_cases = split(args.xcheck_servers), split(args.xcheck_cases)
    args.harness = args.harness.resolve()
    args.out_dir = args.out_dir.resolve()
    if BASELINE not in args.servers:
        parser.error(f"--servers must include the baseline, {BASELINE}")
    return args


def publishCommand(args: argparse.Namespace, argv: list[str]) -> dict[str, str | None]:
    """How this run was asked for, as a reader would type it: the script, and make's target."""
    command = shlex.join([shown(sys.executable), shown(__file__), *argv])
    make = None
    if os.environ.get("MAKELEVEL") and args.out_dir == REPO:
        if argv in ([], ["--reps", str(args.reps)]):
            make = "make bench" + (f" REPS={args.reps}" if argv else "")
    return {"command": command, "make": make}


def main(argv: list[str]) -> int:
    args = parseArgs(argv)
    python = shown(sys.executable)
    results = args.out_dir / "benchmarks" / "results"
    metaPath = results / "meta.json"
    summary, plot = sibling("summary"), None if args.no_plot else sibling("plot")
    if not args.render_only:
        results.mkdir(parents=True, exist_ok=True)
        harness = loadHarness(args.harness)
        meta: dict[str, Any] = {
            "machine": machine(python),
            "started": time.strftime("%Y-%m-%d %H:%M %Z"),
            "loadavg_start": loadavg(),
            "background_start": background(),
            **publishCommand(args, argv),
            "quick": args.quick,
            "reps": 1 if args.quick else args.reps,
            "servers": {n: list(c) for n, c in netdCommands(python).items() if n in args.servers},
            "turns": turns(args.servers),
            "pinning": {"server_cpu": harness.SERVER_CPU, "client_cpu": harness.CLIENT_CPU},
        }
        harnessCmd = harnessArgv(args, python, results)
        meta["harness_cmd"] = shlex.join(harnessCmd)
        meta["harness_s"] = round(runHarness(harnessCmd, results))
        started = time.monotonic()
        xcheck = crossCheck(args, harness, python, results) if args.xcheck_cases else []
        meta["xcheck_s"] = round(time.monotonic() - started)
        meta["loadavg_end"] = loadavg()
        meta["background_end"] = background()
        with open(results / "xcheck.jsonl", "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in xcheck)
        metaPath.write_text(json.dumps(meta, indent=1) + "\n")
    data = summary.load(results, TAG, BASELINE)
    pngPath = args.out_dir / "benchmarks" / "bench.png"
    if plot is not None:
        plot.render(data, pngPath)
    markdown = summary.render(data, png=None if plot is None else "benchmarks/bench.png")
    (args.out_dir / "BENCHMARKS.md").write_text(markdown)
    print(f"wrote {args.out_dir / 'BENCHMARKS.md'}" + ("" if plot is None else f" and {pngPath}"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
