"""
Echo, discard and chargen, byte for byte, on in-memory transports.
"""

from __future__ import annotations

from twisted.internet.interfaces import IPushProducer
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from netd.protocols import simple
from tests.support import bindDatagram, connect, makeContext

PRINTABLE = bytes(range(32, 127))


class EchoTests(SynchronousTestCase):
    def test_echoesEveryByte(self) -> None:
        """Every byte a client sends comes back, in order, chunk by chunk."""
        protocol, transport = connect(simple.buildEcho(makeContext()))
        for chunk in (b"hello", b"\x00\xff\r\n", b"x" * 70000):
            protocol.dataReceived(chunk)
        self.assertEqual(transport.value(), b"hello\x00\xff\r\n" + b"x" * 70000)
        self.assertFalse(transport.disconnecting)

    def test_pausesReadingWhenClientStopsReading(self) -> None:
        """Echo registers the connection as its own producer, so a full write buffer pauses reading."""
        protocol, transport = connect(simple.buildEcho(makeContext()))
        self.assertIs(transport.producer, transport)
        self.assertTrue(transport.streaming)

    def test_udpEchoesDatagram(self) -> None:
        """A datagram is sent back to its source unchanged, the empty one included."""
        protocol, transport = bindDatagram(simple.buildEcho(makeContext()))
        protocol.datagramReceived(b"ping", ("192.0.2.7", 5000))
        protocol.datagramReceived(b"", ("192.0.2.8", 5001))
        self.assertEqual(
            transport.written, [(b"ping", ("192.0.2.7", 5000)), (b"", ("192.0.2.8", 5001))]
        )


class DiscardTests(SynchronousTestCase):
    def test_neverWrites(self) -> None:
        """Discard reads everything and writes nothing, over TCP and UDP."""
        protocol, transport = connect(simple.buildDiscard(makeContext()))
        protocol.dataReceived(b"anything" * 1000)
        self.assertEqual(transport.value(), b"")
        datagram, udp = bindDatagram(simple.buildDiscard(makeContext()))
        datagram.datagramReceived(b"x", ("192.0.2.7", 5000))
        self.assertEqual(udp.written, [])


class ChargenTests(SynchronousTestCase):
    def test_patternIsRfc864(self) -> None:
        """The pattern is 95 lines of 72 printable characters plus CRLF, each starting one further."""
        lines = simple.chargenLines().split(b"\r\n")[:-1]
        self.assertEqual(len(lines), 95)
        self.assertEqual(lines[0], PRINTABLE[:72])
        self.assertEqual(lines[1], PRINTABLE[1:73])
        self.assertEqual(lines[94], PRINTABLE[94:] + PRINTABLE[:71])
        self.assertTrue(all(len(line) == 72 for line in lines))

    def test_streamRotatesThroughTheCycle(self) -> None:
        """The TCP stream is the pattern repeated, line after line, without a seam."""
        protocol, transport = connect(simple.buildChargen(makeContext()))
        data = transport.value()
        cycle = simple.chargenLines()
        self.assertGreater(len(data), 2 * len(cycle))
        self.assertEqual(data, (cycle * (len(data) // len(cycle) + 1))[: len(data)])

    def test_isAPushProducerThatStopsWhenPaused(self) -> None:
        """Chargen registers as a push producer and writes nothing while paused."""
        clock = makeContext().clock
        protocol, transport = connect(simple.buildChargen(makeContext(clock=clock)))
        verifyObject(IPushProducer, protocol)
        self.assertIs(transport.producer, protocol)
        self.assertTrue(transport.streaming)
        protocol.pauseProducing()
        before = len(transport.value())
        clock.advance(1)
        self.assertEqual(len(transport.value()), before)
        protocol.resumeProducing()
        self.assertGreater(len(transport.value()), before)

    def test_burstIsBounded(self) -> None:
        """Against a transport that never pushes back, a burst is bounded and the next waits a turn."""
        clock = makeContext().clock
        protocol, transport = connect(simple.buildChargen(makeContext(clock=clock)))
        self.assertLessEqual(len(transport.value()), protocol.burst)
        [nextTurn] = clock.getDelayedCalls()
        self.assertEqual(nextTurn.getTime(), clock.seconds())
        protocol.connectionLost(None)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_udpReplyIsAtMost512BytesOfPattern(self) -> None:
        """A UDP reply holds whole pattern lines, at most 512 bytes, continuing the rotation."""
        protocol, transport = bindDatagram(simple.buildChargen(makeContext()))
        protocol.datagramReceived(b"", ("192.0.2.7", 5000))
        protocol.datagramReceived(b"", ("192.0.2.7", 5000))
        first, second = (data for data, _ in transport.written)
        self.assertLessEqual(len(first), 512)
        self.assertEqual(len(first) % 74, 0)
        cycle = simple.chargenLines()
        self.assertEqual(first + second, cycle[: len(first) * 2])
