"""
The records of one C{publish.py} run (the harness's JSON lines, the cross-check's, the
machine) as figures, and those figures as C{BENCHMARKS.md}.

Statistics are the harness's: the median over repetitions, and for a ratio the median of
the per-repetition ratio (both servers of a pair ran minutes apart at most); the spread
is (max - min) / median.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

ORDER = (
    "netd",
    "netd-policies",
    "twisted-epoll",
    "asyncio",
    "asyncio-uvloop",
    "socketserver-threading",
    "socketserver-forking",
    "xinetd",
)
CASE_ORDER = (
    "idle1k", "idle10k", "idle50k",
    "rr64_c1", "rr64_c10", "rr64_c100", "rr1k_c1", "rr1k_c10", "rr1k_c100",
    "bulk_k1", "bulk_k4", "connrate_c10", "udp64",
)  # fmt: skip
METRIC = {
    "rr": ("rps", "req/s"),
    "bulk": ("MBps", "MB/s"),
    "connrate": ("conns_per_s", "conn/s"),
    "udp": ("rps", "req/s"),
    "idle": ("established", "conns"),
}
DESCRIBE = {
    "netd": "netd, every limit off (`--max-per-source 0 --rate 0 --max-connections 0 "
    "--idle-timeout 0`; UDP `--udp-rate 0 --udp-reply-budget 0`)",
    "netd-policies": "netd with everything on: allow and deny lists, per-source limit, "
    "connection rate and burst, max connections, idle timeout 300 s, max lifetime 3600 s, "
    "the admin site with `/metrics` (`--admin tcp:0`), UDP per-source rate and reply budget; "
    "limits set above what the load reaches, so nothing is refused",
    "twisted-epoll": "the canonical Twisted Echo (the tutorial's ten lines) on the epoll reactor "
    "(`servers/twisted_echo.py`, UDP `twisted_udp_echo.py`): **the baseline**",
    "asyncio": "asyncio `Protocol` echo (`servers/asyncio_echo.py`)",
    "asyncio-uvloop": "the same on uvloop",
    "socketserver-threading": "`socketserver.ThreadingTCPServer` (`servers/socketserver_echo.py`)",
    "socketserver-forking": "`socketserver.ForkingTCPServer` (the same file)",
    "xinetd": "xinetd's internal echo (Debian package, `peers/run_xinetd.sh`)",
}
GENS = ("loadgen", "netd-bench")
TIE = 0.15  # the harness README: treat ratios within ~0.15 as ties
P99_UNCHANGED = 1.25  # "unchanged" p99: at most this times the same server's rr64_c1 p99
IDLE_KB = 1.5
POLICY_COST = 0.95
RATIO_TARGETS = (
    ("rr64_c1", 1.9), ("rr64_c10", 1.9), ("rr64_c100", 1.9),
    ("rr1k_c1", 1.9), ("rr1k_c10", 1.9), ("rr1k_c100", 1.9),
    ("bulk_k1", 1.5), ("bulk_k4", 1.5), ("connrate_c10", 1.0), ("udp64", 1.1),
)  # fmt: skip


def median(xs: Iterable[float | None]) -> float | None:
    values = [x for x in xs if x is not None]
    return statistics.median(values) if values else None


def fmt(x: float | None) -> str:
    """The harness's number format: 3 significant figures, thousands as k."""
    if x is None:
        return "-"
    return f"{x / 1000:.3g}k" if abs(x) >= 10000 else f"{x:.4g}"


def failed(record: dict[str, Any]) -> bool:
    """As run.py's C{case_failed}: an error, no report, or a report that is not ok."""
    report = record.get("loadgen", record.get("report"))
    return bool(record.get("error")) or not report or not report.get("ok")


