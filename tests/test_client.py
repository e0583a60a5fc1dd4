"""
C{netd client}: endpoint parsing, the RFC decoders and verifiers, ping statistics, and
each service's function against a peer on a socketpair (no network beyond loopback).
"""

from __future__ import annotations

import io
import re
import socket
import threading
import time
from collections.abc import Callable

from twisted.trial.unittest import SynchronousTestCase

from netd.client import main
from netd.client.channel import Channel, ClientError, Deadline, DeadlineExpired
from netd.client.chargen import CYCLE, LINE_LENGTH, ChargenError, ChargenVerifier, verifyDatagram
from netd.client.cli import parseSize
from netd.client.clock import BadTime, decodeTime, offsetFrom, parseDaytime
from netd.client.endpoint import BadEndpoint, Endpoint, parseEndpoint
from netd.client.ping import Pinger, PingStats, decodeProbe, encodeProbe, percentile
from netd.client.services import (
    Console,
    echoOnce,
    echoPing,
    readChargen,
    readDaytime,
    readTime,
    sendDiscard,
    sendLines,
    shown,
)
from netd.protocols.clock import rfc868Bytes
from netd.protocols.simple import buildChargen, chargenLines
from tests.support import bindDatagram, makeContext

#: The last second before RFC 868's count wraps (2036-02-07T06:28:15Z).
BEFORE_WRAP = 2**32 - 2208988800 - 1
PROBE = re.compile(rb"netd [0-9a-f]{8} ([0-9]{10}) ")


def makeConsole(stdin: bytes = b"", wall: Callable[[], float] = time.time) -> Console:
    return Console(stdin=io.BytesIO(stdin), stdout=io.StringIO(), stderr=io.StringIO(), wall=wall)


def output(console: Console) -> str:
    assert isinstance(console.stdout, io.StringIO)
    return console.stdout.getvalue()


def errors(console: Console) -> str:
    assert isinstance(console.stderr, io.StringIO)
    return console.stderr.getvalue()


class PeerTestCase(SynchronousTestCase):
    """A channel whose server is the other end of a socketpair, played by a thread."""

    def channel(
        self,
        server: Callable[[socket.socket], object],
        datagram: bool = False,
        timeout: float = 2.0,
    ) -> Channel:
        kind = socket.SOCK_DGRAM if datagram else socket.SOCK_STREAM
        ours, theirs = socket.socketpair(socket.AF_UNIX, kind)
        theirs.settimeout(5)
        failures: list[BaseException] = []

        def run() -> None:
            try:
                server(theirs)
            except BaseException as e:  # reported by the test, not lost in the thread
                failures.append(e)
            finally:
                theirs.close()

        thread = threading.Thread(target=run, daemon=True)
        channel = Channel(ours, "peer", datagram, timeout, Deadline(None, time.monotonic))

        def finish() -> None:
            channel.close()
            thread.join(10)
            self.assertFalse(thread.is_alive(), "the peer thread did not finish")
            self.assertEqual(failures, [])

        self.addCleanup(finish)
        thread.start()
        return channel


def echoServer(sock: socket.socket) -> None:
    while data := sock.recv(65536):
        sock.sendall(data)


def readUntilClosed(sock: socket.socket) -> bytes:
    received = bytearray()
    while data := sock.recv(65536):
        received += data
    return bytes(received)


