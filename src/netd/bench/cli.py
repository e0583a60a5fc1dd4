"""
C{netd bench ARGS}: parse, run the workers, write the report.

Exit status: 0 when the run counted no error, 1 when it did (C{ok: false}: the figures
are not to be trusted), 2 for a usage error.
"""

from __future__ import annotations

import sys

from netd.bench.options import BenchOptions, UsageError, parseOptions
from netd.bench.output import ProgressLine, writeError, writeReport
from netd.bench.report import buildReport
from netd.bench.workers import runJobs

__all__ = ["main"]


def _progress(options: BenchOptions) -> ProgressLine | None:
    """A progress line when asked for, or when someone is watching stderr."""
    if options.progress or sys.stderr.isatty():
        return ProgressLine(sys.stderr, options.mode, options.warmup, options.duration)
    return None


def main(argv: list[str]) -> int:
    """Run C{netd bench} with C{argv} (without the program name); the exit status."""
    try:
        options = parseOptions(argv)
    except UsageError as e:
        writeError(str(e), sys.stderr)
        return 2
    except SystemExit as e:  # --help
        return e.code if isinstance(e.code, int) else 0
    progress = _progress(options)
    try:
        outcome = runJobs(options, progress.update if progress is not None else None)
    except KeyboardInterrupt:
        writeError("interrupted", sys.stderr)
        return 1
    finally:
        if progress is not None:
            progress.finish()
    for problem in outcome.problems:
        writeError(problem, sys.stderr)
    report = buildReport(options, outcome)
    writeReport(report, options.json, sys.stdout)
    return 0 if report["ok"] else 1
