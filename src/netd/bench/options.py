"""
The command line of C{netd bench}, parsed into one frozen L{BenchOptions}.

Defaults that depend on the mode (window, source addresses, per-operation timeout) are
C{loadgen.c}'s, resolved here once so every worker sees the same values and the JSON
C{params} show what actually ran.  Mistakes raise L{UsageError} with one line naming the
bad value; above all, a target outside loopback is refused: this tool floods its target.
"""

from __future__ import annotations

import argparse
import ipaddress
from dataclasses import dataclass, replace
from typing import NoReturn

from netd.bench.loops import LOOPS, chooseLoopName, uvloopAvailable
from netd.bench.pattern import CHUNK

__all__ = [
    "MODES",
    "BenchOptions",
    "UsageError",
    "checkLoopback",
    "defaultProcs",
    "parseOptions",
    "timeLimit",
]

MODES = ("rr", "bulk", "connrate", "udp", "idle")
DRAIN_SECONDS = 2.0  # how long outstanding echoes are awaited at the end (loadgen.c: 2 s)
# Workers are spawned (a fresh interpreter each) before the window: allow for that in the
# overall time limit, on a loaded 2-core machine.
SPAWN_SECONDS = 15.0


class UsageError(Exception):
    """The command line is wrong; the message is one line for the user."""


@dataclass(frozen=True)
class BenchOptions:
    """
    One run, every default resolved.

    @ivar window: bulk: bytes not yet echoed per connection; udp: datagrams in flight.
    @ivar srcs: source addresses 127.0.0.1 .. 127.0.0.C{srcs} used in turn.
    @ivar timeout: per operation (connect + ping; connrate: a whole exchange; udp: the loss
        timeout), as C{loadgen.c}'s C{--timeout}.
    @ivar timeLimit: the whole run, workers' start-up included; beyond it workers are
        terminated and the run fails.
    """

    mode: str = "rr"
    host: str = "127.0.0.1"
    port: int = 0
    conns: int = 1
    size: int = 64
    duration: float = 1.0
    warmup: float = 0.3
    idle: int = 1000
    window: int = 0
    srcs: int = 1
    conc: int = 32
    maxFail: int = 64
    timeout: float = 10.0
    procs: int = 1
    loop: str = "asyncio"
    json: bool = False
    progress: bool = False
    timeLimit: float = 60.0

    @property
    def setupLimit(self) -> float:
        """Seconds allowed to establish the connections before the window (loadgen.c's)."""
        return {"rr": 30.0, "bulk": 30.0, "idle": 60.0}.get(self.mode, 0.0)


