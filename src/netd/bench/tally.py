"""
What one worker process counted, and how the parent adds the workers up.

A L{Tally} is plain data (it crosses the process boundary by pickling): counters that add
up, latency samples that concatenate, and errors by kind.  Error kinds carry
C{loadgen.c}'s names (C{mismatch}, C{eof}, C{timeout}, ...; socket errors by their errno
name such as C{ECONNREFUSED}) so the two generators' C{errors} objects compare key by key.
"""

from __future__ import annotations

import errno
from array import array
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, fields

from netd.bench.stats import mergeSamples

__all__ = ["Tally", "errorKind", "mergeTallies"]


def errorKind(failure: BaseException) -> str:
    """
    The C{errors} key for a failed socket operation.

    A deadline that ran out (C{TimeoutError} without an errno, as C{asyncio.timeout}
    raises it) is C{timeout}; a socket error is its errno name; anything else is
    C{errno_other}, C{loadgen.c}'s name for an errno it cannot name.
    """
    code = getattr(failure, "errno", None)
    if code is None:
        return "timeout" if isinstance(failure, TimeoutError) else "errno_other"
    return errno.errorcode.get(code, "errno_other")


def _samples() -> array[int]:
    return array("q")


@dataclass
class Tally:
    """
    One worker's counts; the field comments name the C{loadgen.c} result they feed.

    Latencies are nanoseconds, one per request (or datagram, or connection) completed
    inside the measured window.
    """

    done: int = 0  # completions in the window: rps, conns_per_s
    bytesWindow: int = 0  # bytes echoed in the window: MBps
    bytesSent: int = 0  # bytes_sent
    bytesEchoed: int = 0  # bytes_echoed (verified)
    established: int = 0  # connections opened and verified by a ping
    attempted: int = 0  # connections tried while establishing (failed = attempted - established)
    wanted: int = 0  # connections the worker was asked to establish (not_attempted)
    opened: int = 0  # connrate: connections started
    alive: int = 0  # idle: alive_after
    sent: int = 0  # udp: datagrams sent
    echoed: int = 0  # udp: datagrams echoed in time
    lost: int = 0  # udp: not echoed within the loss timeout
    late: int = 0  # udp: echoed after the loss timeout
    setupNs: int = 0  # setup_s: the slowest worker's
    latency: array[int] = field(default_factory=_samples)
    exchange: array[int] = field(default_factory=_samples)  # connrate: connect() to last byte
    errors: Counter[str] = field(default_factory=Counter)

    def error(self, kind: str, count: int = 1) -> None:
        """Count C{count} errors of kind C{kind} (any error makes the run C{ok: false})."""
        if count:
            self.errors[kind] += count

    def failure(self, failure: BaseException) -> None:
        """Count a failed socket operation under its errno name (see L{errorKind})."""
        self.error(errorKind(failure))


_MAXED = {"setupNs"}
_SAMPLES = {"latency", "exchange"}


def mergeTallies(tallies: Iterable[Tally]) -> Tally:
    """
    The run's tally: counters summed, samples concatenated (so percentiles stay exact),
    errors added by kind, setup time the slowest worker's (they set up in parallel).
    """
    parts = list(tallies)
    merged = Tally()
    for spec in fields(Tally):
        values = [getattr(part, spec.name) for part in parts]
        if spec.name in _SAMPLES:
            setattr(merged, spec.name, mergeSamples(values))
        elif spec.name == "errors":
            merged.errors = sum(values, Counter())
        elif spec.name in _MAXED:
            setattr(merged, spec.name, max(values, default=0))
        else:
            setattr(merged, spec.name, sum(values))
    return merged
