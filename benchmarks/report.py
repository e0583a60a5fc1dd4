"""
The records of one C{run.py} run as C{BENCHMARKS.md}: tables of figures, ratios to the
baseline of the same repetition, and a verdict for each of issue 12's targets.

Statistics: a figure is the median over repetitions; a ratio is the median of the
per-repetition ratios (the two servers of a pair ran minutes apart at most); a ratio's
range is the lowest and highest per-repetition ratio.  A verdict is "within noise" when
that range straddles the target, or the median is within C{TIE} of it.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BASELINE = {"echo": "twisted", "daytime": "twisted-daytime"}
TIE = 0.15  # ratios this close are ties on this machine (repetitions spread 5-35 %)
IDLE_TIE = 0.1  # KiB


@dataclass(frozen=True)
class Target:
    """One of issue 12's targets: C{server} on C{case}, as a ratio to the baseline (or to
    C{versus}), or in KiB per idle connection (C{case} idle)."""

    label: str
    server: str
    case: str
    bound: float
    atMost: bool = False  # idle memory: at most bound KiB
    versus: str | None = None  # a ratio to this server instead of the baseline


TARGETS = (
    Target("connection rate, default logging", "netd", "connrate_c10", 1.5),
    Target("connection rate, `--log-connections no`", "netd-nolog", "connrate_c10", 1.95),
    Target("write-and-close (daytime), default logging", "netd-daytime", "wac_c10", 1.5),
    Target("write-and-close, the aim: xinetd's 2.15x", "netd-daytime", "wac_c10", 2.15),
    Target("write-and-close, ahead of xinetd in this run", "netd-daytime", "wac_c10", 1.0,
           versus="xinetd-daytime"),
    Target("request/response 64 B, 10 connections", "netd", "rr64_c10", 2.6),
    Target("request/response 64 B, 100 connections", "netd", "rr64_c100", 2.6),
    Target("UDP echo 64 B", "netd", "udp64", 1.45),
    Target("10,000 idle connections, KiB each (PSS)", "netd", "idle10k", 1.2, atMost=True),
)  # fmt: skip


def median(values: Iterable[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return statistics.median(kept) if kept else None


def fmt(x: float | None) -> str:
    """3 significant figures, thousands as k."""
    if x is None:
        return "-"
    return f"{x / 1000:.3g}k" if abs(x) >= 10000 else f"{x:.4g}"


def failed(record: dict[str, Any]) -> bool:
    report = record.get("loadgen")
    return bool(record.get("error")) or not report or not report.get("ok")


def value(record: dict[str, Any]) -> float | None:
    """The figure of a record: rate, or KiB of PSS per idle connection; None if it failed."""
    report = record.get("loadgen")
    if not report or failed(record):
        return None
    results = report["results"]
    return results.get("kib_per_conn_pss") if report["mode"] == "idle" else results["rate"]


class Data:
    """The records and the run's description, indexed for the tables."""

    def __init__(self, records: list[dict[str, Any]], meta: dict[str, Any]) -> None:
        self.records, self.meta = records, meta
        self.by: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for r in records:
            self.by.setdefault((r["server"], r["case"]), []).append(r)
        self.servers = list(dict.fromkeys(meta.get("order") or [r["server"] for r in records]))
        self.cases = list(dict.fromkeys(meta.get("cases") or [r["case"] for r in records]))

    def kind(self, case: str) -> str:
        return (self.meta.get("cases", {}).get(case) or {}).get("kind", "echo")

    def mode(self, case: str) -> str:
        return (self.meta.get("cases", {}).get(case) or {}).get("mode", "")

    def figure(self, server: str, case: str) -> float | None:
        return median(value(r) for r in self.by.get((server, case), []))

    def ratios(self, server: str, case: str, versus: str | None = None) -> list[float]:
        """Per-repetition ratios to the baseline (or C{versus}) of the same repetition."""
        other = versus or BASELINE[self.kind(case)]
        base = {r["rep"]: value(r) for r in self.by.get((other, case), [])}
        out = []
        for r in self.by.get((server, case), []):
            v, b = value(r), base.get(r["rep"])
            if v is not None and b:
                out.append(v / b)
        return out

    def ratio(self, server: str, case: str, versus: str | None = None) -> float | None:
        return median(self.ratios(server, case, versus))


def load(results: Path) -> Data:
    meta = json.loads((results / "meta.json").read_text())
    lines = (results / f"{meta.get('tag', 'run')}.jsonl").read_text().splitlines()
    return Data([json.loads(line) for line in lines if line.strip()], meta)


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


# ---- the targets -----------------------------------------------------------------------