class Data:
    """One run's records with the questions the report asks of them."""

    def __init__(
        self,
        records: list[dict[str, Any]],
        xcheck: list[dict[str, Any]],
        meta: dict[str, Any],
        baseline: str,
        harnessMarkdown: str,
    ) -> None:
        self.records, self.xcheck, self.meta = records, xcheck, meta
        self.baseline, self.harnessMarkdown = baseline, harnessMarkdown
        present = {r["server"] for r in records}
        self.servers = [s for s in ORDER if s in present] + sorted(present - set(ORDER))
        cases = {r["case"] for r in records}
        self.cases = [c for c in CASE_ORDER if c in cases]
        self.modes = {r["case"]: r["mode"] for r in records}
        self.by: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for r in records:
            self.by.setdefault((r["server"], r["case"]), []).append(r)

    # ---- harness figures
    def throughputCases(self) -> list[str]:
        return [c for c in self.cases if self.modes[c] != "idle"]

    def runs(self, server: str, case: str) -> list[dict[str, Any]]:
        """The records of a case that ran (not skipped) with a report."""
        return [r for r in self.by.get((server, case), []) if r.get("loadgen")]

    def values(self, server: str, case: str, key: Callable[[dict[str, Any]], Any]) -> dict:
        """C{rep -> key(record)} over the runs of a case."""
        return {r["rep"]: key(r) for r in self.runs(server, case)}

    def rate(self, server: str, case: str) -> dict[int, float]:
        field = METRIC[self.modes[case]][0]
        return self.values(server, case, lambda r: r["loadgen"]["results"].get(field))

    def medianRate(self, server: str, case: str) -> float | None:
        return median(self.rate(server, case).values())

    def pairedRatio(self, a: dict[int, float], b: dict[int, float]) -> float | None:
        """Median over repetitions of a/b, paired by repetition."""
        return median(a[k] / b[k] for k in a if a[k] is not None and b.get(k))

    def ratioList(self, server: str, case: str, to: str | None = None) -> list[float]:
        """The per-repetition ratios of C{server} to C{to} (the baseline)."""
        a, b = self.rate(server, case), self.rate(to or self.baseline, case)
        return [a[k] / b[k] for k in sorted(a) if a[k] is not None and b.get(k)]

    def ratio(self, server: str, case: str, to: str | None = None) -> float | None:
        return self.pairedRatio(self.rate(server, case), self.rate(to or self.baseline, case))

    def spread(self, server: str, case: str) -> float | None:
        vs = [v for v in self.rate(server, case).values() if v is not None]
        m = median(vs)
        return 100 * (max(vs) - min(vs)) / m if len(vs) > 1 and m else None

    def latency(self, server: str, case: str, p: str) -> float | None:
        return median(
            self.values(server, case, lambda r: r["loadgen"]["results"]["lat_us"][p]).values()
        )

    def flag(self, server: str, case: str) -> str:
        rs = self.by.get((server, case), [])
        if rs and all(r.get("skipped") for r in rs):
            return "skip"
        return "!" if any(failed(r) for r in rs if not r.get("skipped")) else ""

    def perConnectionKb(self, server: str, case: str) -> dict[int, float]:
        """Extra PSS per idle connection (KiB): peak during the case less before it, / N."""
        return self.values(
            server,
            case,
            lambda r: (r["pss_kb"] - r["pss_before_kb"]) / r["loadgen"]["params"]["idle"],
        )

    def idleP99List(self, server: str) -> list[float]:
        """Per repetition: p99 of the active client beside 10k idle connections / its rr64_c1 p99."""
        if "idle10k" not in self.cases or "rr64_c1" not in self.cases:
            return []
        p99 = lambda r: r["loadgen"]["results"]["lat_us"]["p99"]  # noqa: E731
        idle, alone = self.values(server, "idle10k", p99), self.values(server, "rr64_c1", p99)
        return [idle[k] / alone[k] for k in sorted(idle) if idle[k] and alone.get(k)]

    def cpu(self, key: str) -> list[float]:
        return [r[key] for r in self.records if r.get("loadgen") and key in r]

    # ---- cross-check figures
    def xruns(self, server: str, case: str, generator: str) -> list[dict[str, Any]]:
        return [
            r
            for r in self.xcheck
            if (r["server"], r["case"], r["generator"]) == (server, case, generator)
            and r.get("report")
        ]

    def xrate(self, server: str, case: str, generator: str) -> dict[int, float]:
        return {
            r["rep"]: r["report"]["results"]["rps"] for r in self.xruns(server, case, generator)
        }

    def xfailed(self, server: str, case: str, generator: str) -> bool:
        """Whether any cross-check run of this kind failed or counted errors."""
        key = (server, case, generator)
        return any(
            failed(r) for r in self.xcheck if (r["server"], r["case"], r["generator"]) == key
        )

    def xmedian(self, server: str, case: str, generator: str, key: Callable) -> float | None:
        return median(key(r) for r in self.xruns(server, case, generator))


