"""
Everything C{netd bench} writes: the report (a table or one JSON line), the live progress
line, and one-line errors.  The only module of the package that writes to a stream;
streams are passed in, so tests can hand it a C{StringIO}.
"""

from __future__ import annotations

import json
import time
from typing import Any, TextIO

__all__ = ["ProgressLine", "formatTable", "writeError", "writeReport"]

_RATES = {
    "rr": ("rps", "req/s"),
    "idle": ("rps", "req/s"),
    "udp": ("rps", "replies/s"),
    "connrate": ("conns_per_s", "conns/s"),
    "bulk": ("MBps", "MB/s"),
}
_EXTRAS = {  # (result field, label) shown when present
    "established": "established",
    "failed": "failed",
    "not_attempted": "not attempted",
    "alive_after": "alive after",
    "setup_s": "setup s",
    "opened": "opened",
    "sent": "sent",
    "echoed": "echoed",
    "lost": "lost",
    "late": "late",
    "loss_pct": "loss %",
}


def _latency(lat: dict[str, float]) -> str:
    keys = ("p50", "p90", "p99", "p999", "max")
    return f"n={lat['n']:.0f}  mean={lat['mean']}  " + "  ".join(f"{k}={lat[k]}" for k in keys)


def formatTable(report: dict[str, Any]) -> str:
    """The human-readable report: a heading line, then one aligned row per figure."""
    params, results = report["params"], report["results"]
    settings = "  ".join(
        f"{k}={v}" for k, v in params.items() if k not in ("host", "port") and v != 0
    )
    lines = [f"netd bench {report['mode']} {params['host']}:{params['port']}  {settings}"]
    field, unit = _RATES[report["mode"]]
    rows: list[tuple[str, str]] = [(unit, f"{results[field]}")]
    rows.append(("latency us", _latency(results["lat_us"])))
    if "exchange_lat_us" in results:
        rows.append(("exchange us", _latency(results["exchange_lat_us"])))
    rows += [(label, f"{results[key]}") for key, label in _EXTRAS.items() if key in results]
    errors = results["errors"]
    detail = ", ".join(f"{k} {v}" for k, v in errors.items() if k != "total")
    rows.append(("errors", f"{errors['total']}" + (f" ({detail})" if detail else "")))
    rows.append(("bytes", f"{results['bytes_sent']} sent, {results['bytes_echoed']} echoed"))
    rows.append(("client", f"{results['client_cpu_pct']} % CPU, {results['wall_s']} s wall"))
    rows.append(("ok", "yes" if report["ok"] else "NO"))
    width = max(len(label) for label, _ in rows)
    lines += [f"  {label.ljust(width)}  {value}" for label, value in rows]
    return "\n".join(lines) + "\n"


def writeReport(report: dict[str, Any], asJson: bool, stream: TextIO) -> None:
    """The report on C{stream}: one compact JSON object per line, or the table."""
    if asJson:
        stream.write(json.dumps(report, separators=(",", ":")) + "\n")
    else:
        stream.write(formatTable(report))
    stream.flush()


def writeError(message: str, stream: TextIO) -> None:
    """A problem for the user, on one line per message line, prefixed with the program."""
    for line in message.rstrip("\n").splitlines():
        stream.write(f"netd bench: {line}\n")
    stream.flush()


class ProgressLine:
    """
    A progress line redrawn in place (carriage return) on C{stream}, at most once a
    second: elapsed time and the rate so far inside the window.  On stderr, so that it
    never mixes with the report on stdout.
    """

    def __init__(self, stream: TextIO, mode: str, warmup: float, duration: float) -> None:
        self.stream = stream
        self.mode = mode
        self.warmup = warmup
        self.duration = duration
        self.shown = False
        self.last = 0.0

    def update(self, elapsed: float, done: int, bytesWindow: int) -> None:
        """Redraw with the counts so far (see L{netd.bench.workers.Watcher})."""
        now = time.monotonic()
        if now - self.last < 0.9:
            return
        self.last = now
        measured = min(elapsed - self.warmup, self.duration)
        total = self.warmup + self.duration
        if measured <= 0:
            rate = "warming up"
        elif self.mode == "bulk":
            rate = f"{bytesWindow / measured / 1e6:.1f} MB/s"
        else:
            rate = f"{done / measured:.0f} {_RATES[self.mode][1]}"
        self.stream.write(f"\r{self.mode}  {elapsed:5.1f}/{total:.1f} s  {rate}\x1b[K")
        self.stream.flush()
        self.shown = True

    def finish(self) -> None:
        """End the line, so that what follows starts on a fresh one."""
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()
