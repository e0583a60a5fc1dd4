"""
Tests for L{netd.logs.format}: log events as JSON lines, written where twistd writes its log.
"""

from __future__ import annotations

import io
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime
from typing import Any, cast

from twisted.logger import Logger, LogLevel, LogPublisher
from twisted.python import log as legacyLog
from twisted.python import usage
from twisted.python.failure import Failure
from twisted.python.reflect import namedAny
from twisted.scripts._twistd_unix import ServerOptions, UnixAppLogger
from twisted.trial.unittest import SynchronousTestCase

from netd.logs import format as logformat
from netd.logs.format import (
    configuredObserver,
    eventAsJSON,
    jsonObserverFactory,
    stdoutJSONObserver,
    useLogFormat,
)

SIGUSR1 = getattr(signal, "SIGUSR1", None)
STARTUP_TIMEOUT = 20.0


def captured(emit: Any) -> list[dict[str, Any]]:
    """The events C{emit(logger)} publishes, as a real observer receives them."""
    publisher: Any = LogPublisher()
    events: list[dict[str, Any]] = []
    publisher.addObserver(events.append)
    emit(Logger(namespace="netd.test", observer=publisher))
    return events


def keepSIGUSR1(case: SynchronousTestCase) -> None:
    """Restore the SIGUSR1 handler after C{case}, since opening a log file may install one."""
    if SIGUSR1 is not None:
        case.addCleanup(signal.signal, SIGUSR1, signal.getsignal(SIGUSR1))