def load(results: Path, tag: str, baseline: str) -> Data:
    """The records C{publish.py} left in C{results}."""
    records = [json.loads(line) for line in (results / f"{tag}.jsonl").read_text().splitlines()]
    xpath = results / "xcheck.jsonl"
    xcheck = [json.loads(line) for line in xpath.read_text().splitlines()] if xpath.exists() else []
    meta = json.loads((results / "meta.json").read_text())
    mdPath = results / f"{tag}.md"
    return Data(records, xcheck, meta, baseline, mdPath.read_text() if mdPath.exists() else "")


# ---- markdown ----------------------------------------------------------------------------


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def x(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.2f}"


def render(data: Data, png: str | None) -> str:
    """C{BENCHMARKS.md}."""
    meta, base = data.meta, data.baseline
    netd = [s for s in ("netd", "netd-policies") if s in data.servers]
    tp = data.throughputCases()
    reps = meta["reps"]
    window = "0.2 s warm-up + 0.5 s" if meta["quick"] else "0.3 s warm-up + 1 s"
    L: list[str] = ["# netd benchmarks", ""]
    if meta["quick"]:
        L += [
            "**A smoke run (`--quick`): one repetition of half-second cases. Not for quoting.**",
            "",
        ]
    L += [
        f"netd's TCP and UDP echo against its peers, measured {meta['started']} in one run of "
        f"the independent harness (`../shared/bench/run.py`, a C load generator that verifies "
        f"every echoed byte), {reps} repetition{'s' if reps != 1 else ''} of {window} measured per "
        f"case, servers taking turns in an order that rotates each repetition. Ratios `(x)` are "
        f"to **{base}**, the canonical Twisted echo, in the same run: the median of the "
        "per-repetition ratios. Regenerate with `make bench` (this file, the plot and "
        "`benchmarks/results/`); the command that produced these figures closes the page.",
        "",
    ]
    spreads = [v for s in data.servers for c in tp if (v := data.spread(s, c)) is not None]
    if spreads and median(spreads) > 35:
        L += [
            f"**A noisy run.** Repetitions of one case spread by a median {median(spreads):.0f} % "
            "(the harness README calls 5-35 % typical on this machine): other sessions were "
            "loading the same two vCPUs (see *Machine*). The targets table marks which verdicts "
            "this run cannot settle; re-run `make bench` (with more `REPS=`) on a quieter "
            "machine before quoting a single ratio.",
            "",
        ]
    if png:
        L += [f"![req/s and p99 by connection count; memory per idle connection]({png})", ""]

    # ---- headline
    if netd:
        L += ["## netd against the canonical Twisted echo", ""]
        L += [f"Median rate, `(x)` ratio to {base}; the targets come from the issue.", ""]
        header = ["case", "target", base] + netd
        rows = []
        targets = dict(RATIO_TARGETS)
        for case in tp:
            unit = METRIC[data.modes[case]][1]
            row = [f"{case} ({unit})", f"≥ {targets[case]}×" if case in targets else "-"]
            row.append(fmt(data.medianRate(base, case)))
            for s in netd:
                row.append(
                    f"{fmt(data.medianRate(s, case))} ({x(data.ratio(s, case))}){data.flag(s, case)}"
                )
            rows.append(row)
        L += table(header, rows) + [""]
        L += targetsSection(data, netd)

    # ---- machine and method
    L += machineSection(data)

    # ---- full tables
    L += ["## All servers", "", f"### Throughput (median; (x) = ratio to {base})", ""]
    rows = []
    for s in data.servers:
        cells = [s]
        for case in tp:
            flag = data.flag(s, case)
            if flag == "skip" or not data.by.get((s, case)):
                cells.append("n/a" if not data.by.get((s, case)) else "skip")
                continue
            cell = f"{fmt(data.medianRate(s, case))} ({x(data.ratio(s, case))}){flag}"
            if data.modes[case] == "udp":
                loss = median(
                    data.values(s, case, lambda r: r["loadgen"]["results"].get("loss_pct")).values()
                )
                cell += f" loss {loss:.3g}%" if loss else ""
            cells.append(cell)
        rows.append(cells)
    L += table(["server"] + [f"{c} ({METRIC[data.modes[c]][1]})" for c in tp], rows) + [""]
    L += [
        "Spread over repetitions, (max - min) / median, in %: how far to trust a ratio "
        "(the harness README: treat ratios within ~0.15 of each other as ties).",
        "",
    ]
    rows = [
        [s] + [fmt(data.spread(s, c)) if data.spread(s, c) is not None else "-" for c in tp]
        for s in data.servers
    ]
    L += table(["server"] + tp, rows) + [""]
    lat = [c for c in tp if data.modes[c] in ("rr", "udp", "connrate")]
    L += ["### Latency p50 / p99 / p999 (microseconds)", ""]
    rows = []
    for s in data.servers:
        cells = [s]
        for c in lat:
            if not data.runs(s, c):
                cells.append("-")
                continue
            cells.append(
                " / ".join(fmt(data.latency(s, c, p)) for p in ("p50", "p99", "p999"))
                + data.flag(s, c)
            )
        rows.append(cells)
    L += table(["server"] + lat, rows) + [""]
    L += idleSection(data)
    L += cpuSection(data)
    L += crossCheckSection(data)
    L += errorsSection(data)
    L += caveats(data)
    L += closing(data, netd)
    return "\n".join(L).rstrip() + "\n"


