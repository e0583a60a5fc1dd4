"""
Exact latency percentiles.

Samples are kept raw (nanoseconds, one per completed request) and merged across worker
processes by concatenation, so a percentile of the whole run is computed from every sample
instead of averaged from per-worker percentiles (which is not a percentile of anything).
The definition is the nearest-rank one C{loadgen.c} uses: the p-th percentile of M{n}
sorted samples is the sample at 1-based rank M{ceil(p * n)} (at least 1).  Ranks are
computed in integer arithmetic on per-mille values, so no float rounding can move a rank.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Sequence

__all__ = ["PERCENTILES", "mergeSamples", "nearestRank", "summarize"]

# (JSON field, per-mille): the percentiles loadgen.c reports.
PERCENTILES: tuple[tuple[str, int], ...] = (("p50", 500), ("p90", 900), ("p99", 990), ("p999", 999))


def nearestRank(ordered: Sequence[int], permille: int) -> int:
    """
    The nearest-rank percentile of C{ordered} (sorted ascending, not empty).

    @param permille: the percentile in thousandths (990 is p99).
    @return: C{ordered[ceil(n * permille / 1000) - 1]}, the smallest sample with at least
        that share of all samples at or below it.
    """
    if not ordered:
        raise ValueError("no samples")
    rank = max(1, -(-len(ordered) * permille // 1000))
    return ordered[min(rank, len(ordered)) - 1]


def mergeSamples(parts: Iterable[array[int]]) -> array[int]:
    """All workers' samples as one array (order does not matter: they are sorted later)."""
    merged: array[int] = array("q")
    for part in parts:
        merged.extend(part)
    return merged


def summarize(samples: Iterable[int]) -> dict[str, float]:
    """
    C{loadgen.c}'s C{lat_us} object: count, mean and exact percentiles in microseconds.

    Zeros when there are no samples, as C{loadgen.c} prints them.
    """
    ordered = sorted(samples)
    n = len(ordered)
    summary: dict[str, float] = {"n": n, "mean": round(sum(ordered) / n / 1e3, 1) if n else 0.0}
    for name, permille in PERCENTILES:
        summary[name] = round(nearestRank(ordered, permille) / 1e3, 1) if n else 0.0
    summary["max"] = round(ordered[-1] / 1e3, 1) if n else 0.0
    return summary
