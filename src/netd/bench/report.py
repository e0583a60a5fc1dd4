"""
The result of a run as one JSON-ready object, shaped like C{loadgen.c}'s.

The same C{mode}/C{params}/C{results}/C{ok} layout and the same field names where they
mean the same (C{rps}, C{MBps}, C{conns_per_s}, C{lat_us}, C{errors}, ...), so one
C{jq} path reads either generator's output.  Fields only netd's generator has (C{procs},
C{loop}, C{exchange_lat_us}, C{problems}) are added, never renamed.
"""

from __future__ import annotations

from typing import Any

from netd.bench.options import BenchOptions
from netd.bench.pattern import CHUNK
from netd.bench.stats import summarize
from netd.bench.tally import Tally
from netd.bench.workers import Outcome

__all__ = ["buildReport", "errorsObject"]


def errorsObject(tally: Tally) -> dict[str, int]:
    """C{errors}: the total first, then each kind that occurred, in a stable order."""
    errors = {"total": sum(tally.errors.values())}
    errors.update(sorted(tally.errors.items()))
    return errors


def _params(options: BenchOptions) -> dict[str, Any]:
    common = {"host": options.host, "port": options.port}
    timing = {"duration": options.duration, "warmup": options.warmup}
    ours = {"procs": options.procs, "loop": options.loop}
    if options.mode == "udp":
        return {
            **common,
            "size": options.size,
            "window": options.window,
            **timing,
            "loss_timeout_s": options.timeout,
            **ours,
        }
    if options.mode == "idle":
        return {
            **common,
            "idle": options.idle,
            "size": options.size,
            **timing,
            "conc": options.conc,
            "srcs": options.srcs,
            "timeout": options.timeout,
            "max_fail": options.maxFail,
            **ours,
        }
    bulk = options.mode == "bulk"
    return {
        **common,
        "conns": options.conns,
        "size": CHUNK if bulk else options.size,
        **timing,
        "window": options.window if bulk else 0,
        "srcs": options.srcs,
        **ours,
    }


def _modeResults(options: BenchOptions, tally: Tally) -> dict[str, Any]:
    rate = round(tally.done / options.duration, 1)
    setup = round(tally.setupNs / 1e9, 2)
    if options.mode == "udp":
        sent = tally.sent
        return {
            "rps": rate,
            "sent": sent,
            "echoed": tally.echoed,
            "lost": tally.lost,
            "late": tally.late,
            "loss_pct": round(100 * tally.lost / sent, 3) if sent else 0.0,
        }
    if options.mode == "idle":
        return {
            "established": tally.established,
            "failed": tally.attempted - tally.established,
            "not_attempted": tally.wanted - tally.attempted,
            "setup_s": setup,
            "alive_after": tally.alive,
            "rps": rate,
        }
    if options.mode == "connrate":
        return {"conns_per_s": rate, "opened": tally.opened}
    established = {"established": tally.established, "setup_s": setup}
    if options.mode == "bulk":
        return {**established, "MBps": round(tally.bytesWindow / options.duration / 1e6, 1)}
    return {**established, "rps": rate}


def buildReport(options: BenchOptions, outcome: Outcome) -> dict[str, Any]:
    """The JSON object for one run; C{ok} is true only when no error of any kind was counted."""
    tally = outcome.tally
    results = _modeResults(options, tally)
    results["bytes_sent"] = tally.bytesSent
    results["bytes_echoed"] = tally.bytesEchoed
    results["lat_us"] = summarize(tally.latency)
    if options.mode == "connrate":
        results["exchange_lat_us"] = summarize(tally.exchange)
    wall = outcome.wallSeconds
    results["client_cpu_pct"] = round(100 * outcome.cpuSeconds / wall, 1) if wall > 0 else 0.0
    results["wall_s"] = round(wall, 2)
    errors = errorsObject(tally)
    results["errors"] = errors
    if outcome.problems:
        results["problems"] = outcome.problems
    return {
        "mode": options.mode,
        "params": _params(options),
        "results": results,
        "ok": errors["total"] == 0,
    }
