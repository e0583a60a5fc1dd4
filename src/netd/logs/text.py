"""
Log events rendered cheaply, character for character as Twisted renders them.

A short connection's log line used to cost more than serving the connection: Twisted
renders every event's C{log_format} through L{string.Formatter}, which walks the format
in Python, and formats the timestamp through C{datetime} and C{strftime} every time.
netd's own events use plain fields (C{{service}}, C{{duration:.3f}}), which
C{str.format_map} renders in C with the very same result, and a timestamp without
fractions changes once a second.  So this module renders the common event quickly and
hands everything unusual (a C{{call()}} field, a flattened event, a failure, a bytes
format, a format that fails) to Twisted's own functions, which keeps the output
identical either way: the tests compare the two renderings event by event.

L{classicLogText} is what twistd's text log writes for an event (L{textFileLogObserver}
the observer), and L{formatMessage} the message alone (which the JSON log uses).
"""

from __future__ import annotations

from typing import Any, cast

from twisted.logger import FileLogObserver, ILogObserver, formatEvent, formatTime
from twisted.logger import formatEventAsClassicLogText as _twistedClassicLogText

__all__ = ["classicLogText", "formatMessage", "textFileLogObserver"]


def formatMessage(event: dict[str, Any]) -> str:
    """
    The event's message, as L{twisted.logger.formatEvent} renders it.

    @param event: a L{twisted.logger} event.
    """
    fmt = event.get("log_format")
    if type(fmt) is str and "()" not in fmt and "log_flattened" not in event:
        try:
            return fmt.format_map(event)
        except Exception:
            pass  # Twisted's renderer says what went wrong, in its own words
    return formatEvent(event)


#: From this fraction on, C{datetime.fromtimestamp} rounds up to the next whole second.
_ROUNDS_UP = 0.9999995


class _SecondStamps:
    """
    Twisted's RFC 3339 timestamp for an event time, formatted once per second.

    The stamp has no fractions, so every event within one second shares it; the UTC
    offset is taken by Twisted's L{formatTime} itself, so a change of local time
    (daylight saving) shows from the first second it applies to.
    """

    __slots__ = ("_second", "_stamp")

    def __init__(self) -> None:
        self._second: int | None = None
        self._stamp = ""

    def __call__(self, when: float) -> str:
        second = int(when)
        if when < 0 or when - second >= _ROUNDS_UP:
            # Twisted's datetime rounds to microseconds: this instant is the next second
            return formatTime(when)
        if second != self._second:
            self._stamp = formatTime(second)
            self._second = second
        return self._stamp


_stamps = _SecondStamps()


def classicLogText(event: dict[str, Any]) -> str | None:
    """
    One event as twistd's text log line (C{"TIME [SYSTEM] MESSAGE\\n"}), or L{None}
    for an event with no text, exactly like
    L{twisted.logger.formatEventAsClassicLogText}.

    @param event: a L{twisted.logger} event.
    """
    when = event.get("log_time")
    if "log_failure" in event or type(when) is not float:
        return _twistedClassicLogText(event)
    text = formatMessage(event)
    if not text:
        return None
    system = event.get("log_system")
    if system is None:
        level = event.get("log_level")
        if level is None:
            return _twistedClassicLogText(event)
        system = f"{event.get('log_namespace', '-')}#{level.name}"
    elif type(system) is not str:
        return _twistedClassicLogText(event)
    line = f"{_stamps(when)} [{system}] {text}"
    if "\n" in line:
        line = line.replace("\n", "\n\t")
    return line + "\n"


def textFileLogObserver(outFile: Any) -> ILogObserver:
    """
    An observer writing twistd's classic text lines to C{outFile}, like
    L{twisted.logger.textFileLogObserver} with its default time format.

    @param outFile: a text stream, or a L{twisted.python.logfile.LogFile}.
    """
    return cast(ILogObserver, FileLogObserver(outFile, classicLogText))
