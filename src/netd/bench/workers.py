"""
Worker processes: the parent splits a run, starts the windows together, merges counts.

Several processes so that the generator is not the bottleneck: each worker runs its own
event loop over its share of the connections and keeps its own raw samples.  Workers are
started with the C{spawn} context (a fresh interpreter: nothing inherited from a parent
that may have threads or an event loop).  The conversation over each worker's pipe is:
worker C{("ready", None)} after set-up; parent C{("start", wallClockNs)} or
C{("abort", None)}; worker C{("result", Tally)} or, at any point, C{("error", text)}.
While the window runs, each worker posts its running counts to a shared array that the
parent reads for the progress line.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import resource
import signal
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

from netd.bench.job import Job, Window, sleepUntil, splitJobs
from netd.bench.loops import newEventLoop
from netd.bench.modes import Mode, makeMode
from netd.bench.options import BenchOptions
from netd.bench.tally import Tally, mergeTallies

__all__ = ["Outcome", "Watcher", "runJobs", "workerMain"]

START_MARGIN_NS = 50_000_000  # from "all ready" to the common start: time for the message
PUBLISH_SECONDS = 0.2
TICK_SECONDS = 1.0

# elapsed seconds since the load started, completions and bytes counted in the window so far
Watcher = Callable[[float, int, int], None]


@dataclass
class Outcome:
    """
    A finished run: the merged tally, how long it took, the CPU it used, and problems
    (worker failures, the time limit) to show besides the counts.
    """

    tally: Tally
    wallSeconds: float
    cpuSeconds: float
    problems: list[str] = field(default_factory=list)


# ---- the worker side ------------------------------------------------------------------


def workerMain(job: Job, channel: Connection, board: Any) -> None:
    """
    A worker process's entry point: set up, report ready, wait for the start time, measure,
    send the tally (or the failure).

    The loop is not running while the worker waits for the start message: the connections
    just sit, and the pipe stays a plain blocking pipe (uvloop would make any descriptor it
    watches non-blocking, and a large result would then fail to send).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    _raiseFileLimit(job.count + 1024)
    loop = newEventLoop(job.options.loop)
    tally = Tally()
    try:
        mode = makeMode(job, tally)
        loop.run_until_complete(mode.setup())
        channel.send(("ready", None))
        try:
            kind, startWallNs = channel.recv()
        except EOFError:  # the parent is gone
            return
        if kind == "start":
            loop.run_until_complete(_measure(job, mode, tally, startWallNs, board))
    except Exception:
        channel.send(("error", f"worker {job.index}: {traceback.format_exc()}"))
        return
    finally:
        loop.close()
    channel.send(("result", tally))


def _raiseFileLimit(need: int) -> None:
    """Up to the hard limit (raising that needs CAP_SYS_RESOURCE); failing shows as EMFILE."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        wanted = need if hard == resource.RLIM_INFINITY else min(need, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


async def _measure(job: Job, mode: Mode, tally: Tally, startWallNs: int, board: Any) -> None:
    """Wait for the common start, run the window, post running counts for the progress line."""
    options = job.options
    window = Window.fromWallClock(startWallNs, options.warmup, options.duration)
    await sleepUntil(window.start)
    publisher = asyncio.ensure_future(_publish(board, job.index, tally))
    try:
        await mode.measure(window)
    finally:
        publisher.cancel()
    _post(board, job.index, tally)


def _post(board: Any, index: int, tally: Tally) -> None:
    board[2 * index] = tally.done
    board[2 * index + 1] = tally.bytesWindow


async def _publish(board: Any, index: int, tally: Tally) -> None:
    while True:
        _post(board, index, tally)
        await asyncio.sleep(PUBLISH_SECONDS)


# ---- the parent side ------------------------------------------------------------------


class _Workers:
    """The parent's view of the worker processes and their pipes."""

    def __init__(self, jobs: list[Job]) -> None:
        context = multiprocessing.get_context("spawn")
        self.board: Any = context.RawArray("q", 2 * len(jobs))
        self.channels: dict[Connection, int] = {}
        self.processes = []
        for job in jobs:
            mine, theirs = context.Pipe()
            process = context.Process(
                target=workerMain, args=(job, theirs, self.board), name=f"netd-bench-{job.index}"
            )
            process.start()
            theirs.close()
            self.channels[mine] = job.index
            self.processes.append(process)
        self.everyChannel = list(self.channels)
        self.problems: list[str] = []

    def collect(
        self, kind: str, deadline: float, tick: Callable[[], None] | None = None
    ) -> dict[int, Any]:
        """
        Each worker's next message of kind C{kind}, until C{deadline} (monotonic seconds);
        workers that fail or send nothing in time are left out (and named in C{problems}).
        """
        waiting = dict(self.channels)
        got: dict[int, Any] = {}
        while waiting:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.problems.append(
                    f"time limit reached waiting for {kind} from {len(waiting)} worker(s)"
                )
                break
            ready = wait(list(waiting), timeout=min(remaining, TICK_SECONDS))
            if not ready and tick is not None:
                tick()
            for channel in ready:
                assert isinstance(channel, Connection)
                index = waiting.pop(channel)
                try:
                    message, value = channel.recv()
                except EOFError:
                    self.problems.append(f"worker {index} exited without a result")
                    del self.channels[channel]
                    continue
                if message == kind:
                    got[index] = value
                else:  # an error: that worker has finished
                    self.problems.append(str(value))
                    del self.channels[channel]
        return got

    def send(self, message: tuple[str, Any]) -> None:
        for channel in self.channels:
            try:
                channel.send(message)
            except OSError:
                pass  # that worker is gone: collect() reports it

    def close(self) -> None:
        """Reap every worker, terminating those still running (only ours, by handle)."""
        for process in self.processes:
            process.join(timeout=1)
            if process.is_alive():
                process.terminate()
                process.join()
        for channel in self.everyChannel:
            channel.close()


def runJobs(options: BenchOptions, watch: Watcher | None = None) -> Outcome:
    """
    Run C{options} over its worker processes and merge what they counted.

    @param watch: called about once a second while the load runs (progress line).
    """
    startedAt = time.monotonic()
    deadline = startedAt + options.timeLimit
    cpuBefore = _cpuSeconds()
    workers = _Workers(splitJobs(options))
    try:
        ready = workers.collect("ready", deadline)
        startWallNs = time.time_ns() + START_MARGIN_NS
        workers.send(("start" if len(ready) == len(workers.processes) else "abort", startWallNs))
        loadStart = time.monotonic() + START_MARGIN_NS / 1e9

        def tick() -> None:
            if watch is not None:
                board = workers.board
                watch(time.monotonic() - loadStart, sum(board[0::2]), sum(board[1::2]))

        results = workers.collect("result", deadline, tick)
    finally:
        workers.close()
    tally = mergeTallies(results.values())
    if workers.problems:
        tally.error("worker_failed", len(workers.problems))
    return Outcome(
        tally=tally,
        wallSeconds=time.monotonic() - startedAt,
        cpuSeconds=_cpuSeconds() - cpuBefore,
        problems=workers.problems,
    )


def _cpuSeconds() -> float:
    """This process's CPU time plus its reaped children's: the generator's whole cost."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total
