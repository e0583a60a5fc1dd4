"""
The load generator's arithmetic and checks, without sockets: exact percentiles, merging
workers' counts, the byte pattern and its verification, and the command line.
"""

from __future__ import annotations

import io
import json
import random
import time
from array import array
from collections import Counter
from fractions import Fraction
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from netd.bench.job import Job, Window, share, splitJobs
from netd.bench.options import BenchOptions, UsageError, checkLoopback, parseOptions
from netd.bench.output import ProgressLine, formatTable, writeReport
from netd.bench.pattern import PATLEN, PATTERN, datagram, matches, streamBase, streamBytes
from netd.bench.report import buildReport
from netd.bench.stats import PERCENTILES, nearestRank, summarize
from netd.bench.tally import Tally, errorKind, mergeTallies
from netd.bench.tcp import Stream
from netd.bench.udp import LOST, Udp
from netd.bench.workers import Outcome


def definitionPercentile(samples: list[int], p: Fraction) -> int:
    """Nearest rank, read literally: the smallest sample with at least p*n samples <= it."""
    n = len(samples)
    return min(x for x in samples if sum(1 for y in samples if y <= x) >= p * n)


class PercentileTests(SynchronousTestCase):
    def test_nearestRankDefinition(self) -> None:
        """Every percentile is the smallest sample with at least p*n samples at or below it."""
        rng = random.Random(7)
        for n in (1, 2, 3, 9, 10, 11, 99, 100, 101, 999, 1000, 1001, 1234):
            samples = [rng.randrange(1000) for _ in range(n)]
            ordered = sorted(samples)
            for _, permille in PERCENTILES:
                self.assertEqual(
                    nearestRank(ordered, permille),
                    definitionPercentile(samples, Fraction(permille, 1000)),
                    (n, permille),
                )

    def test_knownValues(self) -> None:
        """Of the samples 1..1000, p50 is 500, p99 is 990, p999 is 999; of one sample, itself."""
        ordered = list(range(1, 1001))
        self.assertEqual(nearestRank(ordered, 500), 500)
        self.assertEqual(nearestRank(ordered, 990), 990)
        self.assertEqual(nearestRank(ordered, 999), 999)
        self.assertEqual(nearestRank([42], 999), 42)

    def test_notAveraged(self) -> None:
        """A percentile is always one of the samples, never an interpolation between two."""
        self.assertEqual(nearestRank([10, 20], 500), 10)
        self.assertEqual(nearestRank([10, 20], 510), 20)

    def test_summaryInMicroseconds(self) -> None:
        """The summary turns nanoseconds into microseconds like loadgen.c's lat_us."""
        summary = summarize(array("q", [1000 * i for i in range(1, 101)]))
        self.assertEqual(summary["n"], 100)
        self.assertEqual(summary["p50"], 50.0)
        self.assertEqual(summary["p90"], 90.0)
        self.assertEqual(summary["p99"], 99.0)
        self.assertEqual(summary["p999"], 100.0)
        self.assertEqual(summary["max"], 100.0)
        self.assertEqual(summary["mean"], 50.5)

    def test_emptySummary(self) -> None:
        """No samples give zeros rather than an error."""
        self.assertEqual(summarize([])["p99"], 0.0)