class EndpointTests(SynchronousTestCase):
    def test_hostAndPort(self) -> None:
        """HOST:PORT and tcp:HOST:PORT both mean TCP."""
        self.assertEqual(
            parseEndpoint("127.0.0.1:7"), Endpoint("tcp", "127.0.0.1", 7, serverName="127.0.0.1")
        )
        self.assertEqual(parseEndpoint("tcp:10.0.0.1:7"), parseEndpoint("10.0.0.1:7"))

    def test_transports(self) -> None:
        """udp:, tls: (or Twisted's ssl:) and unix: select the transport."""
        self.assertEqual(parseEndpoint("udp:127.0.0.1:7").transport, "udp")
        self.assertTrue(parseEndpoint("udp:127.0.0.1:7").datagram)
        self.assertEqual(parseEndpoint("tls:127.0.0.1:7").transport, "tls")
        self.assertEqual(parseEndpoint("ssl:127.0.0.1:7").transport, "tls")
        self.assertEqual(
            parseEndpoint("unix:/run/echo:1.sock"), Endpoint("unix", path="/run/echo:1.sock")
        )
        self.assertEqual(str(parseEndpoint("unix:/run/echo.sock")), "unix:/run/echo.sock")

    def test_ipv6(self) -> None:
        """IPv6 carries a port in brackets; a bare IPv6 literal takes the default port."""
        endpoint = parseEndpoint("udp:[::1]:7")
        self.assertEqual(
            (endpoint.host, endpoint.port, endpoint.family), ("::1", 7, socket.AF_INET6)
        )
        self.assertEqual(str(endpoint), "[::1]:7")
        self.assertEqual(parseEndpoint("[2001:db8::1]", 10007).port, 10007)
        self.assertEqual(parseEndpoint("::1", 10007).host, "::1")

    def test_defaultPortAndLocalhost(self) -> None:
        """Without a port the service's default is used; localhost is 127.0.0.1 without DNS."""
        endpoint = parseEndpoint("localhost", 10013)
        self.assertEqual(
            (endpoint.host, endpoint.port, endpoint.serverName), ("127.0.0.1", 10013, "localhost")
        )
        self.assertEqual(parseEndpoint("tls:localhost:443").serverName, "localhost")

    def test_errors(self) -> None:
        """Names, bad ports, missing parts and broken brackets are one clear message each."""
        cases = {
            "example.com:7": "not an IP address",
            "127.0.0.1:0": "not in 1-65535",
            "127.0.0.1:70000": "not in 1-65535",
            "127.0.0.1:seven": "not in 1-65535",
            "127.0.0.1:": "not in 1-65535",
            ":7": "no host",
            "unix:": "no socket path",
            "[::1": "expected [IPV6]:PORT",
            "[::1]7": "expected [IPV6]:PORT",
            "[example]:7": "not an IP address",
            "127.0.0.1": "no port",
        }
        for text, message in cases.items():
            with self.assertRaises(BadEndpoint) as raised:
                parseEndpoint(text)
            self.assertIn(message, str(raised.exception), text)
            self.assertIn(repr(text), str(raised.exception))


class TimeTests(PeerTestCase):
    def test_decodesNetdsTime(self) -> None:
        """The 4 bytes netd's time server sends decode to its clock, before and after 2036."""
        for when in (0, 1_700_000_000, BEFORE_WRAP, BEFORE_WRAP + 1, BEFORE_WRAP + 10**8):
            self.assertEqual(decodeTime(rfc868Bytes(when), when + 3), when)

    def test_eraAcrossTheWrap(self) -> None:
        """Around the 2036 wrap the era nearest the local clock wins, on either side."""
        justAfter = (3).to_bytes(4, "big")
        self.assertEqual(decodeTime(justAfter, BEFORE_WRAP - 2), BEFORE_WRAP + 4)
        justBefore = (2**32 - 2).to_bytes(4, "big")
        self.assertEqual(decodeTime(justBefore, BEFORE_WRAP + 5), BEFORE_WRAP - 1)

    def test_wrongLength(self) -> None:
        """Anything but 4 bytes is refused."""
        for data in (b"", b"\x00\x00\x00", b"\x00" * 5):
            self.assertRaises(BadTime, decodeTime, data, 0)

    def test_readTimeNear2036(self) -> None:
        """The time client prints the server's UTC time past the wrap and its offset."""
        channel = self.channel(
            lambda sock: sock.sendall(rfc868Bytes(BEFORE_WRAP + 5)),
        )
        console = makeConsole(wall=lambda: BEFORE_WRAP + 0.5)
        self.assertEqual(readTime(channel, console), 0)
        self.assertIn("2036-02-07 06:28:20 UTC", output(console))
        self.assertIn("offset +5 s", output(console))
        self.assertIn("resolution 1 s", output(console))

    def test_readTimeBadLength(self) -> None:
        """A time server sending other than 4 bytes is an error."""
        channel = self.channel(lambda sock: sock.sendall(b"\x00\x01"))
        with self.assertRaises(ClientError) as raised:
            readTime(channel, makeConsole())
        self.assertIn("2 bytes instead of RFC 868's 4", str(raised.exception))