def judge(data: Data, t: Target) -> list[str]:
    """One row of the targets table."""
    if t.atMost:
        per = [value(r) for r in data.by.get((t.server, t.case), [])]
        values = [v for v in per if v is not None]
        tie = IDLE_TIE
        shownAs = lambda v: f"{v:.2f} KiB"  # noqa: E731
    else:
        values = data.ratios(t.server, t.case, t.versus)
        tie = TIE
        shownAs = lambda v: f"{v:.2f}x"  # noqa: E731
    goal = f"{'≤' if t.atMost else '≥'} {t.bound:g}{' KiB' if t.atMost else 'x'}"
    if t.versus:
        goal += f" {t.versus}"
    if not values:
        return [t.label, f"`{t.server}` {t.case}", goal, "-", "**not measured**"]
    m = statistics.median(values)
    lo, hi = min(values), max(values)
    met = m <= t.bound if t.atMost else m >= t.bound
    noisy = lo <= t.bound <= hi and len(values) > 1 or abs(m - t.bound) < tie
    verdict = ("**met**" if met else "**not met**") + (" (within noise)" if noisy else "")
    spread = f" ({shownAs(lo)}-{shownAs(hi)})" if len(values) > 1 else ""
    return [t.label, f"`{t.server}` {t.case}", goal, shownAs(m) + spread, verdict]


def targetsSection(data: Data) -> list[str]:
    rows = [judge(data, t) for t in TARGETS]
    met = sum(r[-1].startswith("**met") for r in rows)
    measured = sum("not measured" not in r[-1] for r in rows)
    out = [
        "## Issue 12's targets",
        "",
        f"Median of the per-repetition ratios (in brackets: the lowest and highest); the "
        f"baseline is the canonical Twisted echo for echo cases and the Twisted daytime for "
        f"write-and-close. **within noise**: the range straddles the target or the median "
        f"is within {TIE} ({IDLE_TIE} KiB) of it, so this run cannot settle it. "
        f"Met: **{met} of {measured}** measured.",
        "",
    ]
    return out + table(["target", "server, case", "goal", "this run", "verdict"], rows)


# ---- the figures -----------------------------------------------------------------------


def figuresTable(data: Data, kind: str) -> list[str]:
    cases = [c for c in data.cases if data.kind(c) == kind and data.mode(c) != "idle"]
    servers = [s for s in data.servers if any((s, c) in data.by for c in cases)]
    if not cases or not servers:
        return []
    rows = []
    for s in servers:
        row = [f"`{s}`"]
        for c in cases:
            runs = data.by.get((s, c), [])
            if not runs:
                row.append("n/a")
                continue
            x = data.ratio(s, c)
            text = fmt(data.figure(s, c)) + (f" ({x:.2f})" if x is not None else "")
            if any(failed(r) for r in runs):
                text += " !"
            if data.mode(c) == "udp":
                loss = median(
                    (r.get("loadgen") or {}).get("results", {}).get("loss_pct") for r in runs
                )
                if loss:
                    text += f" loss {loss:.2g}%"
            row.append(text)
        rows.append(row)
    units = {}
    for c in cases:
        unit = next(
            (r["loadgen"]["results"].get("unit") for r in data.records
             if r["case"] == c and r.get("loadgen")), "")  # fmt: skip
        units[c] = f"{c} ({unit})"
    return table(["server", *units.values()], rows)


def latencyTable(data: Data) -> list[str]:
    cases = [c for c in data.cases if data.mode(c) != "idle" and data.mode(c) != "bulk"]
    rows = []
    for s in data.servers:
        row = [f"`{s}`"]
        for c in cases:
            runs = [r for r in data.by.get((s, c), []) if r.get("loadgen")]
            runs = [r for r in runs if r["loadgen"]["results"].get("lat_us", {}).get("n")]
            if not runs:
                row.append("-")
                continue
            row.append(" / ".join(
                fmt(median(r["loadgen"]["results"]["lat_us"][p] for r in runs))
                for p in ("p50", "p99", "p999")))  # fmt: skip
        if any(cell != "-" for cell in row[1:]):
            rows.append(row)
    return table(["server", *cases], rows)


def idleTable(data: Data) -> list[str]:
    cases = [c for c in data.cases if data.mode(c) == "idle"]
    rows = []
    for s in data.servers:
        for c in cases:
            runs = [r for r in data.by.get((s, c), []) if r.get("loadgen")]
            if not runs:
                continue
            res = [r["loadgen"]["results"] for r in runs]
            rows.append([
                f"`{s}`", c,
                f"{fmt(median(x['established'] for x in res))} / {fmt(median(x['alive_after'] for x in res))}",
                f"{fmt(median(x.get('kib_per_conn_pss') for x in res))}",
                f"{fmt(median(x.get('kib_per_conn_rss') for x in res))}",
                f"{fmt(median(x.get('server_pss_kb', 0) / 1024 for x in res))}",
                "!" if any(failed(r) for r in runs) else "ok",
            ])  # fmt: skip
    return table(
        ["server", "case", "held / alive after", "KiB/conn (PSS)", "KiB/conn (RSS)",
         "server PSS MiB", "verified"], rows)  # fmt: skip