class MergeTests(SynchronousTestCase):
    def test_percentilesOfMergedSamples(self) -> None:
        """Merged workers' percentiles are those of all samples together, not an average."""
        rng = random.Random(3)
        parts = [[rng.randrange(10**6) for _ in range(n)] for n in (1000, 10, 333)]
        tallies = [Tally(latency=array("q", part)) for part in parts]
        merged = mergeTallies(tallies)
        everything = sorted(x for part in parts for x in part)
        self.assertEqual(sorted(merged.latency), everything)
        self.assertEqual(summarize(merged.latency), summarize(everything))

    def test_countsAdded(self) -> None:
        """Counters and errors add up; setup time is the slowest worker's."""
        a = Tally(done=3, bytesSent=10, setupNs=5, errors=Counter(eof=1))
        b = Tally(done=4, bytesSent=1, setupNs=9, errors=Counter(eof=2, mismatch=1))
        merged = mergeTallies([a, b])
        self.assertEqual((merged.done, merged.bytesSent, merged.setupNs), (7, 11, 9))
        self.assertEqual(merged.errors, Counter(eof=3, mismatch=1))

    def test_errorKinds(self) -> None:
        """Socket errors are named by errno, an expired deadline is a timeout."""
        self.assertEqual(errorKind(ConnectionRefusedError(111, "refused")), "ECONNREFUSED")
        self.assertEqual(errorKind(TimeoutError()), "timeout")
        self.assertEqual(errorKind(RuntimeError()), "errno_other")

    def test_splitAcrossWorkers(self) -> None:
        """Connections are split evenly, numbered without gaps or overlaps."""
        jobs = splitJobs(BenchOptions(mode="rr", port=7, conns=11, procs=3))
        self.assertEqual([j.count for j in jobs], [4, 4, 3])
        self.assertEqual([j.first for j in jobs], [0, 4, 8])
        self.assertEqual([share(64, 3, i) for i in range(3)], [22, 21, 21])
        self.assertEqual([j.active for j in jobs], [True, False, False])


class FakeTransport:
    """Records what a stream writes; stands in for an asyncio transport."""

    def __init__(self) -> None:
        self.written = b""
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.written += data

    def sendto(self, data: bytes, addr: Any = None) -> None:
        self.written += data

    def abort(self) -> None:
        self.aborted = True

    def close(self) -> None:
        pass


def connected(requests: int = 2, size: int = 64) -> tuple[Stream, Tally, bytes]:
    """A stream on a fake transport that sent C{requests} requests of C{size} bytes."""
    tally = Tally()
    stream = Stream(streamBase(5), tally)
    stream.connection_made(FakeTransport())  # type: ignore[arg-type]
    for _ in range(requests):
        stream.request(size, 0)
    assert isinstance(stream.transport, FakeTransport)
    return stream, tally, stream.transport.written


class PatternTests(SynchronousTestCase):
    def test_sameAsLoadgen(self) -> None:
        """The pattern is loadgen.c's, byte for byte, and repeats every PATLEN bytes."""
        self.assertEqual(list(PATTERN[:10]), [0, 158, 60, 218, 120, 23, 181, 83, 241, 143])
        self.assertEqual(PATTERN[PATLEN : PATLEN + 100], PATTERN[:100])
        self.assertEqual(streamBytes(PATLEN - 3, 6), PATTERN[PATLEN - 3 : PATLEN + 3])

    def test_longRuns(self) -> None:
        """Stretches longer than the precomputed span are generated and checked correctly."""
        data = streamBytes(12345, 700_000)
        self.assertEqual(len(data), 700_000)
        self.assertTrue(matches(12345, data))
        self.assertFalse(matches(12346, data))

    def test_echoInAnyChunks(self) -> None:
        """A faithful echo verifies whatever the read sizes, and nothing is counted."""
        stream, tally, sent = connected()
        for at in range(0, len(sent), 7):
            stream.data_received(sent[at : at + 7])
        self.assertEqual((stream.rcvd, dict(tally.errors)), (len(sent), {}))
        self.assertFalse(stream.busy)

    def assertDetected(self, echo: bytes, kind: str) -> None:
        stream, tally, _ = connected()
        stream.data_received(echo)
        self.assertEqual(dict(tally.errors), {kind: 1})
        self.assertTrue(stream.dead)

    def test_corruptedByte(self) -> None:
        """A flipped byte is a mismatch."""
        _, _, sent = connected()
        self.assertDetected(sent[:40] + bytes([sent[40] ^ 1]) + sent[41:], "mismatch")

    def test_droppedByte(self) -> None:
        """A dropped byte shifts the rest of the stream and is a mismatch."""
        _, _, sent = connected()
        self.assertDetected(sent[:40] + sent[41:], "mismatch")

    def test_duplicatedByte(self) -> None:
        """A byte echoed twice is a mismatch, or excess bytes at the end of the stream."""
        _, _, sent = connected()
        self.assertDetected(sent[:40] + sent[39:-1], "mismatch")
        self.assertDetected(sent + sent[-1:], "excess_bytes")

    def test_reorderedBytes(self) -> None:
        """Two bytes swapped are a mismatch."""
        _, _, sent = connected()
        self.assertNotEqual(sent[40], sent[41])
        self.assertDetected(sent[:40] + sent[41:42] + sent[40:41] + sent[42:], "mismatch")

    def test_otherConnectionsBytes(self) -> None:
        """Bytes that belong to another connection's stream do not verify."""
        _, _, sent = connected()
        self.assertFalse(matches(streamBase(6), sent))

    def test_eofIsCounted(self) -> None:
        """A connection the server closes is an error unless the client was closing it."""
        stream, tally, _ = connected()
        stream.connection_lost(None)
        self.assertEqual(dict(tally.errors), {"eof": 1})
        stream, tally, _ = connected()
        stream.close()
        stream.connection_lost(None)
        self.assertEqual(dict(tally.errors), {})