class DaytimeTests(PeerTestCase):
    def test_parsesCtime(self) -> None:
        """A time.ctime() line, CRLF included, is read back as local time."""
        for when in (1_000_000_000, 1_700_000_000, 1_736_000_000):
            self.assertEqual(parseDaytime(time.ctime(when).encode() + b"\r\n"), when)

    def test_singleDigitDay(self) -> None:
        """ctime's space-padded day of the month is accepted."""
        when = int(time.mktime((2025, 1, 2, 3, 4, 5, 0, 0, -1)))
        self.assertEqual(parseDaytime(b"Thu Jan  2 03:04:05 2025\r\n"), when)

    def test_rejects(self) -> None:
        """Anything that is not a valid ctime() line is refused."""
        for line in (
            b"",
            b"hello",
            b"Thu Jan  2 03:04 2025",
            b"Thu Foo  2 03:04:05 2025",
            b"Xyz Jan  2 03:04:05 2025",
            b"Thu Feb 30 03:04:05 2025",
            b"Thu Jan  2 25:04:05 2025",
            b"Thursday, January 2, 2025 03:04:05-UTC",
        ):
            self.assertRaises(BadTime, parseDaytime, line)

    def test_offset(self) -> None:
        """A whole-second reading is taken as the middle of that second."""
        self.assertEqual(offsetFrom(100, 100.5), 0.0)
        self.assertEqual(offsetFrom(100, 103.5), -3.0)

    def test_readDaytime(self) -> None:
        """The daytime client prints the line, the offset, and that the resolution is 1 s."""
        when = 1_736_000_000
        channel = self.channel(
            lambda sock: sock.sendall(time.ctime(when).encode() + b"\r\n"),
        )
        console = makeConsole(wall=lambda: when - 2.5)
        self.assertEqual(readDaytime(channel, console), 0)
        self.assertIn(f"daytime from peer: {time.ctime(when)}\n", output(console))
        self.assertIn("offset +3 s", output(console))
        self.assertIn("resolution 1 s", output(console))

    def test_readDaytimeGarbage(self) -> None:
        """An unreadable daytime line is shown (escaped) and is an error."""
        channel = self.channel(lambda sock: sock.sendall(b"soon\x1b[2J\r\n"))
        console = makeConsole()
        self.assertRaises(ClientError, readDaytime, channel, console)
        self.assertIn("soon\\x1b[2J", output(console))