def geomean(values: Iterable[float]) -> float | None:
    logs = [math.log(v) for v in values if v]
    return math.exp(sum(logs) / len(logs)) if logs else None


def judged(
    values: list[float], target: float, higher: bool, tie: float, unit: str = ""
) -> tuple[str, str]:
    """
    The cell (median and per-repetition range) and the verdict for one target.  "within
    noise" when the target lies inside the per-repetition range or within C{tie} of the
    median: this run cannot tell which side it is on.
    """
    if not values:
        return "-", "not measured"
    mid = statistics.median(values)
    lo, hi = min(values), max(values)
    met = mid >= target if higher else mid <= target
    word = "**met**" if met else "**not met**"
    noisy = len(values) > 1 and lo <= target <= hi or abs(mid - target) <= tie
    cell = f"{mid:.2f}{unit}" + (f" ({lo:.2f}-{hi:.2f})" if len(values) > 1 else "")
    return cell, f"{word} (within noise)" if noisy else word


def targetsSection(data: Data, netd: list[str]) -> list[str]:
    base = data.baseline
    L = ["### Targets", ""]
    L += [
        "Judged on the median for **netd** (limits off); netd-policies beside it. In brackets "
        "the range over repetitions (each repetition's own ratio). **within noise**: the "
        f"target lies inside that range, or within {TIE} of the median (the harness's tie "
        "band; 0.1 KiB for memory, 0.03 for the policy cost), so this run cannot tell "
        f'which side it is on. "Unchanged" p99 is read as at most {P99_UNCHANGED}× the same '
        "server's rr64_c1 p99 (one connection, none idle), paired by repetition.",
        "",
    ]
    header = ["target"] + [h for s in netd for h in (s, "verdict")]
    rows: list[list[str]] = []
    verdicts: list[tuple[str, str]] = []

    def add(
        label: str, short: str, judge: Callable[[str], tuple[str, str]], who: list[str]
    ) -> None:
        row = [label]
        for s in netd:
            cell, word = judge(s) if s in who else ("-", "-")
            row += [cell, word]
            if s == "netd":
                verdicts.append((short, word))
        rows.append(row)

    for case, target in RATIO_TARGETS:
        if case in data.cases:
            add(f"{case} ≥ {target}× {base}", case,
                lambda s, c=case, t=target: judged(data.ratioList(s, c), t, True, TIE), netd)  # fmt: skip
    if "idle10k" in data.cases:

        def memory(s: str) -> tuple[str, str]:
            runs = data.runs(s, "idle10k")
            held = all(
                r["loadgen"]["results"]["established"] == 10000
                and r["loadgen"]["results"]["alive_after"] == 10000
                for r in runs
            )
            cell, word = judged(
                list(data.perConnectionKb(s, "idle10k").values()), IDLE_KB, False, 0.1, " KiB"
            )
            return (cell, word) if held else (cell + " (not all held)", "**not met**")

        add(
            f"10,000 idle connections, ≤ {IDLE_KB} KiB each (extra PSS / N)",
            "idle memory",
            memory,
            netd,
        )
        add(f"… with an active client's p99 unchanged (≤ {P99_UNCHANGED}× its rr64_c1 p99)", "idle p99",
            lambda s: judged(data.idleP99List(s), P99_UNCHANGED, False, 0.15, "×"), netd)  # fmt: skip
    policy = None
    if "netd-policies" in netd and "netd" in netd:
        cases = data.throughputCases()
        per = {c: data.ratio("netd-policies", c, to="netd") for c in cases}
        reps = sorted({r["rep"] for r in data.records})
        perRep = []
        for rep in reps:
            pairs = [
                (data.rate("netd-policies", c).get(rep), data.rate("netd", c).get(rep))
                for c in cases
            ]
            perRep.append(geomean(a / b for a, b in pairs if a and b))
        policy = judged([v for v in perRep if v], POLICY_COST, True, 0.03)
        rows.append([
            f"netd-policies ≤ 5 % slower than netd (geometric mean over the {len(cases)} cases "
            "of netd-policies / netd, per repetition)", "-", "-", *policy,
        ])  # fmt: skip
        verdicts.append(("policy cost", policy[1]))
    L += tally(verdicts) + table(header, rows) + [""]
    if policy is not None:
        worst = sorted(per.items(), key=lambda kv: kv[1] or 9)[:3]
        L += [
            "netd-policies / netd per case (median of per-repetition ratios): "
            + ", ".join(f"{c} {x(v)}" for c, v in per.items())
            + f"; lowest {', '.join(f'{c} {x(v)}' for c, v in worst)}. A single case's spread "
            "is far above 5 % here, so only the mean over all cases speaks to a 5 % target. "
            "Connection logging is on in both (netd logs every closed connection; there is no "
            "switch to turn it off), so this measures the policies and the metrics endpoint.",
            "",
        ]
    return L


