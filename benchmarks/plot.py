"""
C{benchmarks/bench.png}: per case, each server's median ratio to the baseline of its kind
(bars, with the per-repetition range as a line), issue 12's targets for netd as marks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def render(data: Any, path: Path, targets: Any = ()) -> bool:
    """Draw the plot (C{targets}: report.TARGETS); False, no file, without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    cases = [c for c in data.cases if data.mode(c) != "idle"]
    fig, axes = plt.subplots(len(cases), 1, figsize=(9, 1.2 + 1.6 * len(cases)), squeeze=False)
    goals: dict[tuple[str, str], float] = {}
    for t in targets:
        if not t.atMost and not t.versus:  # the first step of each (the aims are in the table)
            goals.setdefault((t.server, t.case), t.bound)
    for ax, case in zip(axes[:, 0], cases, strict=True):
        names = [s for s in data.servers if data.by.get((s, case))]
        ratios = [data.ratio(s, case) or 0 for s in names]
        colours = ["tab:red" if s.startswith("netd") else "tab:grey" for s in names]
        ax.barh(range(len(names)), ratios, color=colours)
        for i, s in enumerate(names):
            spread = data.ratios(s, case)
            if len(spread) > 1:
                ax.plot([min(spread), max(spread)], [i, i], color="black", lw=1)
            goal = goals.get((s, case))
            if goal:
                ax.plot([goal], [i], marker="|", markersize=14, color="tab:blue")
        ax.axvline(1.0, color="black", lw=0.6, ls=":")
        ax.set_yticks(range(len(names)), names, fontsize=8)
        ax.invert_yaxis()
        base = "twisted-daytime" if data.kind(case) == "daytime" else "twisted"
        ax.set_title(f"{case}: ratio to {base} (black: range over repetitions; blue: target)", fontsize=9)
        ax.tick_params(axis="x", labelsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True