def cpuTable(data: Data) -> list[str]:
    cases = [c for c in data.cases]
    rows = []
    for s in data.servers:
        row = [f"`{s}`"]
        for c in cases:
            runs = [r for r in data.by.get((s, c), []) if r.get("loadgen")]
            if not runs:
                row.append("-")
                continue
            client = median(r["loadgen"]["results"].get("client_cpu_pct") for r in runs)
            row.append(f"{fmt(median(r['server_cpu_pct'] for r in runs))} / {fmt(client)}")
        rows.append(row)
    return table(["server", *cases], rows)


def spreadTable(data: Data) -> list[str]:
    cases = [c for c in data.cases]
    rows = []
    for s in data.servers:
        row = [f"`{s}`"]
        for c in cases:
            vs = [v for v in (value(r) for r in data.by.get((s, c), [])) if v is not None]
            m = median(vs)
            row.append(f"{100 * (max(vs) - min(vs)) / m:.0f}" if len(vs) > 1 and m else "-")
        rows.append(row)
    return table(["server", *cases], rows)


def errors(data: Data) -> list[str]:
    lines = []
    for r in data.records:
        if failed(r):
            res = (r.get("loadgen") or {}).get("results", {})
            lines.append(
                f"- `{r['server']}` {r['case']} rep {r['rep']}: {res.get('errors', '')} "
                f"{r.get('error', '')}".rstrip()
            )
        if r.get("unsettled"):
            lines.append(f"- `{r['server']}` {r['case']} rep {r['rep']}: the server had not "
                         "gone idle after the previous case (30 s)")  # fmt: skip
    return lines or ["none: every byte echoed was verified in every case."]


# ---- the page ----------------------------------------------------------------------------


def profileSection() -> list[str]:
    """The connection-rate profile (C{make profile-connrate}), when one was recorded."""
    phases = HERE / "profiles" / "connrate-phases.md"
    return ["", phases.read_text().rstrip()] if phases.exists() else []


def cpuList(busy: list[float] | None) -> str:
    """C{[90.0, 60.5]} as "CPU 0 90 %, CPU 1 60 %"."""
    return ", ".join(f"CPU {i} {b:.0f} %" for i, b in enumerate(busy or [])) or "-"


