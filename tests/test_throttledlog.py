"""
Tests for L{netd.logs.throttled}: one log line per key per interval, in bounded memory.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import Logger
from twisted.trial.unittest import SynchronousTestCase

from netd.logs.throttled import ThrottledLog

FORMAT = "{peer} refused ({repeats} in the last minute)"


class ThrottledLogTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.events = EventLoggingObserver()
        self.log = ThrottledLog(Logger(observer=self.events), self.clock, maxKeys=3)

    def warn(self, key: str) -> None:
        self.log.warn(key, FORMAT, peer=key)

    def test_firstEventLogged(self) -> None:
        """The first event for a key is logged at once, as a warning, standing for itself."""
        self.warn("a")
        [event] = self.events
        self.assertEqual((event["peer"], event["repeats"]), ("a", 1))
        self.assertEqual(event["log_level"].name, "warn")
        self.assertEqual(event["log_format"], FORMAT)

    def test_oncePerInterval(self) -> None:
        """Repeats within the interval are held back; the next line counts them."""
        self.warn("a")
        for _ in range(4):
            self.clock.advance(10)
            self.warn("a")
        self.assertEqual(len(self.events), 1)
        self.clock.advance(20)
        self.warn("a")
        self.assertEqual([e["repeats"] for e in self.events], [1, 5])
        self.clock.advance(59)
        self.warn("a")
        self.assertEqual(len(self.events), 2)

    def test_keysAreIndependent(self) -> None:
        """Each key has its own interval."""
        self.warn("a")
        self.warn("b")
        self.warn("a")
        self.assertEqual([e["peer"] for e in self.events], ["a", "b"])

    def test_quietKeyStartsAfresh(self) -> None:
        """A key logged long ago and not since is logged again standing for itself."""
        self.warn("a")
        self.clock.advance(3600)
        self.warn("a")
        self.assertEqual([e["repeats"] for e in self.events], [1, 1])

    def test_boundedKeys(self) -> None:
        """At most C{maxKeys} keys are remembered; the oldest is forgotten and just logs again."""
        for key in "abcd":
            self.warn(key)
        self.assertLessEqual(len(self.log._seen), 3)
        self.warn("d")
        self.warn("c")
        self.assertEqual(len(self.events), 4)
        self.warn("a")
        self.assertEqual([e["peer"] for e in self.events], ["a", "b", "c", "d", "a"])
        for i in range(1000):
            self.warn(str(i))
        self.assertEqual(len(self.log._seen), 3)

    def test_interval(self) -> None:
        """The interval is configurable."""
        log = ThrottledLog(Logger(observer=self.events), self.clock, interval=5)
        log.warn("k", FORMAT, peer="k")
        self.clock.advance(4.9)
        log.warn("k", FORMAT, peer="k")
        self.clock.advance(0.1)
        log.warn("k", FORMAT, peer="k")
        self.assertEqual([e["repeats"] for e in self.events], [1, 2])