class ChargenTests(SynchronousTestCase):
    def feedAll(self, stream: bytes, size: int) -> ChargenVerifier:
        verifier = ChargenVerifier()
        for start in range(0, len(stream), size):
            verifier.feed(stream[start : start + size])
        return verifier

    def test_matchesNetd(self) -> None:
        """The pattern derived from RFC 864 is the one netd's server sends."""
        self.assertEqual(CYCLE, chargenLines())
        self.assertEqual(len(CYCLE), 95 * 74)

    def test_anyStartLineAnyChunks(self) -> None:
        """A stream starting at any line is accepted, however it is cut into chunks."""
        for start in (0, 1, 50, 94):
            stream = CYCLE[start * LINE_LENGTH :] + CYCLE * 2 + CYCLE[:100]
            for size in (1, 7, 73, 74, 75, 1000, 7030, 7031, len(stream)):
                verifier = self.feedAll(stream, size)
                self.assertEqual((verifier.startLine, verifier.received), (start, len(stream)))

    def broken(self, stream: bytes, why: str, offset: int) -> None:
        for size in (1, 13, 74, 4096, len(stream)):
            with self.assertRaises(ChargenError) as raised:
                self.feedAll(stream, size)
            self.assertIn(why, str(raised.exception))
            self.assertIn(f"at byte {offset} ", str(raised.exception))

    def test_corruptedByte(self) -> None:
        """A single wrong byte is found at its exact offset, across chunk boundaries."""
        stream = bytearray(CYCLE[5 * LINE_LENGTH :] + CYCLE)
        stream[9000] ^= 0x01
        self.broken(bytes(stream), "a corrupted byte", 9000)

    def test_missingCrlf(self) -> None:
        """A line without its CRLF is refused."""
        stream = CYCLE[: 3 * LINE_LENGTH - 2] + CYCLE[3 * LINE_LENGTH :]
        self.broken(stream, "missing CRLF", 3 * LINE_LENGTH - 2)

    def test_skippedLine(self) -> None:
        """A line skipped in the stream is refused where the next line should begin."""
        stream = CYCLE[: 10 * LINE_LENGTH] + CYCLE[11 * LINE_LENGTH :]
        self.broken(stream, "a line skipped or repeated", 10 * LINE_LENGTH)
        wrapped = CYCLE[94 * LINE_LENGTH :] + CYCLE[LINE_LENGTH:]
        self.broken(wrapped, "a line skipped or repeated", LINE_LENGTH)

    def test_notAtALine(self) -> None:
        """A stream starting with a CR or in the middle of a line is refused."""
        self.assertRaises(ChargenError, self.feedAll, b"\r\n" + CYCLE, 100)
        self.assertRaises(ChargenError, self.feedAll, CYCLE[10:], 100)

    def test_datagrams(self) -> None:
        """Every datagram netd's chargen sends is whole lines of the pattern."""
        protocol, transport = bindDatagram(buildChargen(makeContext()))
        for _ in range(40):
            protocol.datagramReceived(b"", ("127.0.0.1", 40000))
        for reply, _ in transport.written:
            self.assertEqual(verifyDatagram(reply), 6)

    def test_badDatagrams(self) -> None:
        """An empty datagram, a partial line or a broken line is refused."""
        for data in (
            b"",
            CYCLE[:100],
            CYCLE[:72] + b"\n\n",
            CYCLE[LINE_LENGTH : 3 * LINE_LENGTH][::-1],
        ):
            self.assertRaises(ChargenError, verifyDatagram, data)


class PingStatsTests(SynchronousTestCase):
    def test_percentileExact(self) -> None:
        """p99 is the nearest-rank sample, never an interpolation."""
        self.assertEqual(percentile([float(i) for i in range(100, 0, -1)], 99), 99.0)
        self.assertEqual(percentile([float(i) for i in range(1, 201)], 99), 198.0)
        self.assertEqual(percentile([float(i) for i in range(1, 11)], 99), 10.0)
        self.assertEqual(percentile([0.25], 99), 0.25)
        self.assertEqual(percentile([3.0, 1.0, 2.0], 50), 2.0)

    def test_lossAndSummary(self) -> None:
        """Loss is the share of probes without a reply in time; the summary shows min/avg/p99/max."""
        stats = PingStats(sent=4, rtts=[0.001, 0.002, 0.003], late=1, duplicates=2, foreign=3)
        self.assertEqual(stats.loss, 25.0)
        self.assertEqual(
            stats.summary(),
            [
                "4 probes sent, 3 replies, 25.0% loss (1 late, 2 duplicate, 3 foreign)",
                "rtt min/avg/p99/max = 1.000/2.000/3.000/3.000 ms",
            ],
        )
        self.assertEqual(PingStats().loss, 0.0)
        self.assertEqual(len(PingStats(sent=3).summary()), 1)

    def test_probes(self) -> None:
        """A probe's number is read back only from an intact reply to this run."""
        probe = encodeProbe(0xABCDEF01, 42, b"hi")
        self.assertEqual(decodeProbe(probe, 0xABCDEF01, b"hi"), 42)
        self.assertIsNone(decodeProbe(probe, 0xABCDEF02, b"hi"))
        self.assertIsNone(decodeProbe(probe[:-1], 0xABCDEF01, b"hi"))
        self.assertIsNone(decodeProbe(probe + b"!", 0xABCDEF01, b"hi"))
        self.assertIsNone(decodeProbe(b"garbage", 0xABCDEF01, b"hi"))


