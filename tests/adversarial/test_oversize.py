"""
Oversized input against the real daemon: a 1 GiB line at the line logger, 1 GiB
streams without a newline at echo, discard and the logger, and 64 KiB datagrams at
every UDP service.  Memory is sampled throughout, and another client is served
meanwhile.  (CI mode: 256 MiB streams.)
"""

from __future__ import annotations

import contextlib
import errno
import socket
import threading
import time
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from tests.adversarial.scenarios import (
    EchoProbe,
    GiB,
    MiB,
    Netd,
    PeakMemory,
    configFile,
    connect,
    record,
    serve,
    size,
    source,
    waitUntil,
)

#: Bytes in each stream.
STREAM = size(256 * MiB, 1 * GiB)
CHUNK = 1 * MiB
#: The line logger's default longest line.
MAX_LINE = 16384
#: The largest UDP payloads over IPv4 and IPv6 (65535 less the headers).
DATAGRAM_V4 = 65507
DATAGRAM_V6 = 65527
#: netd's memory may grow by at most this much during any one of these.
GROWTH_MiB = 24
QUIET = r"\[netd\.protocols\.logger\.\w+#info\]"

CONFIG = """\
admin = "tcp:0:interface=127.0.0.1"
[services.echo]
listen = ["tcp:0:interface=127.0.0.1", "udp:0:interface=127.0.0.1"{echo6}]
[services.discard]
listen = ["tcp:0:interface=127.0.0.1", "udp:0:interface=127.0.0.1"]
[services.logger]
listen = ["tcp:0:interface=127.0.0.1", "udp:0:interface=127.0.0.1"]
[services.linelogger]
listen = ["tcp:0:interface=127.0.0.1", "udp:0:interface=127.0.0.1"]
[services.daytime]
listen = ["udp:0:interface=127.0.0.1"]
[services.time]
listen = ["udp:0:interface=127.0.0.1"]
"""


def hasIPv6() -> bool:
    try:
        socket.create_server(("::1", 0), family=socket.AF_INET6).close()
    except OSError:
        return False
    return True


def stream(
    address: tuple[str, int], total: int, host: str, read: bool = False, newline: bool = False
) -> dict[str, Any]:
    """
    Send C{total} bytes of C{a} (then a newline, if C{newline}) in 1 MiB chunks from the
    same buffer, reading what comes back in a thread if C{read}; stop at the first error.
    """
    sock = connect(address, host, timeout=60)
    payload = memoryview(b"a" * CHUNK)
    echoed = [0]

    def drain() -> None:
        try:
            while data := sock.recv(4 * CHUNK):
                echoed[0] += len(data)
        except OSError:
            pass

    reader = threading.Thread(target=drain, daemon=True)
    if read:
        reader.start()
    sent, failure = 0, None
    start = time.monotonic()
    try:
        while sent < total:
            sent += sock.send(payload[: min(CHUNK, total - sent)])
        if newline:
            sock.sendall(b"\n")
        sock.shutdown(socket.SHUT_WR)
    except OSError as e:
        failure = errno.errorcode.get(e.errno or 0, str(e))
    if read:
        reader.join(120)
    elapsed = time.monotonic() - start
    sock.close()
    return {
        "sent": sent,
        "echoed": echoed[0],
        "error": failure,
        "seconds": round(elapsed, 2),
        "MB/s": round(sent / elapsed / 1e6, 1) if elapsed else 0,
    }


def udpAddress(daemon: Netd, service: str, host: str) -> tuple[str, int]:
    """Where C{service} listens for UDP on C{host} (one service may listen on several)."""
    shown = f"[{host}]" if ":" in host else host
    daemon.logged(f"] {service} listening on UDP {shown}:")
    [line] = [line for line in daemon.lines if f"] {service} listening on UDP {shown}:" in line]
    return host, int(line.rpartition(":")[2])


def datagram(address: tuple[str, int], size: int, family: int = socket.AF_INET) -> int | None:
    """Send one C{size}-byte datagram; the size of the reply, or C{None} for none."""
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sock.settimeout(0.5)
        sock.bind((address[0], 0))
        sock.sendto(b"d" * size, address)
        try:
            return len(sock.recv(1 << 17))
        except TimeoutError:
            return None