def tally(verdicts: list[tuple[str, str]]) -> list[str]:
    """One line: how many targets netd met, and which it did not."""
    measured = [(label, v) for label, v in verdicts if v.startswith("**")]
    met = [label for label, v in measured if v.startswith("**met**")]
    missed = [label for label, v in measured if not v.startswith("**met**")]
    noisy = [label for label, v in measured if "within noise" in v]
    line = f"On the medians, netd met **{len(met)} of {len(measured)}** targets in this run"
    line += f"; not met: {', '.join(missed)}" if missed else ""
    line += (
        f". {len(noisy)} of the {len(measured)} verdicts are within noise ({', '.join(noisy)})."
        if noisy
        else "."
    )
    return [line, ""]


def turnsText(meta: dict[str, Any]) -> str:
    """The cyclic order the servers took turns in."""
    order = meta.get("turns")
    if not order:
        return "as run.py orders them (see `benchmarks/results/harness.md`)."
    return (
        "servers take turns in the cyclic order "
        + " → ".join(f"`{s}`" for s in order)
        + ", rotated by one each repetition; each gets a fresh process for the idle cases and "
        "another for the rest. The baseline runs right before netd, and xinetd's aftermath "
        "(10,000 children, thousands of sockets in TIME_WAIT) never precedes netd or the baseline."
    )


def spreadText(data: Data) -> str:
    """The median and largest spread over every server and throughput case."""
    spreads = [
        v
        for s in data.servers
        for c in data.throughputCases()
        if (v := data.spread(s, c)) is not None
    ]
    if not spreads:
        return "Each case ran once"
    return (
        f"Repetitions of one case spread by a median {median(spreads):.0f} % and at most {max(spreads):.0f} % "
        "(max - min over median)"
    )


def backgroundText(meta: dict[str, Any]) -> str:
    """The other sessions' CPU use, sampled for 3 s before and after while ours was idle."""
    parts = []
    for when, label in (("start", "in the 3 s before the run"), ("end", "in the 3 s after it")):
        busy = meta.get(f"background_{when}")
        if busy:
            cpus = " and ".join(f"CPU {i} {b:g} %" for i, b in enumerate(busy))
            parts.append(f"{cpus} busy {label}")
    return ", ".join(parts) or "the background was not sampled"


