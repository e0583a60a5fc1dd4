"""
The load generator's self-test: it must pass a correct server and catch each broken one
(C{peers/broken.py}) with the right error, so that a benchmark figure always means "every
byte came back right".  Seconds long; part of C{make bench-smoke} and C{make test}.

    .venv/bin/python benchmarks/selftest.py          # a table; exit 1 if a check failed
    .venv/bin/python benchmarks/selftest.py --json   # one JSON object per check
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
LOADGEN = HERE / "build" / "loadgen"
SHORT = ("--duration", "0.3", "--warmup", "0.05", "--timeout", "1")
WAC = ("--conns", "4", "--min", "20", "--max", "100", "--suffix", "\r\n")

#: (server mode, load generator arguments, what must be reported): an error key that must be
#: counted, "ok" for a clean run, or "loss" for a clean run that reports lost datagrams.
CHECKS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("good", ("--mode", "rr", "--conns", "4", "--size", "200"), "ok"),
    ("good", ("--mode", "connrate", "--conns", "4", "--size", "64"), "ok"),
    ("good", ("--mode", "bulk", "--conns", "2"), "ok"),
    ("good", ("--mode", "idle", "--idle", "50", "--hold", "0.1"), "ok"),
    ("good", ("--mode", "udp", "--size", "64"), "ok"),
    ("daytime", ("--mode", "wac", *WAC), "ok"),
    ("corrupt", ("--mode", "rr", "--conns", "2", "--size", "64"), "mismatch"),
    ("corrupt", ("--mode", "connrate", "--conns", "2", "--size", "64"), "mismatch"),
    ("crosstalk", ("--mode", "rr", "--conns", "3", "--size", "64"), "mismatch"),
    ("truncate", ("--mode", "rr", "--conns", "2", "--size", "64"), "early_eof"),
    ("drop", ("--mode", "rr", "--conns", "2", "--size", "64"), "mismatch"),  # later bytes shift
    ("silent", ("--mode", "rr", "--conns", "2", "--size", "64"), "timeout"),
    ("drop", ("--mode", "bulk", "--conns", "1"), "mismatch"),
    ("duplicate", ("--mode", "rr", "--conns", "2", "--size", "64"), "excess"),
    ("hangup", ("--mode", "idle", "--idle", "20", "--hold", "0.5"), "early_eof"),
    ("silent", ("--mode", "connrate", "--conns", "2", "--size", "64"), "timeout"),
    ("short", ("--mode", "wac", *WAC), "too_short"),
    ("nocrlf", ("--mode", "wac", *WAC), "bad_suffix"),
    ("silent", ("--mode", "wac", *WAC), "timeout"),
    ("corrupt", ("--mode", "udp", "--size", "64"), "mismatch"),
    ("duplicate", ("--mode", "udp", "--size", "64"), "unexpected"),
    ("drop", ("--mode", "udp", "--size", "64"), "loss"),
)


def judge(expect: str, report: dict[str, Any] | None, code: int) -> str | None:
    """Why a check failed, or None when the load generator reported what it must."""
    if report is None:
        return f"no report (exit {code})"
    results = report["results"]
    errors = results["errors"]
    if expect in ("ok", "loss"):
        if not report["ok"] or code != 0 or errors["total"]:
            return f"a clean run was reported as failed: {errors}"
        lost = results.get("lost", 0)
        if expect == "loss" and not lost:
            return "lost datagrams went unreported"
        if expect == "ok" and lost:
            return f"{lost} datagrams reported lost from a correct server"
        return None
    if report["ok"] or code != 1:
        return f"the fault went unnoticed (ok={report['ok']}, exit {code}): {errors}"
    if not errors.get(expect):
        return f"reported, but not as {expect}: {errors}"
    return None


def runChecks() -> list[dict[str, Any]]:
    """Every check, each against a fresh broken server."""
    out = []
    for mode, args, expect in CHECKS:
        server = subprocess.Popen(
            [sys.executable, str(HERE / "peers" / "broken.py"), mode],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        try:
            assert server.stdout is not None
            line = server.stdout.readline()  # "PORT n", or "" if the server died
            port = re.fullmatch(r"PORT (\d+)\n", line)
            if not port:
                raise RuntimeError(f"broken.py {mode} did not start: {line!r}")
            argv = [str(LOADGEN), "--port", port.group(1), *args]
            if "--mode" in args and args[args.index("--mode") + 1] == "idle":
                argv += ["--sid", str(os.getsid(server.pid)), "--timeout", "1"]
            else:
                argv += list(SHORT)
            done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
            report = json.loads(done.stdout) if done.stdout.strip() else None
            why = judge(expect, report, done.returncode)
        finally:
            server.kill()
            server.wait()
        out.append(
            {"server": mode, "args": list(args), "expect": expect, "passed": why is None,
             "why": why, "report": report}  # fmt: skip
        )
    return out


def main(argv: list[str]) -> int:
    if not LOADGEN.exists():
        subprocess.run([sys.executable, str(HERE / "run.py"), "--build-only"], check=True)
    checks = runChecks()
    for c in checks:
        if "--json" in argv:
            print(json.dumps(c))
        else:
            verdict = "PASS" if c["passed"] else f"FAIL: {c['why']}"
            print(f"{c['server']:10} {' '.join(a.encode('unicode_escape').decode() for a in c['args']):62} {c['expect']:12} {verdict}")
    return 0 if all(c["passed"] for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
