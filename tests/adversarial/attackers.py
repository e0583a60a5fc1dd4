"""
Attackers that run in processes of their own, as modules:

  - C{python -m tests.adversarial.attackers flood ...}: a connection flood from another
    process, so the flooder's CPU and GIL are not the latency prober's; prints JSON.
  - C{python -m tests.adversarial.attackers reflect}: spoofed and loop-prone datagrams
    against netd's and xinetd's UDP services, inside a network namespace that holds only
    loopback (C{unshare --net}, root): a reply to a forged multicast or broadcast source
    can then reach nothing but C{lo}, where a packet socket sees it.  Prints JSON.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from typing import Any

from tests.adversarial.scenarios import LOOP, Netd
from tests.adversarial.xinetd import Xinetd, xinetdCommand, xinetdVersion

__all__ = ["Flooder", "Sniffer", "flood", "inNamespace", "reflect", "udpPacket"]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def flood(
    host: str, port: int, sources: list[str], count: int, rate: float, hold: float
) -> dict[str, Any]:
    """
    Open C{count} connections to C{host:port} at C{rate} per second from C{sources}
    (round robin), keeping every one open; C{hold} seconds after the last, ping them
    all: those that echo are the ones the server still serves.  Says C{flooding} on
    stdout as it starts.
    """
    sys.stdout.write("flooding\n")
    sys.stdout.flush()
    socks: list[socket.socket] = []
    errors: Counter[str] = Counter()
    start = time.monotonic()
    for i in range(count):
        due = start + i / rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        sock = socket.socket()
        sock.settimeout(2)
        try:
            sock.bind((sources[i % len(sources)], 0))
            sock.connect((host, port))
        except OSError as e:
            errors[errno.errorcode.get(e.errno or 0, type(e).__name__)] += 1
            sock.close()
            continue
        socks.append(sock)
    elapsed = time.monotonic() - start
    time.sleep(hold)
    served = 0
    for sock in socks:
        sock.settimeout(1)
        try:
            sock.sendall(b"ping")
            served += sock.recv(4) == b"ping"
        except OSError:
            pass
    for sock in socks:
        sock.close()
    return {
        "attempted": count,
        "connected": len(socks),
        "errors": dict(errors),
        "served": served,
        "seconds": round(elapsed, 3),
    }


class Flooder:
    """
    L{flood} in a child process (its CPU is not the prober's), on C{cpus} if given;
    C{result()} waits for it.
    """

    def __init__(
        self,
        address: tuple[str, int],
        sources: list[str],
        count: int,
        rate: float,
        hold: float,
        cpus: set[int] | None = None,
    ) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.adversarial.attackers",
                "flood",
                "--host",
                address[0],
                "--port",
                str(address[1]),
                "--sources",
                ",".join(sources),
                "--count",
                str(count),
                "--rate",
                str(rate),
                "--hold",
                str(hold),
            ],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
        )
        assert self.process.stdout is not None
        started = self.process.stdout.readline()
        if started != "flooding\n":
            self.kill()
            raise AssertionError(f"the flooder did not start: {started!r}")

    def running(self) -> bool:
        return self.process.poll() is None

    def result(self, timeout: float = 120) -> dict[str, Any]:
        out, _ = self.process.communicate(timeout=timeout)
        return dict(json.loads(out))

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


# Spoofed datagrams (raw sockets), for the reflection helper


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def udpPacket(src: str, sport: int, dst: str, dport: int, payload: bytes) -> bytes:
    """An IPv4 packet carrying one UDP datagram, for a raw socket with IP_HDRINCL."""
    length = 8 + len(payload)
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 17, length)
    header = struct.pack("!HHHH", sport, dport, length, 0)
    check = _checksum(pseudo + header + payload) or 0xFFFF
    udp = struct.pack("!HHHH", sport, dport, length, check) + payload
    ip = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + length,
        0x4E44,
        0,
        64,
        socket.IPPROTO_UDP,
        0,
        socket.inet_aton(src),
        socket.inet_aton(dst),
    )
    return ip + udp


class Sniffer:
    """
    Every UDP/IPv4 packet leaving a server port on C{lo} (a packet socket, root only):
    C{replies(port)} lists C{(destination, destination port, payload size)}.
    """

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
        self.sock.bind(("lo", 0))
        self.sock.setblocking(False)
        self.seen: list[tuple[str, int, str, int, int]] = []

    def collect(self) -> None:
        while True:
            try:
                frame = self.sock.recv(70000)
            except BlockingIOError:
                return
            ip = frame[14:]
            if len(ip) < 28 or ip[9] != socket.IPPROTO_UDP:
                continue
            headerLength = (ip[0] & 0x0F) * 4
            sport, dport, length = struct.unpack("!HHH", ip[headerLength : headerLength + 6])
            src, dst = socket.inet_ntoa(ip[12:16]), socket.inet_ntoa(ip[16:20])
            self.seen.append((src, sport, dst, dport, length - 8))

    def replies(self, port: int) -> list[tuple[str, int, int]]:
        self.collect()
        return [(dst, dport, size) for _, sport, dst, dport, size in self.seen if sport == port]

    def requests(self, port: int) -> list[tuple[str, int]]:
        """The C{(source, source port)} of every datagram seen going to C{port}."""
        self.collect()
        return [(src, sport) for src, sport, _, dport, _ in self.seen if dport == port]

    def close(self) -> None:
        self.sock.close()


#: The sources a reflection or loop attack would use: (label, address, port, how sent).
#: "socket" datagrams come from an ordinary socket bound to that port (root may bind
#: below 1024); "raw" ones are written with IP_HDRINCL, the source forged.
REFLECTION_SOURCES = (
    ("port 7 (echo)", "127.0.0.1", 7, "socket"),
    ("port 19 (chargen)", "127.0.0.1", 19, "socket"),
    ("port 37 (time)", "127.0.0.1", 37, "socket"),
    ("port 53 (DNS)", "127.0.0.1", 53, "socket"),
    ("port 123 (NTP)", "127.0.0.1", 123, "socket"),
    ("port 1023", "127.0.0.1", 1023, "socket"),
    ("port 2049 (NFS)", "127.0.0.1", 2049, "socket"),
    ("forged 127.0.0.1:19", "127.0.0.1", 19, "raw"),
    ("forged 255.255.255.255", "255.255.255.255", 40000, "raw"),
    ("forged 224.0.0.1", "224.0.0.1", 40000, "raw"),
    ("forged 0.0.0.0", "0.0.0.0", 40000, "raw"),
    ("client port 40000 (control)", "127.0.0.1", 40000, "socket"),
)

#: The UDP services both netd and xinetd have (xinetd's internal ones).
REFLECTED_SERVICES = ("echo", "daytime", "time", "chargen")


def sendFrom(label: str, host: str, port: int, how: str, target: tuple[str, int]) -> str:
    """Send one datagram to C{target} from C{host:port}; return how it really left."""
    payload = b"loop?"
    if how == "socket":
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.sendto(payload, target)
        return f"{host}:{port}"
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW) as raw:
        raw.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
        raw.sendto(udpPacket(host, port, target[0], target[1], payload), (target[0], 0))
    return f"{host}:{port}"


def reflectAgainst(
    name: str, targets: dict[str, tuple[str, int]], sniffer: Sniffer, settle: float = 0.15
) -> list[dict[str, Any]]:
    """
    One datagram from every source of L{REFLECTION_SOURCES} to every target service, one
    at a time (xinetd drops datagrams that queue while it answers one); the replies are
    seen on the wire, wherever they went.
    """
    rows = []
    for service, target in targets.items():
        for label, host, port, how in REFLECTION_SOURCES:
            before = len(sniffer.replies(target[1]))
            requestsBefore = len(sniffer.requests(target[1]))
            sendFrom(label, host, port, how, target)
            deadline = time.monotonic() + settle
            while time.monotonic() < deadline:
                time.sleep(0.01)
                if len(sniffer.replies(target[1])) > before:
                    break
            replies = sniffer.replies(target[1])[before:]
            arrived = sniffer.requests(target[1])[requestsBefore:]
            rows.append(
                {
                    "server": name,
                    "service": service,
                    "source": label,
                    "replies": len(replies),
                    "bytes": sum(size for _, _, size in replies),
                    "to": sorted({f"{dst}:{dport}" for dst, dport, _ in replies}),
                    "onWire": sorted({f"{src}:{sport}" for src, sport in arrived}),
                }
            )
    return rows


NETD_REFLECT_CONFIG = """\
udp-reply-budget = 0
admin = "tcp:0:interface=127.0.0.1"
[defaults]
udp-rate = 0
[services.echo]
listen = ["udp:0:interface=127.0.0.1"]
[services.daytime]
listen = ["udp:0:interface=127.0.0.1"]
[services.time]
listen = ["udp:0:interface=127.0.0.1"]
[services.chargen]
listen = ["udp:0:interface=127.0.0.1"]
allow-amplification = true
"""


def reflect() -> dict[str, Any]:
    """
    In a network namespace holding only loopback (with a default route to it, so a
    reply to any address stays on C{lo} where the sniffer sees it): every reflection
    source against netd's and xinetd's UDP echo, daytime, time and chargen.  netd runs
    with its per-source and global rates off, so only the source checks can stop it.
    """
    for command in (
        ["ip", "link", "set", "lo", "up"],
        ["ip", "route", "add", "default", "dev", "lo"],
    ):
        subprocess.run(command, check=True)
    sniffer = Sniffer()
    rows: list[dict[str, Any]] = []
    directory = tempfile.mkdtemp(prefix="netd-adv-reflect-")
    config = os.path.join(directory, "netd.toml")
    with open(config, "w") as f:
        f.write(NETD_REFLECT_CONFIG)
    netd = Netd(["--config", config], expect=len(REFLECTED_SERVICES) + 1)
    try:
        targets = {s: netd.address(s, "UDP") for s in REFLECTED_SERVICES}
        rows += reflectAgainst("netd", targets, sniffer)
        dropped = netd.metrics().byLabel("netd_datagrams_dropped_total", "reason")
    finally:
        netd.stop()
        shutil.rmtree(directory, ignore_errors=True)
    xinetd: str | None = None
    if xinetdCommand() is not None:
        peer = Xinetd([(s, "dgram") for s in REFLECTED_SERVICES])
        try:
            targets = {s: (LOOP, peer.port(s, "dgram")) for s in REFLECTED_SERVICES}
            rows += reflectAgainst("xinetd", targets, sniffer)
        finally:
            peer.stop()
        xinetd = xinetdVersion()
    sniffer.close()
    return {"rows": rows, "xinetd": xinetd, "netdDropped": dropped}


def inNamespace(argv: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run this module with C{argv} in a new network namespace (C{unshare -n}, root)."""
    return subprocess.run(
        ["unshare", "--net", sys.executable, "-m", "tests.adversarial.attackers", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", required=True)
    flooding = commands.add_parser("flood", help="a connection flood; prints JSON figures")
    flooding.add_argument("--host", default=LOOP)
    flooding.add_argument("--port", type=int, required=True)
    flooding.add_argument("--sources", default="127.0.0.2")
    flooding.add_argument("--count", type=int, required=True)
    flooding.add_argument("--rate", type=float, required=True)
    flooding.add_argument("--hold", type=float, default=0.5)
    commands.add_parser("reflect", help="(in a network namespace) spoofed datagrams; JSON")
    args = parser.parse_args(argv)
    if args.command == "flood":
        result = flood(
            args.host, args.port, args.sources.split(","), args.count, args.rate, args.hold
        )
    else:
        result = reflect()
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