class EventAsJSONTests(SynchronousTestCase):
    """Tests for L{eventAsJSON}."""

    def test_normalEvent(self) -> None:
        """An event becomes its ISO UTC time, level, namespace and formatted message."""
        [event] = captured(
            lambda log: log.warn("{service} refused {peer}", service="echo", peer="192.0.2.7")
        )
        event["log_time"] = 1795271400.1239
        record = json.loads(eventAsJSON(event))
        self.assertEqual(record["time"], "2026-11-21T14:30:00.123Z")
        self.assertEqual(record["level"], "warn")
        self.assertEqual(record["namespace"], "netd.test")
        self.assertEqual(record["message"], "echo refused 192.0.2.7")

    def test_timeIsCurrentUTC(self) -> None:
        """A fresh event's time is now, in UTC, with milliseconds."""
        [event] = captured(lambda log: log.info("hello"))
        stamp = json.loads(eventAsJSON(event))["time"]
        self.assertRegex(stamp, r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        parsed = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        self.assertLess(abs(parsed.timestamp() - time.time()), 5)

    def test_levels(self) -> None:
        """Each Twisted level appears by its plain name."""
        for level in LogLevel.iterconstants():
            [event] = captured(lambda log, level=level: log.emit(level, "x"))
            self.assertEqual(json.loads(eventAsJSON(event))["level"], level.name)

    def test_extraFieldsKept(self) -> None:
        """An event's own fields appear as JSON fields of their own type; C{log_*} keys do not."""
        [event] = captured(
            lambda log: log.info(
                "{service} closed",
                service="echo",
                peer="192.0.2.7:4000",
                bytesIn=12,
                ok=True,
                ratio=0.5,
                reason=None,
            )
        )
        record = json.loads(eventAsJSON(event))
        self.assertEqual(record["service"], "echo")
        self.assertEqual(record["peer"], "192.0.2.7:4000")
        self.assertEqual(record["bytesIn"], 12)
        self.assertIs(record["ok"], True)
        self.assertEqual(record["ratio"], 0.5)
        self.assertIsNone(record["reason"])
        self.assertEqual([key for key in record if key.startswith("log_")], [])
        self.assertNotIn("log_logger", record)
        self.assertNotIn("log_source", record)

    def test_eventFieldsNeverReplaceCoreFields(self) -> None:
        """A field named like a core field does not override the time, level or message."""
        event = {
            "log_format": "real",
            "log_level": LogLevel.info,
            "time": "fake",
            "level": "fake",
            "message": "fake",
        }
        record = json.loads(eventAsJSON(event))
        self.assertEqual(record["message"], "real")
        self.assertEqual(record["level"], "info")
        self.assertNotEqual(record["time"], "fake")

    def test_nonSerialisableValueRepr(self) -> None:
        """A value that is not a JSON primitive is written as its repr."""

        class Peer:
            def __repr__(self) -> str:
                return "<Peer 192.0.2.7>"

        event = {"log_format": "x", "peer": Peer(), "sizes": [1, 2], "nan": float("nan")}
        record = json.loads(eventAsJSON(event))
        self.assertEqual(record["peer"], "<Peer 192.0.2.7>")
        self.assertEqual(record["sizes"], "[1, 2]")
        self.assertEqual(record["nan"], "nan")

    def test_brokenReprDoesNotRaise(self) -> None:
        """A value whose repr raises is named by its type and the event is still written."""

        class Broken:
            def __repr__(self) -> str:
                raise ValueError("no")

        record = json.loads(eventAsJSON({"log_format": "hello", "thing": Broken()}))
        self.assertEqual(record["message"], "hello")
        self.assertIn("Broken", record["thing"])

    def test_newlinesAndControlCharactersStayOnOneLine(self) -> None:
        """A message with newlines and control characters is one ASCII line that round-trips."""
        text = "line one\nline two\r\n\x00\x1b[31mred\x07\u2028é"
        [event] = captured(lambda log: log.info("{line}", line=text))
        line = eventAsJSON(event)
        self.assertEqual(line.splitlines(), [line])
        self.assertNotIn("\n", line)
        self.assertTrue(line.isascii())
        record = json.loads(line)
        self.assertEqual(record["message"], text)
        self.assertEqual(record["line"], text)

    def test_failureIncludesTraceback(self) -> None:
        """An event logged with a failure carries its traceback as one string."""

        def emit(log: Logger) -> None:
            try:
                raise ZeroDivisionError("division by zero")
            except ZeroDivisionError:
                log.failure("{service} crashed", service="echo")

        [event] = captured(emit)
        line = eventAsJSON(event)
        self.assertNotIn("\n", line)
        record = json.loads(line)
        self.assertEqual(record["level"], "critical")
        self.assertEqual(record["message"], "echo crashed")
        self.assertIn("Traceback", record["traceback"])
        self.assertIn("ZeroDivisionError", record["traceback"])

    def test_unprintableFailure(self) -> None:
        """A failure whose traceback cannot be produced still gives a line."""

        class BadFailure(Failure):
            def __init__(self) -> None:
                pass

            def getTraceback(self, *args: Any, **kwargs: Any) -> str:
                raise RuntimeError("gone")

        record = json.loads(eventAsJSON({"log_format": "x", "log_failure": BadFailure()}))
        self.assertIn("gone", record["traceback"])

    def test_legacyEvent(self) -> None:
        """A raw C{twisted.python.log.msg} event (a C{message} tuple, no C{log_format}) gives its text."""
        event = {"message": ("hello", 42), "isError": 0, "time": time.time(), "system": "-"}
        record = json.loads(eventAsJSON(event))
        self.assertEqual(record["message"], "hello 42")
        self.assertEqual(record["level"], "info")
        self.assertEqual(record["system"], "-")

    def test_legacyEventThroughTwisted(self) -> None:
        """A C{log.msg} event as Twisted delivers it to a new-style observer keeps its text and fields."""
        events: list[dict[str, Any]] = []
        publisher = legacyLog.LogPublisher(publishPublisher=LogPublisher(cast(Any, events.append)))
        publisher.msg("legacy", "words", peer="192.0.2.7")
        [event] = events
        record = json.loads(eventAsJSON(event))
        self.assertEqual(record["message"], "legacy words")
        self.assertEqual(record["namespace"], "log_legacy")
        self.assertEqual(record["peer"], "192.0.2.7")

    def test_legacyError(self) -> None:
        """A legacy error event without a level is critical, as Twisted classifies it."""
        record = json.loads(eventAsJSON({"message": ("bad",), "isError": 1}))
        self.assertEqual(record["level"], "critical")

    def test_emptyEvent(self) -> None:
        """An event with nothing in it still gives a valid line."""
        record = json.loads(eventAsJSON({}))
        self.assertEqual(record["message"], "")
        self.assertEqual(record["level"], "info")

    def test_neverRaises(self) -> None:
        """An event that cannot be read at all becomes a minimal error line, not an exception."""

        class Hostile(dict[str, Any]):
            def items(self) -> Any:
                raise RuntimeError("hostile")

        record = json.loads(eventAsJSON(Hostile(log_format="x")))
        self.assertEqual(record["level"], "error")
        self.assertIn("unrenderable", record["message"])


class ObserverFactoryTests(SynchronousTestCase):
    """Tests for L{jsonObserverFactory} and the twistd wiring around it."""

    def setUp(self) -> None:
        keepSIGUSR1(self)

    def emitTo(self, observer: Any, *messages: str) -> None:
        """Log each message to C{observer} through a real L{Logger}."""
        log = Logger(namespace="netd.test", observer=observer)
        for message in messages:
            log.info(message, service="echo")

    def readLines(self, path: str) -> list[dict[str, Any]]:
        """The JSON objects in C{path}, one per line."""
        with open(path, encoding="ascii") as f:
            return [json.loads(line) for line in f.read().splitlines()]

    def openFileObserver(self, factory: Any) -> Any:
        """Call C{factory}, closing the log file it opens after the test."""
        observer = factory()
        self.addCleanup(observer._outFile.close)
        return observer

    def test_pathWritesJSONLines(self) -> None:
        """With a log file, each event is appended to it as one JSON line."""
        path = self.mktemp()
        observer = self.openFileObserver(jsonObserverFactory(path, True))
        self.emitTo(observer, "first", "second\nhalf")
        records = self.readLines(path)
        self.assertEqual([r["message"] for r in records], ["first", "second\nhalf"])
        self.assertEqual(records[0]["service"], "echo")

    def test_pathUsesTwistdRotationDefaults(self) -> None:
        """The log file rotates at the same size and keeps as many old files as twistd's."""
        observer = self.openFileObserver(jsonObserverFactory(self.mktemp(), False))
        self.assertEqual(observer._outFile.rotateLength, 1000000)
        self.assertIsNone(observer._outFile.maxRotatedFiles)

    def test_pathInstallsSIGUSR1Rotation(self) -> None:
        """Opening a log file makes SIGUSR1 rotate it, as twistd does for its own."""
        if SIGUSR1 is None:
            raise self.skipTest("no SIGUSR1 on this platform")
        signal.signal(SIGUSR1, signal.SIG_DFL)
        self.openFileObserver(jsonObserverFactory(self.mktemp(), False))
        self.assertTrue(callable(signal.getsignal(SIGUSR1)))

    def test_existingSIGUSR1HandlerKept(self) -> None:
        """A SIGUSR1 handler someone else installed is left alone, as twistd leaves it."""
        if SIGUSR1 is None:
            raise self.skipTest("no SIGUSR1 on this platform")

        def mine(signum: int, frame: object) -> None:
            pass

        signal.signal(SIGUSR1, mine)
        self.openFileObserver(jsonObserverFactory(self.mktemp(), False))
        self.assertIs(signal.getsignal(SIGUSR1), mine)

    def test_dashIsStdout(self) -> None:
        """C{--logfile -} writes JSON lines to stdout."""
        stdout = io.StringIO()
        self.emitTo(jsonObserverFactory("-", True, stdout=stdout)(), "hello")
        [line] = stdout.getvalue().splitlines()
        self.assertEqual(json.loads(line)["message"], "hello")

    def test_foregroundWithoutLogfileIsStdout(self) -> None:
        """In the foreground without a log file, JSON lines go to stdout."""
        for logfile in (None, ""):
            stdout = io.StringIO()
            self.emitTo(jsonObserverFactory(logfile, True, stdout=stdout)(), "hello")
            self.assertEqual(json.loads(stdout.getvalue())["message"], "hello")

    def test_stdoutTakenAtCallTime(self) -> None:
        """Without an explicit stream, the observer writes to C{sys.stdout} as it is when twistd calls the factory."""
        factory = jsonObserverFactory("-", True)
        stdout = io.StringIO()
        self.patch(sys, "stdout", stdout)
        self.emitTo(factory(), "hello")
        self.assertEqual(json.loads(stdout.getvalue())["message"], "hello")

    def test_daemonCannotLogToStdout(self) -> None:
        """A daemon asked to log to stdout exits with twistd's message."""
        factory = jsonObserverFactory("-", False, stdout=io.StringIO())
        error = self.assertRaises(SystemExit, factory)
        self.assertIn("Daemons cannot log to stdout", str(error))

    def test_daemonWithoutLogfileUsesTwistdLog(self) -> None:
        """A daemon without a log file writes to C{twistd.log}, as twistd does."""
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        self.addCleanup(os.chdir, os.getcwd())
        os.chdir(directory)
        observer = self.openFileObserver(jsonObserverFactory(None, False))
        self.emitTo(observer, "hello")
        self.assertEqual(
            self.readLines(os.path.join(directory, "twistd.log"))[0]["message"], "hello"
        )

    def test_stdoutJSONObserver(self) -> None:
        """The zero-argument C{--logger} factory writes JSON lines to stdout."""
        stdout = io.StringIO()
        self.patch(sys, "stdout", stdout)
        self.emitTo(stdoutJSONObserver(), "hello")
        self.assertEqual(json.loads(stdout.getvalue())["message"], "hello")

    def test_useLogFormatJSONThroughTwistdOptions(self) -> None:
        """After L{useLogFormat}, twistd's own option processing and logger pick the JSON log file."""
        self.patch(logformat, "_configuredFactory", None)
        path = self.mktemp()
        config = ServerOptions()
        config["logfile"] = path
        config["nodaemon"] = True
        useLogFormat(config, "json")
        config.postOptions()  # twistd's: runs after the subcommand's, resolving "logger"
        self.assertIs(config["logger"], configuredObserver)
        observer = self.openFileObserver(UnixAppLogger(config)._observerFactory)
        self.emitTo(observer, "hello")
        self.assertEqual(self.readLines(path)[0]["message"], "hello")

    def test_useLogFormatJSONSetsDottedName(self) -> None:
        """L{useLogFormat} gives twistd a dotted name resolving to the configured factory."""
        self.patch(logformat, "_configuredFactory", None)
        config: dict[str, Any] = {"logfile": None, "nodaemon": True, "logger": None}
        useLogFormat(config, "json")
        self.assertIs(namedAny(config["logger"]), configuredObserver)

    def test_useLogFormatJSONConflicts(self) -> None:
        """Asking for JSON together with twistd's C{--logger} or C{--syslog} is a usage error."""
        self.patch(logformat, "_configuredFactory", None)
        self.assertRaises(
            usage.UsageError, lambda c: useLogFormat(c, "json"), {"logger": "some.other.observer"}
        )
        self.assertRaises(usage.UsageError, lambda c: useLogFormat(c, "json"), {"syslog": True})

    def test_useTextLoggingThroughTwistdOptions(self) -> None:
        """With the text format, twistd's log file gets netd's text lines, as twistd writes them."""
        self.patch(logformat, "_configuredFactory", None)
        path = self.mktemp()
        config = ServerOptions()
        config["logfile"] = path
        config["nodaemon"] = True
        useLogFormat(config, "text")
        config.postOptions()
        self.assertIs(config["logger"], configuredObserver)
        observer = self.openFileObserver(UnixAppLogger(config)._observerFactory)
        self.emitTo(observer, "hello")
        with open(path) as f:
            self.assertRegex(f.read(), r"^\S+ \[netd.test#info\] hello\n$")

    def test_useTextLoggingLeavesTwistdsChoice(self) -> None:
        """With the text format, twistd's own C{--logger} or C{--syslog} stays in charge."""
        self.patch(logformat, "_configuredFactory", None)
        for config in ({"logger": "some.other.observer"}, {"syslog": True, "logger": None}):
            before = dict(config)
            useLogFormat(config, "text")
            self.assertEqual(config, before)
        self.assertIsNone(logformat._configuredFactory)

    def test_configuredWithoutUse(self) -> None:
        """Naming the configured factory without L{useLogFormat} fails clearly."""
        self.patch(logformat, "_configuredFactory", None)
        self.assertRaises(RuntimeError, configuredObserver)


class LineReader:
    """Reads a child's stream on a thread, so a test can wait for a line with a timeout."""

    def __init__(self, stream: Any) -> None:
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.thread.start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def next(self, deadline: float) -> str | None:
        """The next line, or C{None} at end of stream; fails the wait past C{deadline}."""
        return self.lines.get(timeout=max(0.0, deadline - time.monotonic()))


class TwistdProcessTests(SynchronousTestCase):
    """The JSON log from a real C{twistd -n netd} process."""

    def start(self, code: str, args: list[str]) -> subprocess.Popen[str]:
        """Start C{python -c code args...}, always killed after the test."""
        stderrPath = os.path.abspath(self.mktemp())
        stderr = open(stderrPath, "w")
        self.addCleanup(stderr.close)
        process = subprocess.Popen(
            [sys.executable, "-c", code, *args],
            stdout=subprocess.PIPE,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            text=True,
        )

        def reap() -> None:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)
            assert process.stdout is not None
            process.stdout.close()

        self.addCleanup(reap)
        self.stderrPath = stderrPath
        return process

    def stderrText(self) -> str:
        """What the child wrote to stderr, for failure messages."""
        with open(self.stderrPath) as f:
            return f.read()

    def stop(self, process: subprocess.Popen[str]) -> None:
        """SIGTERM, then a bounded wait for twistd's exit (it re-raises SIGTERM on itself)."""
        process.send_signal(signal.SIGTERM)
        self.assertIn(process.wait(timeout=10), (0, -signal.SIGTERM), self.stderrText())

    def test_stdoutIsJSONLines(self) -> None:
        """C{twistd -n --logger netd.logs.format.stdoutJSONObserver netd ...} logs only JSON lines on stdout."""
        process = self.start(
            "from twisted.scripts.twistd import run; run()",
            [
                "-n",
                "--pidfile=",
                "--logger",
                "netd.logs.format.stdoutJSONObserver",
                "netd",
                "--proto",
                "echo",
                "--listen",
                "tcp:0:interface=127.0.0.1",
            ],
        )
        assert process.stdout is not None
        reader = LineReader(process.stdout)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        records: list[dict[str, Any]] = []
        while not any("listening on" in r["message"] for r in records):
            try:
                line = reader.next(deadline)
            except queue.Empty:
                self.fail(
                    f"no 'listening on' line in time; stdout {records}, stderr {self.stderrText()}"
                )
            if line is None:
                self.fail(f"netd exited early; stdout {records}, stderr {self.stderrText()}")
            records.append(json.loads(line))
        for record in records:
            self.assertIsInstance(record["message"], str)
            self.assertIn(record["level"], {"debug", "info", "warn", "error", "critical"})
        [listening] = [r for r in records if "listening on" in r["message"]]
        self.assertEqual(listening["namespace"], "netd.serving.listener.Listener")
        self.assertEqual(listening["service"], "echo")

        # An echo reply means the reactor runs, so its SIGTERM handler is in place.
        host, port = listening["address"].rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=10) as client:
            client.sendall(b"ping")
            self.assertEqual(client.recv(4), b"ping")

        self.stop(process)
        rest = []
        while (line := reader.next(time.monotonic() + 10)) is not None:
            rest.append(json.loads(line))
        self.assertIn("Server Shut Down.", [r["message"] for r in rest])

    def test_logFileRotatesOnSIGUSR1(self) -> None:
        """With C{--logfile}, JSON lines go to the file, and SIGUSR1 rotates it as twistd's text log."""
        if SIGUSR1 is None:
            raise self.skipTest("no SIGUSR1 on this platform")
        path = os.path.abspath(self.mktemp())
        process = self.start(
            "from netd.logs.format import useLogFormat; from twisted.scripts.twistd import run; "
            f"useLogFormat({{'logfile': {path!r}, 'nodaemon': True}}, 'json'); run()",
            [
                "-n",
                "--pidfile=",
                "--logger",
                "netd.logs.format.configuredObserver",
                "netd",
                "--proto",
                "echo",
                "--listen",
                "tcp:0:interface=127.0.0.1",
            ],
        )

        def records(name: str) -> list[dict[str, Any]]:
            try:
                with open(name) as f:
                    return [json.loads(line) for line in f.read().splitlines()]
            except FileNotFoundError:
                return []

        def waitFor(condition: Any, what: str) -> None:
            deadline = time.monotonic() + STARTUP_TIMEOUT
            while not condition():
                if process.poll() is not None or time.monotonic() > deadline:
                    self.fail(f"{what}: log {records(path)}, stderr {self.stderrText()}")
                time.sleep(0.05)

        waitFor(
            lambda: any("listening on" in r["message"] for r in records(path)), "no 'listening on'"
        )
        process.send_signal(SIGUSR1)
        waitFor(lambda: os.path.exists(path + ".1"), "SIGUSR1 did not rotate the log")
        self.stop(process)

        self.assertTrue(any("listening on" in r["message"] for r in records(path + ".1")))
        self.assertIn("Server Shut Down.", [r["message"] for r in records(path)])
        assert process.stdout is not None
        self.assertEqual(process.stdout.read(), "")