class _Parser(argparse.ArgumentParser):
    """An argument parser that raises L{UsageError} instead of exiting the process."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _parser() -> _Parser:
    parser = _Parser(
        prog="netd bench",
        description="Load an echo server on loopback and verify every echoed byte.",
        epilog="Exit status: 0 ok, 1 errors were counted (ok: false), 2 usage error.",
    )
    add = parser.add_argument
    add("--mode", choices=MODES, default="rr", help="load pattern (default rr)")
    add("--host", default="127.0.0.1", help="target, 127.0.0.0/8 or ::1 (default 127.0.0.1)")
    add("--port", type=int, required=True, help="target port")
    add("--conns", type=int, default=1, help="rr/bulk connections, connrate slots (default 1)")
    add("--size", type=int, default=64, help="request or datagram bytes (default 64)")
    add("--duration", type=float, default=1.0, help="measured window, seconds (default 1)")
    add("--warmup", type=float, default=0.3, help="load before the window, seconds (default 0.3)")
    add("--idle", type=int, default=1000, help="idle mode: connections held idle (default 1000)")
    add("--window", type=int, default=0, help="bulk: unechoed bytes per connection (262144); "
        "udp: datagrams in flight (32)")  # fmt: skip
    add("--srcs", type=int, default=0, help="source addresses 127.0.0.1..N (default: "
        "connrate 8, idle 1 + N/25000, else 1)")  # fmt: skip
    add("--conc", type=int, default=32, help="connections being established at once (32)")
    add("--max-fail", type=int, default=64, help="give up establishing after N failures (64)")
    add("--timeout", type=float, default=None, help="per-operation seconds (default: udp 0.2 "
        "(the loss timeout), connrate 5, else 10)")  # fmt: skip
    add("--procs", type=int, default=None, help="worker processes (default: 1 when the mode "
        "drives at most 10 connections, else 2; udp 1)")  # fmt: skip
    add("--loop", choices=LOOPS, default=None, help="event loop (default uvloop if installed)")
    add("--time-limit", type=float, default=None, help="hard limit for the whole run, seconds")
    add("--json", action="store_true", help="print one JSON object instead of the table")
    add("--progress", action="store_true", help="progress line on stderr even if not a tty")
    return parser


def checkLoopback(host: str) -> None:
    """
    Refuse any target but a loopback address literal.

    Names are refused too (as C{loadgen.c} does): "localhost" may resolve elsewhere.
    @raise UsageError: C{host} is not in 127.0.0.0/8 and is not ::1.
    """
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise UsageError(f"--host must be a loopback address (127.0.0.0/8 or ::1), not {host!r}")


def defaultProcs(mode: str, conns: int, idle: int) -> int:
    """
    Worker processes when C{--procs} is not given: 1 when the mode drives at most 10
    connections (one Python process keeps up with those), else 2 (this machine's CPUs:
    pin the server to one and the generator to the other).  UDP uses one socket: 1.
    """
    if mode == "udp":
        return 1
    return 1 if (idle if mode == "idle" else conns) <= 10 else 2


def timeLimit(options: BenchOptions) -> float:
    """
    The default hard limit: spawning, establishing, warm-up, window, drain, and for idle
    the final ping of every connection, each at its own bound, plus the loss timeout for udp.
    """
    tail = options.timeout if options.mode in ("idle", "udp") else 0.0
    return (
        SPAWN_SECONDS
        + options.setupLimit
        + options.warmup
        + options.duration
        + DRAIN_SECONDS
        + tail
    )


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise UsageError(message)


def _validate(ns: argparse.Namespace) -> None:
    _require(0 < ns.port < 65536, f"--port must be 1..65535, not {ns.port}")
    _require(ns.conns >= 1, f"--conns must be at least 1, not {ns.conns}")
    _require(ns.size >= 1, f"--size must be at least 1, not {ns.size}")
    if ns.mode == "udp":
        _require(8 <= ns.size <= 65000, f"udp --size must be 8..65000, not {ns.size}")
    _require(ns.duration > 0, f"--duration must be positive, not {ns.duration}")
    _require(ns.warmup >= 0, f"--warmup must not be negative, not {ns.warmup}")
    _require(ns.idle >= 0, f"--idle must not be negative, not {ns.idle}")
    _require(ns.window >= 0, f"--window must not be negative, not {ns.window}")
    if ns.mode == "bulk" and ns.window:
        _require(ns.window >= CHUNK, f"bulk --window must be at least {CHUNK}, not {ns.window}")
    _require(0 <= ns.srcs <= 254, f"--srcs must be 0..254, not {ns.srcs}")
    _require(ns.conc >= 1, f"--conc must be at least 1, not {ns.conc}")
    _require(ns.max_fail >= 1, f"--max-fail must be at least 1, not {ns.max_fail}")
    _require(ns.timeout is None or ns.timeout > 0, f"--timeout must be positive, not {ns.timeout}")
    _require(ns.procs is None or ns.procs >= 1, f"--procs must be at least 1, not {ns.procs}")
    _require(ns.time_limit is None or ns.time_limit > 0, "--time-limit must be positive")


def _defaultSrcs(mode: str, idle: int, host: str) -> int:
    """loadgen.c's: one address's ~28k ephemeral ports are not enough for connrate."""
    if ":" in host:
        return 1  # source rotation is IPv4 only, as in loadgen.c
    return 8 if mode == "connrate" else 1 + idle // 25000 if mode == "idle" else 1


def parseOptions(argv: list[str], haveUvloop: bool | None = None) -> BenchOptions:
    """
    Parse and validate C{netd bench} arguments.

    @param haveUvloop: whether uvloop can be imported (default: look).
    @raise UsageError: for any bad argument, a non-loopback target first among them.
    @raise SystemExit: after C{--help} printed the usage.
    """
    ns = _parser().parse_args(argv)
    checkLoopback(ns.host)
    _validate(ns)
    mode = ns.mode
    window = ns.window or {"udp": 32, "bulk": 4 * CHUNK}.get(mode, 0)
    # what is split between workers: none may be left with nothing to do
    units = {"udp": window, "idle": max(1, ns.idle)}.get(mode, ns.conns)
    procs = min(ns.procs or defaultProcs(mode, ns.conns, ns.idle), units)
    try:
        loop = chooseLoopName(ns.loop, uvloopAvailable() if haveUvloop is None else haveUvloop)
    except LookupError as e:
        raise UsageError(str(e)) from None
    options = BenchOptions(
        mode=mode,
        host=ns.host,
        port=ns.port,
        conns=ns.conns,
        size=ns.size,
        duration=ns.duration,
        warmup=ns.warmup,
        idle=ns.idle,
        window=window,
        srcs=ns.srcs or _defaultSrcs(mode, ns.idle, ns.host),
        conc=ns.conc,
        maxFail=ns.max_fail,
        timeout=ns.timeout or {"udp": 0.2, "connrate": 5.0}.get(mode, 10.0),
        procs=procs,
        loop=loop,
        json=ns.json,
        progress=ns.progress,
    )
    return replace(options, timeLimit=ns.time_limit or timeLimit(options))