class OversizeTests(SynchronousTestCase):
    def test_hugeLinesStreamsAndDatagrams(self) -> None:
        """A 1 GiB line is cut at the line limit, 1 GiB streams are served in bounded memory, 64 KiB datagrams are handled by the rules, and another client is served throughout."""
        ipv6 = hasIPv6()
        echo6 = ', "udp:0:interface=\\\\:\\\\:1"' if ipv6 else ""
        daemon = serve(
            self,
            ["--config", configFile(self, CONFIG.format(echo6=echo6))],
            expect=11,  # (service, transport) pairs: echo's two UDP listeners are one
            quiet=QUIET,
        )
        probe = EchoProbe(daemon.address("echo"), source(9))
        probe.start()
        rows: dict[str, dict[str, Any]] = {}
        host = source(1)
        cases = (
            ("linelogger: one line", "linelogger", False, True),
            ("echo", "echo", True, False),
            ("discard", "discard", False, False),
            ("logger", "logger", False, False),
        )
        for label, service, read, newline in cases:
            with PeakMemory(daemon.process.pid) as memory:
                row = stream(daemon.address(service), STREAM, host, read=read, newline=newline)
            row["rss growth MiB"] = memory.growthMiB
            rows[label] = row

        def received() -> dict[str, int]:
            metrics = daemon.metrics()
            return {
                service: int(metrics.value("netd_received_bytes_total", service=service))
                for service in ("echo", "discard", "logger", "linelogger")
            }

        # The client is done once the kernel has the bytes; netd may still be reading.
        with contextlib.suppress(AssertionError):
            waitUntil(lambda: min(received()[s] for s in ("discard", "logger")) >= STREAM, 20, "")
        counted = received()
        tooLong = daemon.logged("over the 16384-byte limit")
        with PeakMemory(daemon.process.pid) as memory:
            grams = {
                name: datagram(udpAddress(daemon, name, "127.0.0.1"), DATAGRAM_V4)
                for name in ("echo", "discard", "logger", "linelogger", "daytime", "time")
            }
            if ipv6:
                grams["echo over ::1"] = datagram(
                    udpAddress(daemon, "echo", "::1"), DATAGRAM_V6, socket.AF_INET6
                )
        datagramGrowth = memory.growthMiB
        datagramTooLong = daemon.count("line of 65507+ bytes")
        probed = probe.finish()
        line = rows["linelogger: one line"]
        record(
            self,
            "oversize",
            thrown=(
                f"a {STREAM / GiB:g} GiB line (no newline until the end) at the line logger;"
                f" {STREAM / GiB:g} GiB streams without a newline at echo (read back), discard"
                f" and the logger; one {DATAGRAM_V4:,}-byte datagram (the IPv4 maximum) at each"
                f" UDP service{f' and {DATAGRAM_V6:,} bytes over ::1 at echo' if ipv6 else ''};"
                " another client does echo round trips all along"
            ),
            did=(
                "the line logger logged the line as over-long and dropped the connection after"
                f" reading {counted['linelogger'] / 1024:.0f} KiB (one read; the limit is 16 KiB);"
                f" the client got {line['error']} once {line['sent'] / MiB:.1f} MiB sat in kernel"
                f" buffers; echo returned {rows['echo']['echoed'] / MiB:.0f} of"
                f" {rows['echo']['sent'] / MiB:.0f} MiB; discard and the logger read it all;"
                " peak RSS growth per stream "
                + ", ".join(f"{k} +{v['rss growth MiB']} MiB" for k, v in rows.items())
                + f"; datagrams: echo answered {grams['echo']:,} bytes, the line logger refused"
                f" the over-long one ({datagramTooLong} logged), the others answered or dropped"
                f" per protocol (+{datagramGrowth} MiB); the other client's p99"
                f" {probed['p99 ms']} ms over {probed['round trips']:,} round trips"
            ),
            figures={
                "streams": rows,
                "received by netd": counted,
                "datagram replies": grams,
                "datagram rss growth MiB": datagramGrowth,
                "probe": probed,
            },
        )
        self.assertIn("linelogger", tooLong)
        self.assertLess(counted["linelogger"], MAX_LINE + 2 * 65536 + 4096)
        self.assertLess(line["sent"], STREAM)
        self.assertIsNotNone(line["error"])
        self.assertEqual(rows["echo"]["echoed"], STREAM)
        for label in ("echo", "discard", "logger"):
            self.assertEqual(rows[label]["sent"], STREAM, label)
            self.assertIsNone(rows[label]["error"], label)
        self.assertEqual(counted["discard"], STREAM)
        self.assertEqual(counted["logger"], STREAM)
        for label, row in rows.items():
            self.assertLess(row["rss growth MiB"], GROWTH_MiB, label)
        self.assertEqual(grams["echo"], DATAGRAM_V4)
        if ipv6:
            self.assertEqual(grams["echo over ::1"], DATAGRAM_V6)
        self.assertEqual((grams["daytime"], grams["time"]), (26, 4))
        self.assertEqual((grams["discard"], grams["logger"], grams["linelogger"]), (None,) * 3)
        self.assertEqual(datagramTooLong, 1)
        self.assertLess(datagramGrowth, GROWTH_MiB)
        self.assertIsNone(probed["error"])
        self.assertGreater(probed["round trips"], 10)
