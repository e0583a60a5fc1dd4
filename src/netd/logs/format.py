"""
netd's log output: twistd's classic text lines, rendered cheaply (L{netd.logs.text}), or
every log event as one JSON object per line.

Log collectors (journald, Loki, Elasticsearch) index structured fields far better than
they parse Twisted's classic C{"timestamp [system] text"} lines, and netd's events
already carry the structure (C{service}, C{peer}, C{bytesIn}, C{reason}).  This module
turns an event into one line of JSON (L{eventAsJSON}) and plugs that into twistd as its
log observer, written exactly where twistd would have written its text log: stdout in
the foreground without C{--logfile} (or with C{--logfile -}), otherwise the named file,
rotated on C{SIGUSR1} just as twistd rotates its own.

twistd takes a custom observer from C{ServerOptions["logger"]}, and when one is given it
skips all of its own log file handling; L{observerFactory} therefore reproduces that
handling (C{UnixAppLogger._getLogObserver}) for both formats.  twistd's own C{postOptions} passes that key
through L{namedAny} I{after} a subcommand's options are parsed, so the key must hold a
dotted name, not a callable: L{useLogFormat} records the factory here and points the
key at the zero-argument L{configuredObserver}.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, MutableMapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, TextIO, cast

from twisted.logger import FileLogObserver, ILogObserver, LoggingFile
from twisted.python import usage
from twisted.python.logfile import LogFile
from twisted.python.reflect import safe_repr, safe_str

from netd.logs.text import formatMessage, textFileLogObserver

__all__ = [
    "configuredObserver",
    "eventAsJSON",
    "jsonFileLogObserver",
    "jsonObserverFactory",
    "observerFactory",
    "stdoutJSONObserver",
    "useLogFormat",
]

#: The fields every line has; an event key of the same name never overrides them.
_RESERVED = frozenset({"time", "level", "namespace", "message", "traceback"})

#: Dotted name of L{configuredObserver}, the value L{useLogFormat} gives twistd.
_CONFIGURED_NAME = f"{__name__}.configuredObserver"

#: The factory L{useLogFormat} recorded for L{configuredObserver}; one per process,
#: as there is one twistd per process.
_configuredFactory: Callable[[], ILogObserver] | None = None


def _isoTime(timestamp: object) -> str:
    """
    An event time as ISO 8601 UTC with milliseconds (C{2026-11-21T14:30:00.123Z}),
    the form every collector parses without configuration.

    @param timestamp: seconds since the epoch; anything else (a missing or corrupt
        C{log_time}) is replaced by the current time rather than losing the event.
    """
    if isinstance(timestamp, bool) or not isinstance(timestamp, int | float):
        timestamp = time.time()
    if not math.isfinite(timestamp):
        timestamp = time.time()
    # Truncate to whole milliseconds first, so .9996 never rounds up to ".1000".
    millis = int(timestamp * 1000)
    seconds, ms = divmod(millis, 1000)
    return f"{_utcSecond(seconds)}.{ms:03d}Z"


@lru_cache(maxsize=4)
def _utcSecond(seconds: int) -> str:
    """
    A whole second as ISO 8601 UTC without the zone letter; cached, because every event
    of the same second shares it and C{strftime} costs more than the rest of the line.
    """
    return f"{datetime.fromtimestamp(seconds, UTC):%Y-%m-%dT%H:%M:%S}"


def _level(event: dict[str, Any]) -> str:
    """
    The event's level name (C{info}, C{warn}, C{error}, C{critical}, C{debug}).

    @param event: the event; a legacy event without C{log_level} is classified the
        way Twisted classifies it (C{isError} means critical), so both paths agree.
    """
    level = event.get("log_level")
    if level is None:
        return "critical" if event.get("isError") else "info"
    name = getattr(level, "name", None)
    return name if isinstance(name, str) else safe_str(level)


def _message(event: dict[str, Any]) -> str:
    """
    The event's human-readable text.

    L{formatMessage} (Twisted's L{formatEvent}, faster) handles new-style events and
    legacy ones that went through Twisted's bridge (which adds a C{log_format}); for a
    raw legacy dict it returns C{""}, so the legacy C{message} tuple (or C{format}) is
    rendered as C{twisted.python.log} would.
    """
    text = formatMessage(event)
    if text or "log_format" in event:
        return text
    legacy = event.get("message")
    if isinstance(legacy, tuple | list) and legacy:
        return " ".join(safe_str(part) for part in legacy)
    legacyFormat = event.get("format")
    if isinstance(legacyFormat, str):
        try:
            return legacyFormat % event
        except Exception:
            return legacyFormat
    return ""


def _repr(value: object) -> str:
    """
    C{repr(value)}, or a short stand-in naming its type when that C{repr} raises (a
    broken C{__repr__} must not fill the log with its own traceback).
    """
    try:
        return repr(value)
    except Exception:
        try:
            return f"<{type(value).__qualname__} object (repr failed)>"
        except Exception:
            return "<object (repr failed)>"


def _field(value: object) -> object:
    """
    An event value as a JSON field: primitives as themselves, anything else (and
    non-finite floats, which strict JSON parsers reject) as its C{repr}, so one odd
    value never costs the whole event.
    """
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    return _repr(value)


def _traceback(failure: object) -> str:
    """
    A failure's traceback as one string (its newlines are escaped by the encoder).
    """
    try:
        return str(failure.getTraceback())  # type: ignore[attr-defined]
    except Exception as e:
        return f"(unable to obtain traceback: {_repr(e)}) {_repr(failure)}"


def eventAsJSON(event: dict[str, Any]) -> str:
    """
    One log event as one line of JSON, with no newline inside or at the end.

    The line holds C{time}, C{level}, C{namespace} and C{message}, then every event key
    not starting with C{log_} (netd's C{service}, C{peer}, C{bytesIn}, ...), and a
    C{traceback} when the event carries a C{log_failure}.  Output is ASCII-only, so it
    is safe on any stream encoding and a newline or control character in a value can
    never split the line.  It never raises: an event that cannot be rendered at all
    becomes a minimal object with its C{repr}, because a logging error must not take
    the daemon down or hide the event.

    @param event: a L{twisted.logger} event (or a legacy C{twisted.python.log} one).
    @return: the JSON text, without a trailing newline.
    """
    try:
        record: dict[str, object] = {
            "time": _isoTime(event.get("log_time")),
            "level": _level(event),
            "namespace": safe_str(event.get("log_namespace", "-")),
            "message": _message(event),
        }
        for key, value in event.items():
            name = key if isinstance(key, str) else safe_str(key)
            if name.startswith("log_") or name in _RESERVED:
                continue
            record[name] = _field(value)
        if "log_failure" in event:
            record["traceback"] = _traceback(event["log_failure"])
        return json.dumps(record, ensure_ascii=True)
    except Exception:
        try:
            fallback = {
                "time": _isoTime(None),
                "level": "error",
                "namespace": __name__,
                "message": f"unrenderable log event: {safe_repr(event)}",
            }
            return json.dumps(fallback, ensure_ascii=True)
        except Exception:
            return '{"level": "error", "message": "unrenderable log event"}'


def jsonFileLogObserver(outFile: Any) -> ILogObserver:
    """
    An observer writing each event to C{outFile} as one JSON line (and flushing it, so
    a collector tailing the stream sees each event at once).

    @param outFile: a text stream, or a L{LogFile} (which takes text too).
    """
    observer = FileLogObserver(outFile, lambda event: eventAsJSON(event) + "\n")
    return cast(ILogObserver, observer)  # @implementer is invisible to mypy


def _realStdout(stdout: TextIO | None) -> TextIO:
    """
    The stream to write "stdout" logs to: C{stdout} if given, else C{sys.stdout} now.

    Once logging has begun, twistd replaces C{sys.stdout} with a L{LoggingFile} that
    turns writes into log events; writing the log there would loop, so the process's
    original stdout is used instead.
    """
    stream = sys.stdout if stdout is None else stdout
    if isinstance(stream, LoggingFile):
        stream = sys.__stdout__
    assert stream is not None
    return stream


def _rotateOnSIGUSR1(logFile: LogFile) -> None:
    """
    Rotate C{logFile} on C{SIGUSR1}, exactly as twistd does for its text log: only
    where the signal exists, and only if nobody has claimed it already (its handler is
    C{None} or C{SIG_DFL}).  The rotation itself runs in the reactor thread via
    C{callFromThread}, since a signal can interrupt a write half-way through.
    """
    try:
        import signal
    except ImportError:
        return
    sigusr1 = getattr(signal, "SIGUSR1", None)
    if sigusr1 is None:
        return
    if not signal.getsignal(sigusr1):

        def rotateLog(signum: int, frame: object) -> None:
            from twisted.internet import reactor

            reactor.callFromThread(logFile.rotate)  # type: ignore[attr-defined]

        signal.signal(sigusr1, rotateLog)


def observerFactory(
    observerFor: Callable[[Any], ILogObserver],
    logfile: str | None,
    nodaemon: bool,
    *,
    stdout: TextIO | None = None,
) -> Callable[[], ILogObserver]:
    """
    A twistd observer factory writing where twistd would write its text log.

    twistd calls a custom factory instead of opening its log file, so the factory
    repeats twistd's rules (C{UnixAppLogger._getLogObserver}) when called:
      - C{"-"}: stdout; a daemon has no stdout, so that is an error, as in twistd;
      - no log file in the foreground: stdout;
      - otherwise the file (C{twistd.log} for a daemon without one), opened with
        L{LogFile.fromFullPath} and twistd's defaults (rotate at 1 MB, keep all), and
        rotated on C{SIGUSR1} like twistd's.

    Nothing is opened until the call, which twistd makes before daemonising, so a
    relative path is taken from the directory twistd was started in.

    @param observerFor: makes the observer for the stream or L{LogFile} chosen.
    @param logfile: twistd's C{logfile} option (C{None}, C{""}, C{"-"} or a path).
    @param nodaemon: twistd's C{nodaemon} option.
    @param stdout: the stream meant by "stdout"; default C{sys.stdout} at call time.
    @return: a zero-argument callable returning the observer.
    """

    def makeObserver() -> ILogObserver:
        if logfile == "-":
            if not nodaemon:
                sys.exit("Daemons cannot log to stdout, exiting!")
            return observerFor(_realStdout(stdout))
        if nodaemon and not logfile:
            return observerFor(_realStdout(stdout))
        logFile = LogFile.fromFullPath(logfile or "twistd.log")
        _rotateOnSIGUSR1(logFile)
        return observerFor(logFile)

    return makeObserver


def jsonObserverFactory(
    logfile: str | None, nodaemon: bool, *, stdout: TextIO | None = None
) -> Callable[[], ILogObserver]:
    """
    L{observerFactory} for JSON lines (L{jsonFileLogObserver}).
    """
    return observerFactory(jsonFileLogObserver, logfile, nodaemon, stdout=stdout)


def stdoutJSONObserver() -> ILogObserver:
    """
    JSON lines on stdout: a zero-argument factory for C{twistd -n --logger
    netd.logs.format.stdoutJSONObserver}, for a foreground process under a supervisor
    that collects stdout (systemd, a container runtime).
    """
    return jsonObserverFactory("-", True)()


def configuredObserver() -> ILogObserver:
    """
    The observer recorded by L{useLogFormat}: the zero-argument callable twistd's
    C{--logger} option needs, for settings only known once options are parsed.

    @raise RuntimeError: if L{useLogFormat} was not called in this process.
    """
    if _configuredFactory is None:
        raise RuntimeError(f"{_CONFIGURED_NAME} needs netd.logs.format.useLogFormat first")
    return _configuredFactory()


def useLogFormat(config: MutableMapping[str, Any], logFormat: str) -> None:
    """
    Make twistd log in netd's C{text} or C{json} format, given its C{ServerOptions}:
    call from a subcommand's C{postOptions} with C{self.parent}.

    Both formats are rendered by netd (L{netd.logs.text}, L{eventAsJSON}) because
    Twisted's own text observer costs more per event than serving a short connection;
    the text is the very line twistd writes.  This records L{observerFactory} for the
    parsed C{logfile} and C{nodaemon} and sets C{config["logger"]} to the I{dotted
    name} of L{configuredObserver}: twistd's own C{postOptions}, which runs after the
    subcommand's, resolves that key with L{namedAny}, so a callable stored there would
    be rejected.

    @param config: twistd's parsed options (C{logfile}, C{nodaemon}, C{syslog},
        C{logger} are read; C{logger} is set).
    @param logFormat: C{"text"} or C{"json"}.
    @raise usage.UsageError: if C{--logger} or C{--syslog} was also given with C{json},
        since either would silently replace or be replaced by the JSON log.  With
        C{text}, twistd's own C{--logger} or C{--syslog} is left to do its work.
    """
    global _configuredFactory
    if logFormat == "text":
        if config.get("logger") is not None or config.get("syslog"):
            return  # twistd's --logger or --syslog (or an observer set up before) rules
        observerFor: Callable[[Any], ILogObserver] = textFileLogObserver
    elif config.get("logger") not in (None, _CONFIGURED_NAME):
        raise usage.UsageError("--log-format json cannot be combined with twistd's --logger")
    elif config.get("syslog"):
        raise usage.UsageError("--log-format json cannot be combined with twistd's --syslog")
    else:
        observerFor = jsonFileLogObserver
    _configuredFactory = observerFactory(
        observerFor, config.get("logfile"), bool(config.get("nodaemon"))
    )
    config["logger"] = _CONFIGURED_NAME