class PingTests(PeerTestCase):
    def test_lateDuplicateForeignAndLost(self) -> None:
        """Late, duplicate and stray replies are counted apart and never as answers."""

        def server(sock: socket.socket) -> None:
            held = b""
            for _ in range(5):
                probe = sock.recv(65536)
                sequence = int(PROBE.match(probe)[1])  # type: ignore[index]
                if sequence == 1:
                    sock.send(b"stray datagram")
                    sock.send(probe)
                elif sequence == 2:
                    held = probe
                elif sequence == 3:
                    sock.send(probe)
                    sock.send(probe)
                elif sequence == 5:
                    sock.send(held)
                    sock.send(probe)

        channel = self.channel(server, datagram=True, timeout=0.25)
        lines: list[str] = []
        stats = Pinger(channel, b"x", 7, time.monotonic, lines.append).run(5, 0.15)
        self.assertEqual(
            (stats.sent, stats.received, stats.late, stats.duplicates, stats.foreign),
            (5, 3, 1, 1, 1),
        )
        self.assertEqual(stats.loss, 40.0)
        text = "\n".join(lines)
        self.assertIn("late reply from peer: seq=2", text)
        self.assertIn("no reply from peer: seq=4 (timed out after 0.25 s)", text)

    def test_stream(self) -> None:
        """Over a stream, replies are cut from the byte stream and all count."""
        channel = self.channel(echoServer)
        console = makeConsole()
        self.assertEqual(echoPing(channel, console, b"payload", 3, 0.01, 99), 0)
        self.assertIn("3 probes sent, 3 replies, 0.0% loss", output(console))
        self.assertIn("rtt min/avg/p99/max = ", output(console))

    def test_streamCorrupted(self) -> None:
        """A stream echo that alters a probe is an error."""

        def server(sock: socket.socket) -> None:
            while data := sock.recv(65536):
                sock.sendall(data.upper())

        channel = self.channel(server)
        with self.assertRaises(ClientError) as raised:
            echoPing(channel, makeConsole(), b"payload", 2, 0.01, 99)
        self.assertIn("echoed something we did not send", str(raised.exception))

    def test_allLostExitsNonZero(self) -> None:
        """A ping with no reply at all reports 100% loss and exits non-zero."""
        channel = self.channel(
            lambda sock: [sock.recv(100) for _ in range(2)], datagram=True, timeout=0.1
        )
        console = makeConsole()
        self.assertEqual(echoPing(channel, console, b"", 2, 0.01, 1), 1)
        self.assertIn("2 probes sent, 0 replies, 100.0% loss", output(console))

    def test_deadlineEndsThePing(self) -> None:
        """The overall deadline stops a ping and the statistics still print."""
        channel = self.channel(lambda sock: sock.recv(100), datagram=True, timeout=5)
        channel.deadline = Deadline(0.2, time.monotonic)
        console = makeConsole()
        self.assertEqual(echoPing(channel, console, b"", 1, 0.01, 1), 1)
        self.assertIn("overall deadline of 0.2 s passed", output(console))
        self.assertIn("1 probes sent, 0 replies, 100.0% loss", output(console))