def udpMode(size: int = 64) -> Udp:
    """A udp mode that has just sent datagrams 0..3 on a fake transport."""
    options = BenchOptions(mode="udp", port=7, size=size, window=4, timeout=0.2)
    udp = Udp(Job(options, 0, 0, 4, True, 32, 64), Tally())
    udp.transport = FakeTransport()  # type: ignore[assignment]
    udp.sending = True
    udp.fill(time.monotonic_ns())
    udp.sending = False
    return udp


class DatagramTests(SynchronousTestCase):
    def test_datagramLayout(self) -> None:
        """A datagram is its little-endian sequence number and then the pattern."""
        data = datagram(258, 20)
        self.assertEqual(data[:8], (258).to_bytes(8, "little"))
        self.assertEqual(data[8:], PATTERN[258 * 7919 % PATLEN :][:12])

    def test_echoVerified(self) -> None:
        """A faithful echo counts as echoed, once."""
        udp = udpMode()
        udp.received(datagram(2, 64))
        self.assertEqual((udp.tally.echoed, udp.out, dict(udp.tally.errors)), (1, 3, {}))
        udp.received(datagram(2, 64))
        self.assertEqual(dict(udp.tally.errors), {"unexpected_reply": 1})

    def test_corruptedDatagram(self) -> None:
        """A changed payload byte, a wrong size or a sequence never sent is an error."""
        udp = udpMode()
        bad = bytearray(datagram(1, 64))
        bad[30] ^= 0x80
        udp.received(bytes(bad))
        udp.received(datagram(1, 63))
        udp.received(datagram(9, 64))
        self.assertEqual(
            dict(udp.tally.errors), {"mismatch": 1, "bad_size": 1, "unexpected_reply": 1}
        )

    def test_lossAndLate(self) -> None:
        """A datagram unanswered past the loss timeout is lost; its echo after that is late."""
        udp = udpMode()
        udp.expire(udp.ring[3] + 200_000_001)
        self.assertEqual((udp.tally.lost, udp.out, udp.ring[0]), (4, 0, LOST))
        udp.received(datagram(0, 64))
        self.assertEqual((udp.tally.late, dict(udp.tally.errors)), (1, {}))


