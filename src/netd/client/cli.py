"""
The command line: C{netd client SERVICE ENDPOINT [options]}.

Parses and checks everything before touching the network, connects, hands the channel
to the service's function, and turns every L{ClientError} into one line on stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import sys
from collections.abc import Callable, Sequence

from netd.client.channel import Channel, ClientError, Deadline, TlsSettings, connect, tlsContext
from netd.client.endpoint import DEFAULT_PORTS, BadEndpoint, Endpoint, parseEndpoint
from netd.client.ping import HEADER_LENGTH
from netd.client.services import (
    Console,
    echoOnce,
    echoPing,
    readChargen,
    readDaytime,
    readTime,
    sendDiscard,
    sendLines,
)

__all__ = ["buildParser", "main", "parseSize"]

#: The overall deadline when C{--deadline} is not given, on top of a ping's schedule.
DEFAULT_DEADLINE = 60.0
#: What C{echo} sends when given no message and stdin is a terminal.
DEFAULT_MESSAGE = b"hello from netd client\n"
#: What C{chargen} reads by default: a stream is cheap; datagrams are rate-limited by
#: careful servers (netd answers 100 a second per source), so ask for a few.
DEFAULT_CHARGEN = {"stream": 2**20, "udp": 4096}
DEFAULT_DISCARD = 2**20
#: Seconds between ping probes, as ping's.
DEFAULT_INTERVAL = 1.0
#: The largest UDP payload over IPv4.
MAX_DATAGRAM = 65507
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30}

SERVICES = {
    "echo": "send a message, print the echo and the round trip; --count N pings",
    "discard": "send bytes, print the throughput, confirm the server read them all",
    "chargen": "read bytes, verify RFC 864's pattern, print the throughput",
    "daytime": "print the server's RFC 867 time line and its offset from the local clock",
    "time": "print the server's RFC 868 time and its offset from the local clock",
    "logger": "send stdin line by line",
    "linelogger": "send stdin line by line; --ack waits for OK/ERR per line",
}

EPILOG = """\
ENDPOINT: [tcp:]HOST[:PORT], udp:HOST[:PORT], tls:HOST[:PORT], unix:PATH.
HOST is an IP literal (IPv6 in brackets: [::1]:7) or localhost; no DNS is used.
Without :PORT, netd's default port for the service (echo 10007, discard 10009,
daytime 10013, chargen 10019, time 10037, logger 10514, linelogger 10601);
give :7 and so on for a classic inetd.
Exit status: 0 success, 1 failure (connection, timeout, bad data, loss, ERR), 2 usage."""


def parseSize(text: str) -> int:
    """A byte count with an optional binary suffix: C{1000}, C{64K}, C{1M}, C{2G}."""
    number, unit = text[:-1], text[-1:].upper()
    if unit not in _UNITS or unit == "":
        number, unit = text, ""
    try:
        value = int(number) * _UNITS[unit]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a byte count: {text!r} (like 1000, 64K, 1M)"
        ) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 byte: {text!r}")
    return value


def _seconds(text: str, allowZero: bool = False) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (value >= 0 if allowZero else value > 0) or value == float("inf"):
        kind = "non-negative" if allowZero else "positive"
        raise argparse.ArgumentTypeError(f"not a {kind} number of seconds: {text!r}")
    return value


def _positive(text: str) -> float:
    return _seconds(text)


def _nonNegative(text: str) -> float:
    return _seconds(text, allowZero=True)


def _count(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 10**9:
        raise argparse.ArgumentTypeError(f"not a count in 1-1000000000: {text!r}")
    return int(text)


def _commonOptions() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("endpoint", metavar="ENDPOINT", help="where the server is (see below)")
    limits = common.add_argument_group("time limits")
    limits.add_argument(
        "--timeout",
        type=_positive,
        default=5.0,
        metavar="S",
        help="give up on a connect, a read or a write after S seconds without progress (default 5)",
    )
    limits.add_argument(
        "--deadline",
        type=_positive,
        metavar="S",
        help="give up on the whole run after S seconds (default 60, plus a ping's schedule)",
    )
    tls = common.add_argument_group("TLS (tls: endpoints)")
    tls.add_argument(
        "--ca", metavar="FILE", help="verify the server against these CA certificates only"
    )
    tls.add_argument("--insecure", action="store_true", help="do not verify the server (warns)")
    tls.add_argument("--cert", metavar="FILE", help="a client certificate (PEM)")
    tls.add_argument("--key", metavar="FILE", help="the client certificate's key, if not in --cert")
    return common


def _echoOptions(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--message",
        metavar="TEXT",
        help="what to send; - reads stdin (the default when stdin is not a terminal)",
    )
    parser.add_argument(
        "--count", type=_count, metavar="N", help="send N numbered probes, print ping statistics"
    )
    parser.add_argument(
        "--interval", type=_nonNegative, metavar="S", help="seconds between probes (default 1)"
    )


def _sizeOptions(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--bytes",
        type=parseSize,
        metavar="N",
        help="how much (64K, 1M...; default 1M, chargen over UDP 4K)",
    )


def _ackOptions(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ack", action="store_true", help="wait for the server's OK or ERR after each line"
    )


def _noOptions(parser: argparse.ArgumentParser) -> None:
    pass


#: Each service's own options, beside the common ones.
_SERVICE_OPTIONS: dict[str, Callable[[argparse.ArgumentParser], None]] = {
    "echo": _echoOptions,
    "chargen": _sizeOptions,
    "discard": _sizeOptions,
    "linelogger": _ackOptions,
}


def buildParser() -> argparse.ArgumentParser:
    """The parser: one subcommand per service, sharing the endpoint and limit options."""
    parser = argparse.ArgumentParser(
        prog="netd client",
        description="Talk to a classic small service and check what it sends.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    services = parser.add_subparsers(dest="service", metavar="SERVICE", required=True)
    common = _commonOptions()
    for name, summary in SERVICES.items():
        sub = services.add_parser(
            name,
            parents=[common],
            help=summary,
            description=summary,
            epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        _SERVICE_OPTIONS.get(name, _noOptions)(sub)
    return parser


def _check(args: argparse.Namespace, endpoint: Endpoint) -> None:
    """Combinations the parser cannot express, as usage errors."""
    tlsOptions = [f"--{name}" for name in ("ca", "insecure", "cert", "key") if getattr(args, name)]
    if tlsOptions and endpoint.transport != "tls":
        raise BadEndpoint(f"{', '.join(tlsOptions)} needs a tls: endpoint")
    if args.ca and args.insecure:
        raise BadEndpoint("--ca and --insecure contradict each other")
    if args.key and not args.cert:
        raise BadEndpoint("--key needs --cert")
    if getattr(args, "ack", False) and endpoint.datagram:
        raise BadEndpoint("--ack needs a stream endpoint: the linelogger acks only over streams")
    if args.service == "echo" and args.count is None and args.interval is not None:
        raise BadEndpoint("--interval needs --count")


def _message(args: argparse.Namespace, console: Console, stdinIsTty: bool) -> bytes:
    if args.message == "-" or (args.message is None and not stdinIsTty):
        return console.stdin.read()
    if args.message is None:
        return b"" if args.count else DEFAULT_MESSAGE
    return args.message.encode("utf-8", "surrogateescape")


def _deadline(args: argparse.Namespace) -> float:
    """C{--deadline}, or the default: enough for a ping's whole schedule on top."""
    if args.deadline is not None:
        return float(args.deadline)
    if args.service != "echo" or args.count is None:
        return DEFAULT_DEADLINE
    return DEFAULT_DEADLINE + (args.count - 1) * args.interval