class EchoTests(PeerTestCase):
    def test_largeMessage(self) -> None:
        """A message larger than every buffer on the way is echoed without deadlock."""
        message = b"0123456789abcdef" * 2**18
        channel = self.channel(echoServer)
        console = makeConsole()
        self.assertEqual(echoOnce(channel, console, message), 0)
        self.assertIn(f"{len(message)} bytes from peer in ", output(console))

    def test_printsSafely(self) -> None:
        """The echoed text is printed with control characters escaped."""
        channel = self.channel(echoServer)
        console = makeConsole()
        echoOnce(channel, console, b"hi \x1b[31mred\n")
        self.assertTrue(output(console).startswith("hi \\x1b[31mred\n"))
        self.assertEqual(shown(b"tab\there\xff\r\n\r\x9b"), "tab\there\\xff\r\n\\x0d\\x9b")

    def test_mismatch(self) -> None:
        """An echo that differs from the message is an error naming the byte."""

        def server(sock: socket.socket) -> None:
            sock.sendall(sock.recv(100).replace(b"l", b"L"))

        with self.assertRaises(ClientError) as raised:
            echoOnce(self.channel(server), makeConsole(), b"hello")
        self.assertIn("differs at byte 2: sent b'l', got b'L'", str(raised.exception))

    def test_closedEarly(self) -> None:
        """A server that closes before echoing everything is an error."""
        channel = self.channel(lambda sock: sock.sendall(sock.recv(100)[:2]))
        with self.assertRaises(ClientError) as raised:
            echoOnce(channel, makeConsole(), b"hello")
        self.assertIn("closed the connection", str(raised.exception))

    def test_noDatagramReply(self) -> None:
        """A datagram never answered is an error once the timeout passes."""
        channel = self.channel(lambda sock: sock.recv(100), datagram=True, timeout=0.1)
        with self.assertRaises(ClientError) as raised:
            echoOnce(channel, makeConsole(), b"hello")
        self.assertEqual(str(raised.exception), "no echo reply from peer within 0.1 s")

    def test_datagram(self) -> None:
        """A datagram echo prints the reply and the round trip."""
        channel = self.channel(lambda sock: sock.send(sock.recv(100)), datagram=True)
        console = makeConsole()
        self.assertEqual(echoOnce(channel, console, b""), 0)
        self.assertIn("0 bytes from peer in ", output(console))


class ChargenClientTests(PeerTestCase):
    def test_verifiesAndReports(self) -> None:
        """The chargen client reads exactly the bytes asked for, checked, with throughput."""
        stream = CYCLE[7 * LINE_LENGTH :] + CYCLE * 20

        def server(sock: socket.socket) -> None:
            try:
                sock.sendall(stream)
            except OSError:
                pass  # the client hangs up once it has enough

        console = makeConsole()
        self.assertEqual(readChargen(self.channel(server), console, 100_000), 0)
        self.assertIn("chargen from peer: 100000 bytes in ", output(console))
        self.assertIn("from line 7", output(console))

    def test_corrupted(self) -> None:
        """A corrupted chargen stream is an error naming the offset."""
        stream = bytearray(CYCLE * 2)
        stream[8000] = ord("#")
        channel = self.channel(lambda sock: sock.sendall(bytes(stream)))
        with self.assertRaises(ClientError) as raised:
            readChargen(channel, makeConsole(), len(stream))
        self.assertIn("at byte 8000", str(raised.exception))

    def test_shortStream(self) -> None:
        """A chargen server closing before enough bytes is an error."""
        channel = self.channel(lambda sock: sock.sendall(CYCLE))
        with self.assertRaises(ClientError) as raised:
            readChargen(channel, makeConsole(), 10_000)
        self.assertIn("closed the connection after 7030 bytes", str(raised.exception))

    def test_datagrams(self) -> None:
        """Over UDP each answer is checked as whole lines until enough bytes came."""

        def server(sock: socket.socket) -> None:
            for line in range(0, 18, 6):
                sock.recv(10)
                sock.send((CYCLE * 2)[line * LINE_LENGTH : (line + 6) * LINE_LENGTH])

        console = makeConsole()
        self.assertEqual(readChargen(self.channel(server, datagram=True), console, 1000), 0)
        self.assertIn("1332 bytes in", output(console))
        self.assertIn("in 3 datagrams; pattern OK (18 whole lines)", output(console))


