"""
Tests for L{netd.logs.text}: netd's fast rendering is Twisted's rendering, character for
character, for every kind of event.
"""

from __future__ import annotations

import io
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.logger import LogLevel, formatEvent, formatEventAsClassicLogText
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from netd.logs.text import classicLogText, formatMessage, textFileLogObserver

_FIELDS = st.dictionaries(
    st.sampled_from(["service", "peer", "bytesIn", "reason", "duration", "x"]),
    st.one_of(
        st.text(max_size=12),
        st.integers(),
        st.floats(allow_nan=True, allow_infinity=True),
        st.none(),
        st.binary(max_size=6),
    ),
    max_size=4,
)
_FORMATS = st.one_of(
    st.sampled_from(
        [
            "{service} {peer} closed after {duration:.3f}s, {bytesIn} bytes in: {reason}",
            "{service!r} {x!s} {x!a}",
            "{x}{x}{{literal}}",
            "{missing}",
            "{x()}",
            "{0}",
            "{",
            "}",
            "{x:>8}|{x:<3}",
            "line one\nline two {x}",
            "",
        ]
    ),
    st.text(max_size=30),
)


def _event(fmt: object, fields: dict[str, Any], when: object = 1764700000.25, **extra: Any) -> dict[str, Any]:
    event: dict[str, Any] = dict(fields)
    event.update(
        log_format=fmt,
        log_time=when,
        log_level=LogLevel.info,
        log_namespace="netd.admission.guard",
        **extra,
    )
    return event


class EquivalenceTests(SynchronousTestCase):
    """netd renders every event exactly as Twisted does."""

    def assertSame(self, event: dict[str, Any]) -> None:
        self.assertEqual(formatMessage(dict(event)), formatEvent(dict(event)))
        self.assertEqual(classicLogText(dict(event)), formatEventAsClassicLogText(dict(event)))

    @settings(max_examples=400, derandomize=True, deadline=None)
    @given(fmt=_FORMATS, fields=_FIELDS, when=st.floats(0, 4e9) | st.integers(0, 2**32) | st.none())
    def test_anyEvent(self, fmt: str, fields: dict[str, Any], when: object) -> None:
        """Any format, any fields, any time: the same text as Twisted's."""
        self.assertSame(_event(fmt, fields, when))

    def test_connectionLine(self) -> None:
        """netd's per-connection line is the line twistd writes."""
        self.assertSame(
            _event(
                "{service} {peer} closed after {duration:.3f}s, {bytesIn} bytes in: {reason}",
                {"service": "echo", "peer": "127.0.0.1:4000", "duration": 0.25, "bytesIn": 3, "reason": "x"},
            )
        )

    def test_secondBoundaries(self) -> None:
        """Times just before a whole second (which round up) and negative times keep Twisted's stamp."""
        for when in (1764700000.9999996, 1764700000.9999994, 1764700001.0, 0.0, -1.5, 2**31 + 0.5):
            self.assertSame(_event("x", {}, when))

    def test_cachedSecondThenEarlier(self) -> None:
        """An event of an earlier second after a later one is stamped with its own second."""
        first = _event("a", {}, 1764700005.5)
        second = _event("b", {}, 1764700004.5)
        self.assertSame(first)
        self.assertSame(second)

    def test_systemAndLevels(self) -> None:
        """C{log_system}, a missing level or namespace, and a non-text system render as Twisted's."""
        self.assertSame(_event("x", {}, log_system="tcp,3,127.0.0.1"))
        self.assertSame(_event("x", {}, log_system=12))
        event = _event("x", {})
        del event["log_level"], event["log_namespace"]
        self.assertSame(event)

    def test_unusualFormats(self) -> None:
        """Bytes formats, no format, flattened events and failures go through Twisted's code."""
        self.assertSame(_event(b"bytes {x}", {"x": 1}))
        self.assertSame(_event(None, {}))
        self.assertSame(_event("{x}", {"x": 1}, log_flattened={"x!:": "1"}))
        failure = Failure(ZeroDivisionError("boom"))
        self.assertSame(_event("boom", {}, log_failure=failure))

    def test_observerWrites(self) -> None:
        """L{textFileLogObserver} writes the rendered line to its stream."""
        out = io.StringIO()
        event = _event("hello {x}", {"x": 1})
        textFileLogObserver(out)(event)
        self.assertEqual(out.getvalue(), formatEventAsClassicLogText(event))
