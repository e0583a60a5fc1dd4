"""
The benchmark report's statistics (C{benchmarks/report.py}) on made-up records: ratios
are paired by repetition, failed runs are left out, and each verdict says met, not met,
or within noise as the targets define.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "report.py"


def loadReport() -> Any:
    """C{benchmarks/report.py} as a module (C{benchmarks/} holds scripts, not a package)."""
    spec = importlib.util.spec_from_file_location("netd_benchmarks_report", PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


report = loadReport()


def record(server: str, case: str, rep: int, rate: float, ok: bool = True) -> dict[str, Any]:
    """One record as run.py writes it, with only the fields the report reads."""
    mode = case.split("_")[0].rstrip("0123456789k")
    return {
        "server": server, "case": case, "rep": rep, "mode": mode, "server_cpu_pct": 50.0,
        "loadgen": {"mode": mode, "ok": ok, "results": {
            "rate": rate, "unit": "conn/s", "errors": {"total": 0 if ok else 1},
            "client_cpu_pct": 40.0, "lat_us": {"n": 1, "p50": 1, "p99": 2, "p999": 3}}},
    }  # fmt: skip


def data(records: list[dict[str, Any]]) -> Any:
    meta = {"order": ["twisted", "netd"], "cases": {"connrate_c10": {"mode": "connrate", "kind": "echo"}}}
    return report.Data(records, meta)


class RatioTests(SynchronousTestCase):
    def test_pairedByRepetition(self) -> None:
        """Each ratio divides by the baseline of the same repetition; the median is reported."""
        d = data([
            record("twisted", "connrate_c10", 0, 100), record("netd", "connrate_c10", 0, 200),
            record("twisted", "connrate_c10", 1, 50), record("netd", "connrate_c10", 1, 150),
            record("twisted", "connrate_c10", 2, 200), record("netd", "connrate_c10", 2, 100),
        ])  # fmt: skip
        self.assertEqual(sorted(d.ratios("netd", "connrate_c10")), [0.5, 2.0, 3.0])
        self.assertEqual(d.ratio("netd", "connrate_c10"), 2.0)

    def test_failedRunsLeftOut(self) -> None:
        """A repetition whose load generator reported errors counts for no ratio."""
        d = data([
            record("twisted", "connrate_c10", 0, 100), record("netd", "connrate_c10", 0, 900, ok=False),
            record("twisted", "connrate_c10", 1, 100), record("netd", "connrate_c10", 1, 160),
        ])  # fmt: skip
        self.assertEqual(d.ratios("netd", "connrate_c10"), [1.6])


class VerdictTests(SynchronousTestCase):
    target = report.Target("connection rate", "netd", "connrate_c10", 1.5)

    def verdict(self, rates: list[tuple[float, float]]) -> str:
        records = []
        for rep, (base, netd) in enumerate(rates):
            records += [record("twisted", "connrate_c10", rep, base),
                        record("netd", "connrate_c10", rep, netd)]  # fmt: skip
        return str(report.judge(data(records), self.target)[-1])

    def test_met(self) -> None:
        """Every repetition well above the target: met, and not within noise."""
        self.assertEqual(self.verdict([(100, 200), (100, 210), (100, 190)]), "**met**")

    def test_notMet(self) -> None:
        """Every repetition well below: not met."""
        self.assertEqual(self.verdict([(100, 50), (100, 60), (100, 55)]), "**not met**")

    def test_withinNoise(self) -> None:
        """A range of ratios that straddles the target cannot settle it."""
        self.assertEqual(
            self.verdict([(100, 120), (100, 200), (100, 170)]), "**met** (within noise)"
        )

    def test_notMeasured(self) -> None:
        """A target whose server did not run is said to be unmeasured, not met or failed."""
        self.assertEqual(str(report.judge(data([]), self.target)[-1]), "**not measured**")