def machineSection(data: Data) -> list[str]:
    meta, m = data.meta, data.meta["machine"]
    steal = [
        a + b for a, b in zip(data.cpu("cpu0_steal_pct"), data.cpu("cpu1_steal_pct"), strict=True)
    ]
    busy0, busy1 = data.cpu("cpu0_busy_pct"), data.cpu("cpu1_busy_pct")
    pin = meta["pinning"]
    L = ["## Machine, pinning, method", ""]
    L += [
        f"- **Machine:** {m['cpu_model']}, {m['cpus']} CPUs (`nproc` {m['nproc']}, "
        f"{m['threads_per_core']} thread per core), {m['hypervisor'] or 'no'} hypervisor, "
        f"{m['mem_gib']} GiB RAM; {m['os']}, kernel {m['kernel']}. Hard RLIMIT_NOFILE {m['nofile_hard']}.",
        f"- **Software:** Python {m['python']}, Twisted {m['twisted']}, uvloop {m['uvloop']}, "
        f"netd {m['netd']}, xinetd {m['xinetd'] or '(not installed)'}, gcc {m['gcc']} (the load generator).",
        f"- **Pinning:** every server process (children included: the affinity is inherited) on "
        f"CPU {pin['server_cpu']}; the load generator and the driver on CPU {pin['client_cpu']}, "
        f"for the harness and for the cross-check alike (netd's generator's worker processes "
        f"too). Loopback only (127.0.0.1; connrate from 127.0.0.1-8, xinetd from 127.0.0.1).",
        "- **Shared, noisy machine:** other sessions work on the same two vCPUs. With nothing "
        f"of ours running, {backgroundText(meta)}; the load average was {meta['loadavg_start']} "
        "at the start (during the run it also counts xinetd's 10,000 children, so it is no "
        f"noise figure). Per case, CPU {pin['server_cpu']} was busy {fmt(median(busy0))} % "
        f"(median, the server included) and CPU {pin['client_cpu']} {fmt(median(busy1))} %; "
        f"CPU steal (both CPUs summed) median {fmt(median(steal))} %, max "
        f"{fmt(max(steal, default=None))} %. {spreadText(data)}: "
        "read the spread table before a ratio.",
        f"- **Order:** {turnsText(meta)}",
        f"- **Time:** harness {meta['harness_s'] // 60} min {meta['harness_s'] % 60} s, "
        f"cross-check {meta['xcheck_s'] // 60} min {meta['xcheck_s'] % 60} s.",
        "",
        "### Servers",
        "",
    ]
    rows = [[f"`{s}`", DESCRIBE.get(s, "")] for s in data.servers]
    L += table(["name", "what"], rows) + [""]
    L += [
        "netd runs on its own epoll reactor (`netd.fastpath.reactor.NetdEPollReactor`: Twisted's, "
        "with eager writes, `TCP_NODELAY` and a leaner event dispatch); the peers keep their "
        "library defaults (Twisted leaves Nagle on, asyncio and uvloop turn it off; socketserver "
        "listens with a backlog of 5 and forks at most 40 children).",
        "",
    ]
    L += [
        "### Commands",
        "",
        "```sh",
        f"# {asked(meta, code=True)} ran:",
        meta["harness_cmd"],
        "```",
        "",
    ]
    for name, (tcp, udp) in meta.get("servers", {}).items():
        L += [f"`{name}`: TCP `{tcp}`; UDP `{udp}`.", ""]
    return L


def idleSection(data: Data) -> list[str]:
    idle = [c for c in data.cases if data.modes[c] == "idle"]
    if not idle:
        return []
    L = [
        "### Idle connections",
        "",
        "Per N: established (still answering after the rr phase) / peak RSS of the server's "
        "process tree [PSS] / extra PSS per idle connection / p50-p99 (us) of one more "
        "connection doing rr 64 B while the N sit idle. PSS does not count pages shared "
        "between forked children twice; kernel socket buffers are in neither.",
        "",
    ]
    rows = []
    for s in data.servers:
        cells = [s]
        for c in idle:
            rs = data.runs(s, c)
            if not rs:
                cells.append(data.flag(s, c) or "-")
                continue
            cells.append(idleCell(data, s, c, rs))
        rows.append(cells)
    return L + table(["server"] + idle, rows) + [""]


def idleCell(data: Data, server: str, case: str, runs: list[dict[str, Any]]) -> str:
    """established (alive after) / RSS MB [PSS] / KiB per connection / p50-p99 us."""
    res = [r["loadgen"]["results"] for r in runs]
    rss = (median(r["rss_kb"] for r in runs) or 0) / 1024
    pss = (median(r["pss_kb"] for r in runs) or 0) / 1024
    per = median(data.perConnectionKb(server, case).values()) or 0.0
    held = f"{fmt(median(x['established'] for x in res))} ({fmt(median(x['alive_after'] for x in res))})"
    lat = f"{fmt(data.latency(server, case, 'p50'))}-{fmt(data.latency(server, case, 'p99'))}"
    return f"{held} / {rss:.0f} MB [{pss:.0f}] / {per:.2f} KiB / {lat}{data.flag(server, case)}"


def cpuSection(data: Data) -> list[str]:
    L = [
        "### Server CPU % / client CPU % (median; 100 = one core)",
        "",
        "A client near 100 % means the generator, not the server, set the pace.",
        "",
    ]
    rows = []
    for s in data.servers:
        cells = [s]
        for c in data.cases:
            rs = data.runs(s, c)
            cells.append(
                f"{fmt(median(r['server_cpu_pct'] for r in rs))}/"
                f"{fmt(median(r['loadgen']['results']['client_cpu_pct'] for r in rs))}"
                if rs
                else "-"
            )
        rows.append(cells)
    return L + table(["server"] + data.cases, rows) + [""]


