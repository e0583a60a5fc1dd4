"""
Tests for L{netd.admission.ratelimit}.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from netd.admission.ratelimit import BucketMap, ConcurrencyMap, TokenBucket, sourceKey


class SourceKeyTests(SynchronousTestCase):
    """
    Tests for L{sourceKey}.
    """

    def test_ipv4(self) -> None:
        """An IPv4 peer is counted under its own address."""
        self.assertEqual(sourceKey("192.0.2.7"), "192.0.2.7")

    def test_mappedIPv6(self) -> None:
        """An IPv4 peer seen on a dual-stack socket is counted as the same IPv4 address."""
        self.assertEqual(sourceKey("::ffff:192.0.2.7"), "192.0.2.7")

    def test_ipv6Network(self) -> None:
        """All IPv6 addresses in one /64 are counted as a single source."""
        self.assertEqual(sourceKey("2001:db8:1:2::1"), "2001:db8:1:2::/64")
        self.assertEqual(sourceKey("2001:db8:1:2:ffff:1:2:3"), "2001:db8:1:2::/64")
        self.assertNotEqual(sourceKey("2001:db8:1:3::1"), sourceKey("2001:db8:1:2::1"))

    def test_customPrefix(self) -> None:
        """The IPv6 prefix length that identifies one client can be chosen."""
        self.assertEqual(sourceKey("2001:db8:1:2::1", ipv6Prefix=48), "2001:db8:1::/48")
        self.assertEqual(sourceKey("2001:db8::1", ipv6Prefix=128), "2001:db8::1/128")

    def test_badPrefix(self) -> None:
        """An impossible IPv6 prefix length is rejected."""
        self.assertRaises(ValueError, sourceKey, "2001:db8::1", 129)

    def test_zone(self) -> None:
        """A zone suffix does not make one link-local peer into several sources."""
        self.assertEqual(sourceKey("fe80::1%eth0"), "fe80::/64")
        self.assertEqual(sourceKey("fe80::1%eth1"), sourceKey("fe80::1"))

    def test_notAnAddress(self) -> None:
        """A unix socket path is counted under the path itself."""
        self.assertEqual(sourceKey("/run/netd.sock"), "/run/netd.sock")
        self.assertEqual(sourceKey("/tmp/odd%name"), "/tmp/odd%name")
        self.assertEqual(sourceKey(""), "")


class TokenBucketTests(SynchronousTestCase):
    """
    Tests for L{TokenBucket}.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.bucket = TokenBucket(rate=2.0, burst=4.0, clock=self.clock)

    def test_startsFull(self) -> None:
        """A new source may immediately send a whole burst."""
        self.assertEqual(self.bucket.available(), 4.0)
        self.assertTrue(self.bucket.isFull())
        self.assertEqual([self.bucket.take() for _ in range(4)], [True] * 4)

    def test_refusesWhenEmpty(self) -> None:
        """A source that used up its burst is refused until tokens refill."""
        for _ in range(4):
            self.bucket.take()
        self.assertFalse(self.bucket.take())
        self.assertFalse(self.bucket.take())
        self.assertEqual(self.bucket.available(), 0.0)

    def test_recovers(self) -> None:
        """A refused source is allowed again once enough time has passed."""
        for _ in range(4):
            self.bucket.take()
        self.clock.advance(0.5)
        self.assertTrue(self.bucket.take())
        self.assertFalse(self.bucket.take())
        self.clock.advance(10)
        self.assertTrue(self.bucket.isFull())

    def test_partialRefill(self) -> None:
        """Tokens come back continuously, in proportion to the time waited."""
        self.assertTrue(self.bucket.take(4))
        self.clock.advance(0.25)
        self.assertEqual(self.bucket.available(), 0.5)
        self.assertFalse(self.bucket.take())
        self.clock.advance(0.25)
        self.assertTrue(self.bucket.take())

    def test_neverExceedsBurst(self) -> None:
        """A long idle period earns no more than one burst."""
        self.clock.advance(1_000_000)
        self.assertEqual(self.bucket.available(), 4.0)
        self.assertEqual(sum(self.bucket.take() for _ in range(10)), 4)

    def test_takeAllOrNothing(self) -> None:
        """A request for more tokens than available is refused and consumes none."""
        self.assertTrue(self.bucket.take(3))
        self.assertFalse(self.bucket.take(2))
        self.assertEqual(self.bucket.available(), 1.0)
        self.assertTrue(self.bucket.take(1))
        self.assertFalse(self.bucket.take(5))

    def test_clockBackwards(self) -> None:
        """A clock stepping backwards neither drains nor refills the bucket."""
        self.clock.advance(100)
        self.bucket.take(2)
        self.clock.rightNow = 50.0
        self.assertEqual(self.bucket.available(), 2.0)

    def test_badParameters(self) -> None:
        """A bucket that could never allow anything is rejected at construction."""
        for rate, burst in [
            (0, 1),
            (-1, 1),
            (1, 0.5),
            (1, 0),
            (float("nan"), 1),
            (1, float("nan")),
        ]:
            self.assertRaises(ValueError, TokenBucket, rate, burst, self.clock)
        self.assertRaises(ValueError, self.bucket.take, -1)


