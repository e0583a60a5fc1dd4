"""
What netd's per-connection log line costs, in server CPU per connection.

Runs two daemons one after the other (rotated, repeated) under the same connect - 64 B
echo - close load from ``netd bench``, one with the per-connection log line and one
without, each pinned to CPU 0 while the load runs on CPU 1, and reports the server's CPU
time (user + system, from /proc) per connection and the ratio of the two: CPU per
connection is steadier than throughput on a shared machine.  Both daemons log to a file
(``--logfile``), as a daemon under a supervisor does.

    python benchmarks/logcost.py [--reps 3] [--duration 3] [--log-format text]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def cpuSeconds(pid: int) -> float:
    """The process's user + system CPU time, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def startDaemon(logConnections: bool, logFormat: str, logfile: str) -> tuple[subprocess.Popen[str], int]:
    """Start netd's echo on a free port; return the process and its port."""
    argv = [
        "taskset", "-c", "0", str(BIN / "twistd"), "-n", "--pidfile=", "--logfile", logfile,
        "netd", "--proto", "echo", "--listen", "tcp:0:interface=127.0.0.1",
        "--log-connections", "yes" if logConnections else "no", "--log-format", logFormat,
        "--rate", "0", "--max-per-source", "0", "--max-connections", "0",
    ]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        text = Path(logfile).read_text() if os.path.exists(logfile) else ""
        found = re.search(r"listening on .*?127\.0\.0\.1:(\d+)", text)
        if found:
            return process, int(found.group(1))
        if process.poll() is not None:
            break
        time.sleep(0.05)
    process.kill()
    raise SystemExit(f"netd did not start: {process.stderr.read() if process.stderr else ''}")


def measure(logConnections: bool, logFormat: str, duration: float) -> dict[str, float]:
    """One run: CPU per connection and connections/s for one daemon."""
    with tempfile.TemporaryDirectory() as tmp:
        process, port = startDaemon(logConnections, logFormat, os.path.join(tmp, "netd.log"))
        try:
            before = cpuSeconds(process.pid)
            result = subprocess.run(
                ["taskset", "-c", "1", str(BIN / "netd"), "bench", "--mode", "connrate",
                 "--port", str(port), "--conns", "10", "--duration", str(duration),
                 "--warmup", "0", "--json", "--time-limit", str(duration + 30)],
                capture_output=True, text=True,
            )
            used = cpuSeconds(process.pid) - before
        finally:
            process.terminate()
            process.wait(timeout=30)
    if result.returncode != 0:
        raise SystemExit(f"netd bench failed: {result.stdout}{result.stderr}")
    report = json.loads(result.stdout)["results"]
    done, rate = report["lat_us"]["n"], report["conns_per_s"]
    return {"us_per_conn": used / max(done, 1) * 1e6, "rate": rate, "done": done}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--log-format", default="text", choices=["text", "json"])
    args = parser.parse_args()
    runs: dict[bool, list[float]] = {True: [], False: []}
    for rep in range(args.reps):
        for logConnections in ((True, False) if rep % 2 == 0 else (False, True)):
            result = measure(logConnections, args.log_format, args.duration)
            runs[logConnections].append(result["us_per_conn"])
            print(f"rep {rep} log={'on ' if logConnections else 'off'} {result}", file=sys.stderr)
    on, off = statistics.median(runs[True]), statistics.median(runs[False])
    print(f"{args.log_format}: server CPU per connection, median of {args.reps}: "
          f"log on {on:.1f} us, log off {off:.1f} us, the log line costs {on - off:.1f} us "
          f"({on / off:.2f}x)")


if __name__ == "__main__":
    main()