class OptionTests(SynchronousTestCase):
    def test_nonLoopbackRefused(self) -> None:
        """A target outside 127.0.0.0/8 and ::1, or a name, is refused with one line."""
        for host in ("10.0.0.1", "128.0.0.1", "::2", "localhost", "example.com", "0.0.0.0"):
            with self.assertRaises(UsageError) as caught:
                parseOptions(["--port", "7", "--host", host], haveUvloop=False)
            self.assertIn("loopback", str(caught.exception))
            self.assertNotIn("\n", str(caught.exception))

    def test_loopbackAccepted(self) -> None:
        """Any 127.0.0.0/8 address and ::1 are accepted."""
        for host in ("127.0.0.1", "127.3.2.1", "::1"):
            checkLoopback(host)
            self.assertEqual(parseOptions(["--port", "7", "--host", host]).host, host)

    def test_badValues(self) -> None:
        """Impossible values are usage errors naming the option."""
        for argv, option in [
            ([], "--port"),
            (["--port", "0"], "--port"),
            (["--port", "7", "--conns", "0"], "--conns"),
            (["--port", "7", "--mode", "udp", "--size", "4"], "--size"),
            (["--port", "7", "--duration", "0"], "--duration"),
            (["--port", "7", "--mode", "bulk", "--window", "100"], "--window"),
            (["--port", "7", "--mode", "ping"], "--mode"),
        ]:
            with self.assertRaises(UsageError) as caught:
                parseOptions(argv, haveUvloop=False)
            self.assertIn(option, str(caught.exception))

    def test_uvloopMissing(self) -> None:
        """Asking for uvloop without it installed is a usage error; by default asyncio runs."""
        with self.assertRaises(UsageError):
            parseOptions(["--port", "7", "--loop", "uvloop"], haveUvloop=False)
        self.assertEqual(parseOptions(["--port", "7"], haveUvloop=False).loop, "asyncio")
        self.assertEqual(parseOptions(["--port", "7"], haveUvloop=True).loop, "uvloop")

    def test_modeDefaults(self) -> None:
        """Defaults are loadgen.c's per mode, and one process up to 10 connections."""
        parse = lambda *a: parseOptions(["--port", "7", *a], haveUvloop=False)  # noqa: E731
        self.assertEqual(parse("--conns", "10").procs, 1)
        self.assertEqual(parse("--conns", "11").procs, 2)
        self.assertEqual(parse("--conns", "100", "--procs", "4").procs, 4)
        self.assertEqual(parse("--mode", "udp").window, 32)
        self.assertEqual(parse("--mode", "udp").timeout, 0.2)
        self.assertEqual(parse("--mode", "udp").procs, 1)
        self.assertEqual(parse("--mode", "bulk").window, 262144)
        self.assertEqual(parse("--mode", "connrate").srcs, 8)
        self.assertEqual(parse("--mode", "idle", "--idle", "30000").srcs, 2)
        self.assertEqual(parse().duration, 1.0)
        self.assertEqual(parse().warmup, 0.3)
        self.assertGreater(parse().timeLimit, parse().duration)


class OutputTests(SynchronousTestCase):
    def report(self, errors: Counter[str] | None = None) -> dict[str, Any]:
        options = BenchOptions(mode="rr", port=7, conns=2)
        tally = Tally(done=10, latency=array("q", [1000, 2000]), errors=errors or Counter())
        return buildReport(options, Outcome(tally, 2.0, 1.0))

    def test_jsonFieldsLikeLoadgen(self) -> None:
        """The JSON object is one line with loadgen.c's layout and field names."""
        stream = io.StringIO()
        writeReport(self.report(), True, stream)
        self.assertEqual(stream.getvalue().count("\n"), 1)
        report = json.loads(stream.getvalue())
        self.assertEqual(report["mode"], "rr")
        self.assertEqual(report["params"]["conns"], 2)
        self.assertEqual(report["results"]["rps"], 10.0)
        self.assertEqual(report["results"]["lat_us"]["p50"], 1.0)
        self.assertEqual(report["results"]["errors"], {"total": 0})
        self.assertIs(report["ok"], True)

    def test_anyErrorIsNotOk(self) -> None:
        """A single counted error makes the run not ok."""
        report = self.report(Counter(mismatch=1))
        self.assertIs(report["ok"], False)
        self.assertEqual(report["results"]["errors"], {"total": 1, "mismatch": 1})
        self.assertIn("mismatch 1", formatTable(report))

    def test_table(self) -> None:
        """The table names the rate with its unit and the latency percentiles."""
        table = formatTable(self.report())
        self.assertIn("req/s", table)
        self.assertIn("p999=", table)

    def test_progressOnItsOwnStream(self) -> None:
        """The progress line goes to its own stream only, and ends with a newline."""
        stream = io.StringIO()
        progress = ProgressLine(stream, "rr", 0.5, 2.0)
        progress.update(1.5, 5000, 0)
        progress.finish()
        self.assertIn("5000 req/s", stream.getvalue())
        self.assertTrue(stream.getvalue().endswith("\n"))

    def test_window(self) -> None:
        """Completions count from the end of warm-up up to, not including, the end."""
        window = Window(start=0, warm=10, end=20)
        self.assertEqual([window.contains(t) for t in (9, 10, 19, 20)], [False, True, True, False])