def _serve(args: argparse.Namespace, channel: Channel, console: Console, message: bytes) -> int:
    """Hand the connected channel to the service's function."""
    if args.service == "echo" and args.count:
        tag = secrets.randbits(32)
        return echoPing(channel, console, message, args.count, args.interval, tag)
    if args.service == "echo":
        return echoOnce(channel, console, message)
    if args.service == "time":
        return readTime(channel, console)
    if args.service == "daytime":
        return readDaytime(channel, console)
    if args.service == "chargen":
        size = args.bytes or DEFAULT_CHARGEN["udp" if channel.datagram else "stream"]
        return readChargen(channel, console, size)
    if args.service == "discard":
        return sendDiscard(channel, console, args.bytes or DEFAULT_DISCARD)
    return sendLines(channel, console, args.service, getattr(args, "ack", False))


def _run(args: argparse.Namespace, endpoint: Endpoint, console: Console, stdinIsTty: bool) -> int:
    """Read what to send, set up TLS, connect and run the service."""
    message = _message(args, console, stdinIsTty) if args.service == "echo" else b""
    if endpoint.datagram and len(message) + HEADER_LENGTH > MAX_DATAGRAM:
        raise ClientError(
            f"the message is too long for one datagram (at most {MAX_DATAGRAM - HEADER_LENGTH} bytes)"
        )
    context = None
    if endpoint.transport == "tls":
        if args.insecure:
            console.warn("warning: --insecure: the server's certificate is not verified")
        context = tlsContext(TlsSettings(args.ca, args.insecure, args.cert, args.key))
    deadline = Deadline(_deadline(args), console.monotonic)
    with connect(endpoint, args.timeout, deadline, context) as channel:
        return _serve(args, channel, console, message)


def main(
    argv: Sequence[str] | None = None,
    console: Console | None = None,
    stdinIsTty: bool | None = None,
) -> int:
    """
    Run C{netd client ARGV}; returns the exit status: 0 success, 1 failure, 2 usage.

    @param console: where to read and write (default: the process's stdio and clocks).
    @param stdinIsTty: whether stdin is a terminal (default: ask it).
    """
    console = console or Console()
    if stdinIsTty is None:
        stdinIsTty = sys.stdin.isatty() if console.stdin is sys.stdin.buffer else False
    parser = buildParser()
    try:
        with contextlib.redirect_stdout(console.stdout), contextlib.redirect_stderr(console.stderr):
            args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 2
    try:
        endpoint = parseEndpoint(args.endpoint, DEFAULT_PORTS[args.service])
        _check(args, endpoint)
        if args.service == "echo" and args.interval is None:
            args.interval = DEFAULT_INTERVAL
    except BadEndpoint as e:
        console.warn(str(e))
        return 2
    try:
        return _run(args, endpoint, console, stdinIsTty)
    except ClientError as e:
        console.warn(str(e))
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # stdout went away (| head): silence the interpreter's flush at exit too.
        if console.stdout is sys.stdout:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