def crossCheckSection(data: Data) -> list[str]:
    if not data.xcheck:
        return []
    servers = list(dict.fromkeys(r["server"] for r in data.xcheck))
    cases = [c for c in CASE_ORDER if any(r["case"] == c for r in data.xcheck)]
    reps = len({r["rep"] for r in data.xcheck})
    params = next(
        (
            r["report"]["params"]
            for r in data.xcheck
            if r["generator"] == "netd-bench" and r.get("report")
        ),
        {},
    )
    L = ["## Cross-check: netd's generator against the C generator", ""]
    L += [
        f"`python -m netd.bench` (netd's own load generator, {params.get('loop', '?')} loop; "
        "its defaults: 1 worker process up to 10 connections, 2 beyond, 1 for UDP) and the "
        "harness's C `loadgen` ran the same cases against the same server processes, "
        f"pinned as above (server CPU 0, generator CPU 1), {reps} repetition{'s' if reps != 1 else ''}, "
        "the two generators alternating first within each case. Both verify every echoed byte.",
        "",
    ]
    rows = []
    for s in servers:
        for c in cases:
            rl, rn = data.xrate(s, c, "loadgen"), data.xrate(s, c, "netd-bench")
            rows.append([s, c, fmt(median(rl.values())), fmt(median(rn.values())),
                         x(data.pairedRatio(rn, rl)),
                         xLatency(data, s, c, "loadgen"), xLatency(data, s, c, "netd-bench"),
                         " / ".join(fmt(data.xmedian(s, c, g, lambda r: r["server_cpu_pct"])) for g in GENS),
                         " / ".join(fmt(data.xmedian(s, c, g, clientCpu)) for g in GENS),
                         ", ".join(g for g in GENS if data.xfailed(s, c, g)) or "none"])  # fmt: skip
    L += table(["server", "case", "C loadgen (req/s)", "netd bench (req/s)", "netd bench / loadgen",
                "p50 / p99 us, loadgen", "p50 / p99 us, netd bench", "server CPU % over the whole run, loadgen / netd bench",
                "client CPU %, loadgen / netd bench", "errors"], rows) + [""]  # fmt: skip
    if "netd" in servers and data.baseline in servers:
        rows = []
        for c in cases:
            byGen = [
                data.pairedRatio(data.xrate("netd", c, g), data.xrate(data.baseline, c, g))
                for g in ("loadgen", "netd-bench")
            ]
            harness = data.ratio("netd", c) if c in data.cases else None
            rows.append([c, x(byGen[0]), x(byGen[1]), x(harness)])
        L += [
            f"netd / {data.baseline} as each generator sees it (median of per-repetition ratios):",
            "",
        ]
        L += table(
            ["case", "C loadgen", "netd bench", "the harness run above (C loadgen)"], rows
        ) + [""]
    L += [
        "netd bench's client CPU % is its parent's and workers' CPU over its whole wall time "
        "(spawning included), the C generator's over its run: compare each with 100 %, not with "
        "each other. The C generator is the reference: where netd bench reports "
        "less than it against the same server, netd bench (a Python generator whose workers "
        "share one core) is the likelier limit, and the ratios it measures lean toward 1.",
        "",
    ]
    return L


def clientCpu(record: dict[str, Any]) -> float:
    return record["report"]["results"]["client_cpu_pct"]


def xLatency(data: Data, server: str, case: str, generator: str) -> str:
    """p50 / p99 (us) that C{generator} measured: medians over repetitions."""
    return " / ".join(
        fmt(
            data.xmedian(
                server, case, generator, lambda r, p=p: r["report"]["results"]["lat_us"][p]
            )
        )
        for p in ("p50", "p99")
    )