class BucketMapTests(SynchronousTestCase):
    """
    Tests for L{BucketMap}.
    """

    def setUp(self) -> None:
        self.clock = Clock()

    def test_independentSources(self) -> None:
        """One source using up its allowance does not limit another source."""
        buckets = BucketMap(rate=1.0, burst=2.0, clock=self.clock)
        self.assertTrue(buckets.take("a"))
        self.assertTrue(buckets.take("a"))
        self.assertFalse(buckets.take("a"))
        self.assertTrue(buckets.take("b"))
        self.assertTrue(buckets.take("b", 1.0))
        self.assertFalse(buckets.take("b"))
        self.assertEqual(len(buckets), 2)

    def test_recovers(self) -> None:
        """A limited source is allowed again after waiting."""
        buckets = BucketMap(rate=1.0, burst=1.0, clock=self.clock)
        self.assertTrue(buckets.take("a"))
        self.assertFalse(buckets.take("a"))
        self.clock.advance(1)
        self.assertTrue(buckets.take("a"))

    def test_boundedUnderFlood(self) -> None:
        """A flood of distinct (spoofed) sources never grows memory beyond maxKeys."""
        buckets = BucketMap(rate=1.0, burst=5.0, clock=self.clock, maxKeys=100)
        for i in range(1000):
            self.assertTrue(buckets.take(f"10.0.{i // 256}.{i % 256}"))
            self.assertLessEqual(len(buckets), 100)
            if i % 7 == 0:
                self.clock.advance(0.3)
        self.assertGreater(len(buckets), 0)

    def test_fullBucketsEvictedFirst(self) -> None:
        """When memory is full, sources back at full allowance are forgotten before a limited one."""
        buckets = BucketMap(rate=1.0, burst=2.0, clock=self.clock, maxKeys=4)
        self.assertTrue(buckets.take("busy", 2))
        for key in "bcd":
            buckets.take(key)
        self.clock.advance(1)
        # "busy" is the oldest entry but not full; b, c and d are full again, so they
        # make room for three new sources while "busy" keeps its debt.
        for i in range(3):
            self.assertTrue(buckets.take(f"new{i}"))
            self.assertLessEqual(len(buckets), 4)
        self.assertTrue(buckets.take("busy"))
        self.assertFalse(buckets.take("busy"))

    def test_churnCannotResetFloodingSource(self) -> None:
        """A source that keeps sending stays limited however many other keys it churns through."""
        buckets = BucketMap(rate=1.0, burst=3.0, clock=self.clock, maxKeys=50)
        self.assertTrue(buckets.take("attacker", 3))
        for i in range(500):
            buckets.take(f"spoofed{i}")
            self.assertFalse(buckets.take("attacker"))
            self.assertLessEqual(len(buckets), 50)

    def test_badParameters(self) -> None:
        """A map whose buckets could never allow anything, or that may hold no key, is rejected."""
        self.assertRaises(ValueError, BucketMap, 0, 1, self.clock)
        self.assertRaises(ValueError, BucketMap, 1, 0, self.clock)
        self.assertRaises(ValueError, BucketMap, 1, 1, self.clock, 0)


class ConcurrencyMapTests(SynchronousTestCase):
    """
    Tests for L{ConcurrencyMap}.
    """

    def test_limit(self) -> None:
        """A source may hold up to the limit of simultaneous connections, and no more."""
        conns = ConcurrencyMap(2)
        self.assertTrue(conns.acquire("a"))
        self.assertTrue(conns.acquire("a"))
        self.assertFalse(conns.acquire("a"))
        self.assertTrue(conns.acquire("b"))
        self.assertEqual((conns.count("a"), conns.count("b"), conns.total()), (2, 1, 3))

    def test_release(self) -> None:
        """Closing a connection lets the same source open another."""
        conns = ConcurrencyMap(1)
        self.assertTrue(conns.acquire("a"))
        self.assertFalse(conns.acquire("a"))
        conns.release("a")
        self.assertTrue(conns.acquire("a"))

    def test_cleanup(self) -> None:
        """A source with no live connections takes no memory."""
        conns = ConcurrencyMap(3)
        conns.acquire("a")
        conns.acquire("a")
        conns.acquire("b")
        self.assertEqual(len(conns), 2)
        conns.release("a")
        self.assertEqual(len(conns), 2)
        conns.release("a")
        conns.release("b")
        self.assertEqual((len(conns), conns.total(), conns.count("a")), (0, 0, 0))

    def test_releaseWithoutAcquire(self) -> None:
        """Releasing a connection that was never counted is reported as a bug."""
        conns = ConcurrencyMap(1)
        self.assertRaises(KeyError, conns.release, "a")
        self.assertEqual(conns.total(), 0)

    def test_badLimit(self) -> None:
        """A limit that would refuse every connection is rejected."""
        self.assertRaises(ValueError, ConcurrencyMap, 0)
