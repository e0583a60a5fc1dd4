"""
The benchmark publisher (C{benchmarks/publish.py}, what C{make bench} runs) in its
seconds-long smoke mode: the shared harness and the generators' cross-check against
the canonical Twisted echo and netd, written to a temporary directory.  It checks that a
report and a plot come out, never how fast anything was.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import subprocess
import sys
import tempfile
from importlib.util import find_spec
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

REPO = Path(__file__).resolve().parents[2]
HARNESS = Path(os.environ.get("BENCH_HARNESS", REPO.parent / "shared" / "bench")).resolve()
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
HAVE_MATPLOTLIB = find_spec("matplotlib") is not None


def missing() -> str | None:
    """Why the smoke cannot run on this machine, or None."""
    if not (HARNESS / "run.py").exists():
        return f"no benchmark harness at {HARNESS} (set BENCH_HARNESS)"
    if shutil.which("gcc") is None:
        return "gcc is needed to build the harness's load generator"
    if len(os.sched_getaffinity(0)) < 2:
        return "the harness needs 2 CPUs (server on CPU 0, load generator on CPU 1)"
    return None


@functools.cache
def published() -> tuple[Path, subprocess.CompletedProcess[str]]:
    """Run the smoke once for all the tests here; its output directory and its process."""
    out = Path(tempfile.mkdtemp(prefix="netd-bench-smoke-"))
    atexit.register(shutil.rmtree, out, True)
    argv = [sys.executable, str(REPO / "benchmarks" / "publish.py"), "--smoke"]
    argv += ["--harness", str(HARNESS), "--out-dir", str(out)]
    if not HAVE_MATPLOTLIB:
        argv.append("--no-plot")
    done = subprocess.run(
        argv, cwd=REPO, capture_output=True, text=True, timeout=150, stdin=subprocess.DEVNULL
    )
    return out, done


class SmokeTests(SynchronousTestCase):
    def setUp(self) -> None:
        reason = missing()
        if reason:
            self.skipTest(reason)
        self.out, self.done = published()
        self.assertEqual(self.done.returncode, 0, self.done.stdout[-3000:] + self.done.stderr)

    def test_markdownTables(self) -> None:
        """The smoke writes BENCHMARKS.md with netd and the baseline in its tables."""
        text = (self.out / "BENCHMARKS.md").read_text()
        self.assertIn("| case | target | twisted-epoll | netd |", text)
        self.assertRegex(text, r"\n\| rr64_c10 \(req/s\) \| ≥ 1\.9× \| \S+ \| \S+ \(\d+\.\d\d\)")
        self.assertIn("## Cross-check: netd's generator against the C generator", text)
        self.assertRegex(text, r"\n\| netd \| rr64_c10 \| \S+ \| \S+ \| \d+\.\d\d \|")
        self.assertIn("publish.py --smoke", text)

    def test_rawRecords(self) -> None:
        """The records behind the tables are kept beside them."""
        results = self.out / "benchmarks" / "results"
        for name in ("harness.jsonl", "xcheck.jsonl", "meta.json"):
            self.assertGreater((results / name).stat().st_size, 0, name)

    def test_plot(self) -> None:
        """The smoke draws benchmarks/bench.png."""
        if not HAVE_MATPLOTLIB:
            self.skipTest("matplotlib is not installed (pip install -e '.[bench]')")
        png = (self.out / "benchmarks" / "bench.png").read_bytes()
        self.assertEqual(png[:8], PNG_MAGIC)
        self.assertGreater(len(png), 10_000)
