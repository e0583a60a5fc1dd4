"""
C{benchmarks/bench.png}: req/s and p99 by connection count (rr, 64 B and 1 KiB), memory
per idle connection, and the other cases as ratios to the baseline; from the records of
one C{publish.py} run (a L{summary.Data}).  matplotlib with the Agg backend: no display.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter, NullFormatter  # noqa: E402

PLAIN = FuncFormatter(lambda v, _: f"{v:g}")

COLORS = {
    "netd": "#d62728",
    "netd-policies": "#ff7f0e",
    "twisted-epoll": "#1f77b4",
    "asyncio": "#2ca02c",
    "asyncio-uvloop": "#17becf",
    "socketserver-threading": "#9467bd",
    "socketserver-forking": "#8c564b",
    "xinetd": "#7f7f7f",
}
CONNS = (1, 10, 100)


def style(server: str) -> dict[str, Any]:
    """netd's lines stand out; the peers' are thinner."""
    ours = server.startswith("netd")
    return {
        "color": COLORS.get(server, "black"),
        "linewidth": 2.6 if ours else 1.4,
        "linestyle": "--" if server == "netd-policies" else "-",
        "marker": "o" if ours else ".",
        "markersize": 7 if ours else 6,
        "zorder": 3 if ours else 2,
        "label": server,
    }


def lines(ax: Any, data: Any, size: str, what: str) -> None:
    """One line per server over C=1, 10, 100: median, with the min-max over repetitions."""
    for server in data.servers:
        xs, ys, lo, hi = [], [], [], []
        for conns in CONNS:
            case = f"rr{size}_c{conns}"
            if case not in data.cases:
                continue
            if what == "rate":  # thousand req/s
                values = [v / 1000 for v in data.rate(server, case).values() if v]
            else:  # ms
                p99 = data.values(server, case, lambda r: r["loadgen"]["results"]["lat_us"]["p99"])
                values = [v / 1000 for v in p99.values() if v]
            if not values:
                continue
            mid = statistics.median(values)
            xs.append(conns)
            ys.append(mid)
            lo.append(mid - min(values))
            hi.append(max(values) - mid)
        if xs:
            ax.errorbar(xs, ys, yerr=[lo, hi], capsize=3, **style(server))
    ax.set_xscale("log")
    ax.set_xticks(CONNS, [str(c) for c in CONNS])
    ax.set_xlabel("connections (closed loop)")
    ax.grid(True, which="both", alpha=0.3)
    label = "64 B" if size == "64" else "1 KiB"
    if what == "rate":
        ax.set_title(f"rr {label}: throughput (higher is better)")
        ax.set_ylabel("thousand requests/s")
        ax.set_ylim(bottom=0)
    else:
        ax.set_title(f"rr {label}: p99 latency (lower is better)")
        ax.set_ylabel("p99, ms (log)")
        if ax.has_data():
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(PLAIN)
            ax.yaxis.set_minor_formatter(NullFormatter())


def idleBars(ax: Any, data: Any) -> None:
    """Extra PSS per idle connection, at the largest N each server held (log scale)."""
    names, values, notes = [], [], []
    for server in data.servers:
        note, value = "not run", 0.0
        for case, label in (("idle10k", "10k"), ("idle1k", "1k")):
            runs = data.runs(server, case)
            ok = [r for r in runs if r["loadgen"].get("ok")]
            if ok:
                per = data.perConnectionKb(server, case)
                note, value = label, max(statistics.median(per[r["rep"]] for r in ok), 0.01)
                break
            if runs:
                note = "failed"
        names.append(server)
        values.append(value)
        notes.append(note)
    ax.set_title("memory per idle connection (lower is better)")
    if not any(values):
        ax.text(0.5, 0.5, "no idle case in this run", ha="center", transform=ax.transAxes)
        ax.set_axis_off()
        return
    bars = ax.bar(range(len(names)), values, color=[COLORS.get(n, "black") for n in names])
    for bar, value, note in zip(bars, values, notes, strict=True):
        held = note in ("10k", "1k")
        text = (f"{value:.2f}" if value < 10 else f"{value:.0f}") + f"\n({note} idle)"
        ax.annotate(
            text if held else note,
            (bar.get_x() + bar.get_width() / 2, value if held else 0.5),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(PLAIN)
    ax.set_ylim(0.3, max(values) * 8)
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_ylabel("KiB per connection (PSS, log)")
    ax.grid(True, axis="y", which="both", alpha=0.3)


def otherRatios(ax: Any, data: Any) -> None:
    """bulk, connection rate and UDP as ratios to the baseline, grouped by case."""
    cases = [c for c in ("bulk_k1", "bulk_k4", "connrate_c10", "udp64") if c in data.cases]
    servers = [s for s in data.servers if s != data.baseline]
    width = 0.8 / max(len(servers), 1)
    for i, server in enumerate(servers):
        ratios = [data.ratio(server, c) or 0 for c in cases]
        xs = [j + (i - (len(servers) - 1) / 2) * width for j in range(len(cases))]
        bars = ax.bar(xs, ratios, width, color=COLORS.get(server, "black"), label=server)
        if server.startswith("netd"):
            ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=2, rotation=90)
    ax.axhline(1.0, color=COLORS[data.baseline], linewidth=1.5, label=f"{data.baseline} = 1")
    ax.margins(y=0.15)
    ax.set_xticks(range(len(cases)), cases)
    ax.set_ylabel(f"ratio to {data.baseline}")
    ax.set_title("bulk, connection rate, UDP (higher is better)")
    ax.grid(True, axis="y", alpha=0.3)


def render(data: Any, path: Path) -> None:
    """Write the figure to C{path} (PNG)."""
    fig, axes = plt.subplots(2, 3, figsize=(17, 10), dpi=100)
    lines(axes[0][0], data, "64", "rate")
    lines(axes[0][1], data, "1k", "rate")
    lines(axes[1][0], data, "64", "p99")
    lines(axes[1][1], data, "1k", "p99")
    idleBars(axes[0][2], data)
    otherRatios(axes[1][2], data)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), frameon=False, fontsize=10)
    meta = data.meta
    m = meta["machine"]
    title = (
        f"netd vs echo peers, {meta['started']}: median of {meta['reps']} repetition(s), "
        "whiskers min-max\n"
        f"{m['cpus']} vCPU {m['cpu_model']} (shared VM), server pinned to CPU "
        f"{meta['pinning']['server_cpu']}, C load generator to CPU {meta['pinning']['client_cpu']}, "
        "loopback"
    )
    if meta["quick"]:
        title = "SMOKE RUN (--quick), not for quoting — " + title
    fig.suptitle(title, fontsize=12)
    fig.tight_layout(rect=(0, 0.04, 1, 0.95))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