class DiscardTests(PeerTestCase):
    def test_confirmsEverythingRead(self) -> None:
        """Discard sends every byte and reports once the server closed after reading it all."""
        received: list[bytes] = []
        channel = self.channel(lambda sock: received.append(readUntilClosed(sock)))
        console = makeConsole()
        self.assertEqual(sendDiscard(channel, console, 3 * 2**20 + 5), 0)
        channel.close()
        self.assertIn("the server read it all and closed only after we did", output(console))
        self.addCleanup(lambda: self.assertEqual(len(received[0]), 3 * 2**20 + 5))

    def test_closedEarly(self) -> None:
        """A discard server that closes before reading everything is an error."""
        channel = self.channel(lambda sock: sock.recv(1000))
        self.assertRaises(ClientError, sendDiscard, channel, makeConsole(), 20 * 2**20)

    def test_serverWrites(self) -> None:
        """A discard server that writes is an error."""

        def server(sock: socket.socket) -> None:
            sock.sendall(b"surprise")
            readUntilClosed(sock)

        with self.assertRaises(ClientError) as raised:
            sendDiscard(self.channel(server), makeConsole(), 1000)
        self.assertIn("discard never writes", str(raised.exception))

    def test_datagrams(self) -> None:
        """Over UDP the bytes go in datagrams of at most 1024 bytes."""
        sizes: list[int] = []
        channel = self.channel(
            lambda sock: sizes.extend(len(sock.recv(2000)) for _ in range(3)), datagram=True
        )
        console = makeConsole()
        self.assertEqual(sendDiscard(channel, console, 2100), 0)
        self.addCleanup(lambda: self.assertEqual(sizes, [1024, 1024, 52]))
        self.assertIn("in 3 datagrams (delivery is not confirmed over UDP)", output(console))


class LineTests(PeerTestCase):
    def test_sendsLines(self) -> None:
        """Stdin is sent line by line, a last line without newline completed."""
        received: list[bytes] = []
        channel = self.channel(lambda sock: received.append(readUntilClosed(sock)))
        console = makeConsole(b"one\ntwo\r\nthree")
        self.assertEqual(sendLines(channel, console, "logger", False), 0)
        channel.close()
        self.assertIn(
            "logger peer: 3 lines (15 bytes) sent; the server read them all", output(console)
        )
        self.addCleanup(lambda: self.assertEqual(received, [b"one\ntwo\r\nthree\n"]))

    def test_acks(self) -> None:
        """With acks, OK and ERR are counted and any ERR makes the exit status non-zero."""

        def server(sock: socket.socket) -> None:
            for reply in (b"OK\n", b"ERR\n", b"OK\r\n"):
                sock.recv(100)
                sock.sendall(reply)
            readUntilClosed(sock)

        console = makeConsole(b"a\nb\nc\n")
        self.assertEqual(sendLines(self.channel(server), console, "linelogger", True), 1)
        self.assertIn("3 lines (6 bytes) sent; 2 OK, 1 ERR\n", output(console))

    def test_missingAck(self) -> None:
        """A missing ack stops the run at the timeout, reported with the counts."""

        def server(sock: socket.socket) -> None:
            sock.recv(100)
            sock.sendall(b"OK\n")
            readUntilClosed(sock)

        console = makeConsole(b"a\nb\nc\n")
        channel = self.channel(server, timeout=0.2)
        self.assertEqual(sendLines(channel, console, "linelogger", True), 1)
        channel.close()
        self.assertIn("2 lines (4 bytes) sent; 1 OK, 0 ERR, 1 unacknowledged", output(console))
        self.assertEqual(errors(console), "netd client: no ack for line 2 from peer within 0.2 s\n")