def render(data: Data, png: str | None) -> str:
    m, machine = data.meta, data.meta.get("machine", {})
    steal = [
        r.get("server_cpu_steal_pct", 0) + r.get("client_cpu_steal_pct", 0)
        for r in data.records if r.get("loadgen")
    ]  # fmt: skip
    busy0 = median(r.get("server_cpu_busy_pct") for r in data.records)
    command = m.get("make") or m.get("command", "")
    out = [
        "# netd benchmarks",
        "",
        f"netd beside the canonical Twisted echo, a Twisted daytime, asyncio on uvloop, a C "
        f"epoll server and xinetd, measured {m.get('started', '?')} in one run of the "
        f"project's own harness (`benchmarks/run.py`, load generator `benchmarks/loadgen/loadgen.c`, "
        f"which verifies every byte), {m.get('reps')} repetition(s) of {m.get('warmup')} s "
        f"warm-up + {m.get('duration')} s measured per case, servers taking turns in an order "
        f"that rotates each repetition. Produced by `{command}`.",
        "",
        "**Read this first: a short run on a shared, noisy machine.** Two vCPUs shared with "
        f"other sessions (busy in the seconds before the run, with nothing of ours running: "
        f"{cpuList(m.get('background_start'))}; after it: {cpuList(m.get('background_end'))}; "
        f"load average {' '.join(m.get('loadavg_start', []))} at the start). "
        f"CPU 0 (the server's) was busy {fmt(busy0)} % in the median case; steal up to "
        f"{fmt(max(steal or [0]))} %. Repetitions of one case typically spread by tens of "
        "percent here (see *Spread*); treat ratios within 0.15 of each other as ties and "
        "re-run with more repetitions (`make bench REPS=5 DURATION=2`) before quoting one.",
        "",
    ]
    if png:
        out += [f"![ratios to the baseline, per case]({png})", ""]
    out += targetsSection(data)
    out += ["", "## Echo (ratio to `twisted`, the canonical Twisted echo)", "",
            "Median figure, `(x)` the median per-repetition ratio; `!` a repetition had "
            "errors (listed below).", ""]  # fmt: skip
    out += figuresTable(data, "echo")
    daytime = figuresTable(data, "daytime")
    if daytime:
        out += ["", "## Write-and-close (ratio to `twisted-daytime`)", "",
                "connect, read the daytime line until the server closes, close; 10 at a time. "
                "Each line is checked (20-100 bytes ending in CRLF).", ""]  # fmt: skip
        out += daytime
    idle = idleTable(data)
    if len(idle) > 2:
        out += ["", "## Idle connections", "",
                "N connections opened 64 at a time, each verified by an 8-byte echo, held, "
                "then echoed again; the server's memory (every process of its session, from "
                "`/proc/PID/smaps_rollup`) after minus before, per connection. Kernel socket "
                "buffers are in neither figure.", ""]  # fmt: skip
        out += idle
    out += ["", "## Latency p50 / p99 / p999 (µs, exact: every sample of the window)", ""]
    out += latencyTable(data)
    out += ["", "## Server CPU % / client CPU % (100 = one core)", "",
            "A client near 100 % means the load generator, not the server, set the pace.", ""]
    out += cpuTable(data)
    out += ["", "## Spread: (max - min) / median over repetitions, %", ""]
    out += spreadTable(data)
    out += ["", "## Errors", ""] + errors(data)
    out += profileSection()
    out += ["", "## Servers", ""]
    out += table(["name", "what"], [[f"`{n}`", d.get("what", "")]
                                    for n, d in m.get("servers", {}).items()])  # fmt: skip
    out += [
        "",
        "netd logs one line per finished connection by default; `--log-connections no` "
        "(config key `log-connections = false`) switches that line off, and the `-nolog` "
        "servers measure netd so. netd runs on its own epoll reactor with `TCP_NODELAY`; the peers keep their library "
        "defaults (Twisted: Nagle on, listen backlog 50; asyncio/uvloop: `TCP_NODELAY`, backlog "
        "100). xinetd is given `instances`/`per_source` UNLIMITED, `cps` lifted, `NOLIBWRAP` and "
        "no logging, so the load, not its throttle, is measured.",
        "",
        "## Method and machine",
        "",
        f"- **Machine:** {machine.get('cpu_model')}, {machine.get('cpus')} CPUs, hypervisor "
        f"{machine.get('hypervisor')}, kernel {machine.get('kernel')}; hard RLIMIT_NOFILE "
        f"{machine.get('nofile_hard')}.",
        f"- **Software:** Python {machine.get('python')}, Twisted {machine.get('twisted')}, "
        f"uvloop {machine.get('uvloop')}, netd {machine.get('netd')}, xinetd "
        f"{machine.get('xinetd')}, gcc {machine.get('gcc')}.",
        "- **Pinning:** " + ("every server process (children inherit it) on CPU 0 with "
        "`taskset -c 0`, the load generator on CPU 1 (`taskset -c 1`), the driver on CPU 1."
        if m.get("pinned") else "none (fewer than 2 CPUs): figures are not comparable to "
        "pinned runs."),
        "- **Order:** servers take turns in the order "
        + " → ".join(f"`{s}`" for s in m.get("order", []))
        + ", rotated by one each repetition; each gets a fresh process for the idle case, "
        "another for the other TCP cases, another for UDP. Before each case the driver waits "
        "until the server's process tree is idle and back to its starting size.",
        "- **Verification:** rr, connrate, bulk and idle send a keyed pattern and check every "
        "echoed byte at its stream offset (a byte from another connection fails too); wac "
        "checks length and CRLF; UDP checks sequence number and payload. A run with any error "
        "is marked `!` and its figure left out of the medians.",
        "- **Why a load generator of our own:** it checks every byte per connection, keeps "
        "every latency sample (exact percentiles), and has the write-and-close and idle-memory "
        "modes issue 12 asks for; Debian 12 packages no `tcpkali`, and wrk/ab speak HTTP only.",
        "- **Sources:** connrate spreads connections over 127.0.0.1-8 (one address's ephemeral "
        "ports fill with TIME_WAIT); xinetd gets 127.0.0.1 only (`--srcs 1`), as its peer-name "
        "handling would otherwise stall on reverse lookups.",
        f"- **Time:** {m.get('run_s', '?')} s for the run.",
        "",
        "Reproduce: `make bench` (REPS=, DURATION= to lengthen it), or the command above. Raw "
        f"records: `benchmarks/results/{m.get('tag', 'run')}.jsonl` (one line per case and "
        "repetition, with the exact load generator and server command lines) and "
        "`benchmarks/results/meta.json`.",
        "",
    ]
    return "\n".join(out)