def errorsSection(data: Data) -> list[str]:
    lines = []
    for r in data.records:
        if r.get("skipped"):
            continue
        if failed(r):
            res = (r.get("loadgen") or {}).get("results", {})
            extra = ""
            if r["mode"] == "idle" and res:
                extra = (
                    f" established {res['established']}, failed {res['failed']}, "
                    f"not attempted {res['not_attempted']}, alive after {res['alive_after']}"
                )
            lines.append(
                f"- {r['server']} {r['case']} rep {r['rep']}: {res.get('errors', '')}{extra} "
                f"{r.get('error', '')}".rstrip()
            )
    skips: dict[tuple[str, str], set[str]] = {}
    for r in data.records:
        if r.get("skipped"):
            skips.setdefault((r["case"], r["skipped"]), set()).add(r["server"])
    lines += [f"- {c} skipped for {', '.join(sorted(ss))}: {why}" for (c, why), ss in skips.items()]
    for r in data.xcheck:
        if failed(r):
            errors = ((r.get("report") or {}).get("results") or {}).get("errors", "")
            lines.append(
                f"- cross-check {r['server']} {r['case']} {r['generator']} rep {r['rep']}: "
                f"{errors} {r.get('error', '')}".rstrip()
            )
    return ["## Errors and skipped cases", "", *(lines or ["none"]), ""]


def caveats(data: Data) -> list[str]:
    return [
        "## Caveats (from the harness README, those that apply here)",
        "",
        "- **Two shared cores.** Loopback TCP work is charged to whichever side sends, so kernel "
        "time is split between the two CPUs, and other sessions' work lands on them too (steal "
        "and busy figures above).",
        "- **Short windows, noisy machine.** 1 s measured per case: on a quieter day the "
        "harness README saw repetitions spread 5-35 %, bulk more (this run: above). Treat ratios within ~0.15 of each other as ties; pool runs "
        "(`run.py --report A.jsonl B.jsonl`) or raise `REPS=` before concluding.",
        "- **rr at C=1 is VM wake-up latency** (~20-25 us per cross-core wake-up): every "
        "server lands in a narrow band there; in `BASELINE.md` even the C epoll server, the "
        "harness's ceiling, measured 1.36-1.39× the Twisted echo at C=1, so a 1.9× target there "
        "is unlikely to be measurable on this machine for any server.",
        "- **The client can be the bottleneck** against the fastest servers (client CPU near "
        "100 %): then the figure is the generator's ceiling.",
        "- **idle50k** cannot run here: the hard RLIMIT_NOFILE is 20000 and root lacks "
        "CAP_SYS_RESOURCE. Memory is user-space (RSS/PSS), sampled every 0.2 s; kernel socket "
        "buffers are not in it.",
        "- **connrate** uses 8 source addresses (one address's ephemeral ports fill with "
        "TIME_WAIT); xinetd keeps one, as it reverse-resolves peers through libwrap. netd never "
        "resolves names.",
        "- **Library defaults are kept** for the peers; ForkingTCPServer serves 40 connections at "
        "once, so its C=100 and idle figures are errors by construction.",
        "- **xinetd's UDP echo** discards datagrams that queue while it answers one: its udp64 "
        "measures that, not speed.",
        "",
    ]


def asked(meta: dict[str, Any], code: bool = False) -> str:
    """The command that produced the run: make's target and the script it ran."""
    command, make = meta.get("command") or meta.get("publish", "?"), meta.get("make")
    if code:
        return f"{make}, i.e. {command}," if make else command
    return f"`{make}` (`{command}`)" if make else f"`{command}`"


def closing(data: Data, netd: list[str]) -> list[str]:
    meta = data.meta
    L = ["## Closing note", ""]
    if "netd" not in netd:
        return L + [f"Produced by {asked(meta)}.", ""]
    ratios = ", ".join(f"{c} {x(data.ratio('netd', c))}×" for c in data.throughputCases())
    L += [
        f"netd / {data.baseline}, medians of per-repetition ratios over {meta['reps']} "
        f"repetition{'s' if meta['reps'] != 1 else ''}: {ratios}."
    ]
    if "netd-policies" in netd:
        pol = ", ".join(f"{c} {x(data.ratio('netd-policies', c))}×" for c in data.throughputCases())
        L += [f"netd-policies / {data.baseline}: {pol}."]
    if "idle10k" in data.cases:
        kb = median(data.perConnectionKb("netd", "idle10k").values())
        L += [
            f"10,000 idle connections: {kb:.2f} KiB each (PSS) for netd." if kb is not None else ""
        ]
    L += [
        "",
        f"Produced by {asked(meta)}, which ran the harness as",
        "",
        f"    {meta['harness_cmd']}",
        "",
        "and then the generators' cross-check (above). Raw records: `benchmarks/results/harness.jsonl`, "
        "`benchmarks/results/xcheck.jsonl`; the harness's own tables: "
        "`benchmarks/results/harness.md`; machine and commands: `benchmarks/results/meta.json`.",
        "",
    ]
    return L