class ChannelTests(PeerTestCase):
    def test_receiveTimesOut(self) -> None:
        """Silence is None after the wait, not a hang."""
        channel = self.channel(lambda sock: sock.recv(1), timeout=0.05)
        self.assertIsNone(channel.receive())
        channel.close()

    def test_deadline(self) -> None:
        """Once the overall deadline passed, every wait fails at once."""
        ticks = iter([0.0, 10.0])
        deadline = Deadline(5, lambda: next(ticks))
        with self.assertRaises(DeadlineExpired) as raised:
            deadline.limit(1)
        self.assertEqual(
            str(raised.exception), "gave up: the overall deadline of 5 s passed (--deadline)"
        )
        self.assertEqual(Deadline(None, time.monotonic).limit(3), 3)


class MainTests(SynchronousTestCase):
    def invoke(self, *argv: str, stdin: bytes = b"") -> tuple[int, Console]:
        console = makeConsole(stdin)
        return main(list(argv), console, stdinIsTty=True), console

    def closedPort(self) -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])

    def test_help(self) -> None:
        """--help lists every service and exits 0."""
        status, console = self.invoke("--help")
        self.assertEqual(status, 0)
        for name in ("echo", "discard", "chargen", "daytime", "time", "logger", "linelogger"):
            self.assertIn(name, output(console))

    def test_refused(self) -> None:
        """A refused connection is one line on stderr and exit status 1."""
        port = self.closedPort()
        status, console = self.invoke("echo", f"127.0.0.1:{port}", "--timeout", "2")
        self.assertEqual(status, 1)
        self.assertEqual(
            errors(console),
            f"netd client: cannot connect to 127.0.0.1:{port}: Connection refused\n",
        )

    def test_usageErrors(self) -> None:
        """Bad endpoints and contradicting options are one line and exit status 2."""
        cases = [
            (("echo", "example.com:7"), "not an IP address"),
            (("echo", "127.0.0.1:7", "--ca", "x.pem"), "--ca needs a tls: endpoint"),
            (("echo", "tls:127.0.0.1:7", "--ca", "x.pem", "--insecure"), "contradict"),
            (("echo", "tls:127.0.0.1:7", "--key", "k.pem"), "--key needs --cert"),
            (("linelogger", "udp:127.0.0.1:7", "--ack"), "--ack needs a stream endpoint"),
            (("echo", "127.0.0.1:7", "--interval", "2"), "--interval needs --count"),
        ]
        for argv, message in cases:
            status, console = self.invoke(*argv)
            self.assertEqual(status, 2, argv)
            self.assertEqual(len(errors(console).splitlines()), 1, argv)
            self.assertIn(message, errors(console))

    def test_badArguments(self) -> None:
        """Unknown services and malformed numbers are argparse usage errors, exit status 2."""
        for argv in (
            ("ehco", "127.0.0.1:7"),
            ("echo",),
            ("chargen", "127.0.0.1:7", "--bytes", "lots"),
            ("echo", "127.0.0.1:7", "--timeout", "-1"),
        ):
            status, console = self.invoke(*argv)
            self.assertEqual(status, 2, argv)
            self.assertIn("usage: netd client", errors(console))

    def test_sizes(self) -> None:
        """Byte counts take binary suffixes."""
        self.assertEqual([parseSize(t) for t in ("1", "64K", "1m", "2G")], [1, 65536, 2**20, 2**31])

    def test_missingCa(self) -> None:
        """An unreadable --ca is one line and exit status 1, before any connection."""
        status, console = self.invoke("echo", "tls:127.0.0.1:1", "--ca", "/nonexistent/ca.pem")
        self.assertEqual(status, 1)
        self.assertEqual(
            errors(console),
            "netd client: cannot load /nonexistent/ca.pem: No such file or directory\n",
        )

    def test_insecureWarnsOnce(self) -> None:
        """--insecure warns exactly once."""
        status, console = self.invoke("echo", f"tls:127.0.0.1:{self.closedPort()}", "--insecure")
        self.assertEqual(status, 1)
        self.assertEqual(errors(console).count("not verified"), 1)
