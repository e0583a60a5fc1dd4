"""
The benchmark harness (C{benchmarks/}) in its seconds-long forms: C{run.py --smoke}
must produce well-formed records, C{BENCHMARKS.md} with a verdict per target, and the
plot; C{selftest.py} must show the load generator passing a correct server and catching
each deliberately broken one.  Nothing here asserts a speed.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "benchmarks"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def requireGcc(test: SynchronousTestCase) -> None:
    """The harness compiles its load generator: skip without gcc, unless CI demands all."""
    if shutil.which("gcc") is None:
        if os.environ.get("NETD_REQUIRE_ALL") == "1":
            test.fail("gcc is required (make tools installs it)")
        test.skipTest("gcc is not installed (make tools)")


@functools.cache
def smoke() -> tuple[Path, subprocess.CompletedProcess[str]]:
    """Run C{run.py --smoke} once for the tests here: its output directory and its process."""
    out = Path(tempfile.mkdtemp(prefix="netd-bench-smoke-"))
    atexit.register(shutil.rmtree, out, True)
    argv = [sys.executable, str(BENCH / "run.py"), "--smoke", "--out-dir", str(out)]
    done = subprocess.run(
        argv, cwd=REPO, capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL
    )
    return out, done


@functools.cache
def selftest() -> tuple[list[dict], subprocess.CompletedProcess[str]]:
    """Run C{selftest.py --json} once: its checks and its process."""
    argv = [sys.executable, str(BENCH / "selftest.py"), "--json"]
    done = subprocess.run(
        argv, cwd=REPO, capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL
    )
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()], done


class SmokeTests(SynchronousTestCase):
    def setUp(self) -> None:
        requireGcc(self)
        self.out, self.done = smoke()
        self.assertEqual(self.done.returncode, 0, self.done.stdout[-3000:] + self.done.stderr)
        self.results = self.out / "benchmarks" / "results"

    def test_records(self) -> None:
        """Every case of every smoke server leaves one well-formed, verified record."""
        meta = json.loads((self.results / "meta.json").read_text())
        records = [json.loads(x) for x in (self.results / "run.jsonl").read_text().splitlines()]
        self.assertEqual(meta["reps"], 1)
        seen = {(r["server"], r["case"]) for r in records}
        self.assertIn(("netd", "connrate_c10"), seen)
        self.assertIn(("twisted", "rr64_c10"), seen)
        self.assertIn(("netd-daytime", "wac_c10"), seen)
        self.assertIn(("netd", "udp64"), seen)
        for r in records:
            self.assertNotIn("error", r, r)
            report = r["loadgen"]
            self.assertIs(report["ok"], True, r)
            self.assertEqual(report["results"]["errors"], {"total": 0}, r)
            if meta["pinned"]:
                self.assertTrue(r["cmd"].startswith("taskset -c 1 "), r["cmd"])
                self.assertTrue(r["server_cmd"].startswith("taskset -c 0 "), r["server_cmd"])
            self.assertGreaterEqual(r["server_cpu_pct"], 0)
            if report["mode"] == "idle":
                self.assertEqual(report["results"]["alive_after"], 200)
                self.assertGreater(report["results"]["server_pss_kb"], 0)
            else:
                self.assertGreater(report["results"]["rate"], 0)
                self.assertGreater(report["results"]["lat_us"]["n"], 0)

    def test_markdown(self) -> None:
        """BENCHMARKS.md has the targets with a verdict each, ratios, and its command."""
        text = (self.out / "BENCHMARKS.md").read_text()
        self.assertIn("| target | server, case | goal | this run | verdict |", text)
        self.assertRegex(text, r"\| connection rate, default logging \| `netd` connrate_c10 \| "
                         r"≥ 1\.5x \| \d+\.\d\dx \| \*\*(not )?met\*\*")  # fmt: skip
        self.assertRegex(text, r"\n\| `twisted` \| \S+ \(1\.00\) \|")
        self.assertRegex(text, r"\n\| `netd-daytime` \| \S+ \(\d+\.\d\d\) \|")
        self.assertIn("run.py --smoke", text)
        self.assertIn("noisy", text)

    def test_plot(self) -> None:
        """The smoke draws benchmarks/bench.png."""
        png = (self.out / "benchmarks" / "bench.png").read_bytes()
        self.assertEqual(png[:8], PNG_MAGIC)
        self.assertGreater(len(png), 10_000)


class SelfTestTests(SynchronousTestCase):
    def setUp(self) -> None:
        requireGcc(self)
        self.checks, self.done = selftest()
        self.assertGreater(len(self.checks), 0, self.done.stderr)

    def byServer(self, server: str) -> list[dict]:
        found = [c for c in self.checks if c["server"] == server]
        self.assertTrue(found, server)
        return found

    def assertAllPassed(self, server: str) -> None:
        for check in self.byServer(server):
            self.assertTrue(check["passed"], check)

    def test_correctServersPass(self) -> None:
        """Every mode reports a clean run, and no loss, against correct servers."""
        self.assertAllPassed("good")
        self.assertAllPassed("daytime")
        modes = {c["args"][1] for c in self.byServer("good") + self.byServer("daytime")}
        self.assertEqual(modes, {"rr", "connrate", "bulk", "idle", "udp", "wac"})

    def test_corruptedBytes(self) -> None:
        """A flipped byte, TCP or UDP, or bytes of another connection fail the run."""
        self.assertAllPassed("corrupt")
        self.assertAllPassed("crosstalk")

    def test_droppedBytes(self) -> None:
        """Swallowed bytes and an echo that never comes fail the run; lost datagrams are reported."""
        self.assertAllPassed("drop")
        self.assertAllPassed("silent")

    def test_truncatedEchoes(self) -> None:
        """A connection closed early, mid-echo or while idle, fails the run."""
        self.assertAllPassed("truncate")
        self.assertAllPassed("hangup")

    def test_duplicatedBytes(self) -> None:
        """Bytes or datagrams answered twice fail the run."""
        self.assertAllPassed("duplicate")

    def test_writeAndClose(self) -> None:
        """A daytime line that is too short or lacks its CRLF fails the run."""
        self.assertAllPassed("short")
        self.assertAllPassed("nocrlf")

    def test_exitStatus(self) -> None:
        """selftest.py exits 0 exactly when every check passed."""
        self.assertEqual(self.done.returncode, 0 if all(c["passed"] for c in self.checks) else 1)
