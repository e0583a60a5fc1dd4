"""
One connection to a server, with every wait bounded.

Every failure the network can produce becomes a L{ClientError} carrying one line for the
user (C{cannot connect to 127.0.0.1:7: Connection refused}): the command line prints it
and exits non-zero, never a traceback.  Each wait is bounded twice: by the per-step
C{timeout} (connect, each read, each write) and by an overall L{Deadline}.
"""

from __future__ import annotations

import selectors
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from netd.client.endpoint import Endpoint

__all__ = [
    "Channel",
    "ClientError",
    "Deadline",
    "DeadlineExpired",
    "Refused",
    "TlsSettings",
    "connect",
    "seconds",
    "tlsContext",
]

_T = TypeVar("_T")

#: The most read at once, and the largest datagram accepted.
RECEIVE_SIZE = 65536
#: Bytes handed to one C{send} while interleaving sends and reads.
SEND_CHUNK = 65536
#: Exceptions meaning "not now" on a non-blocking (TLS) socket.
_WOULD_BLOCK = (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


class ClientError(Exception):
    """A failure to report as one line on stderr, with a non-zero exit status."""


class DeadlineExpired(ClientError):
    """The overall deadline passed."""


class Refused(ClientError):
    """
    A datagram was answered by ICMP port unreachable: nothing listens there.

    Kept apart so that a ping counts it as a lost probe rather than giving up.
    """


def seconds(value: float) -> str:
    """A duration as the user typed it: C{5 s}, C{0.25 s}."""
    return f"{value:g} s"


class Deadline:
    """
    The overall limit on a run; C{None} seconds means none.

    Every wait asks L{limit} for its bound, so no loop, however it is written, can
    outlive the deadline.
    """

    def __init__(self, seconds: float | None, monotonic: Callable[[], float]) -> None:
        self.seconds = seconds
        self.monotonic = monotonic
        self.expires = None if seconds is None else monotonic() + seconds

    def limit(self, wait: float) -> float:
        """
        C{wait}, shortened to what is left of the deadline.

        @raise DeadlineExpired: if nothing is left.
        """
        if self.expires is None:
            return wait
        left = self.expires - self.monotonic()
        if left <= 0:
            assert self.seconds is not None
            raise DeadlineExpired(
                f"gave up: the overall deadline of {seconds(self.seconds)} passed (--deadline)"
            )
        return min(wait, left)


@dataclass(frozen=True)
class TlsSettings:
    """The TLS options: C{ca} to verify against (else the system's), or C{insecure}."""

    ca: str | None = None
    insecure: bool = False
    cert: str | None = None
    key: str | None = None


def tlsContext(settings: TlsSettings) -> ssl.SSLContext:
    """
    A client context that verifies the server against C{settings.ca} (only it), or the
    system's CAs, or nothing with C{insecure}.

    @raise ClientError: if a file cannot be read or loaded.
    """
    if settings.insecure:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context = _load(settings.ca, lambda: ssl.create_default_context(cafile=settings.ca))
    if settings.cert:
        files = f"{settings.cert} (key {settings.key})" if settings.key else settings.cert
        _load(files, lambda: context.load_cert_chain(settings.cert or "", settings.key))
    return context


def _load(path: str | None, load: Callable[[], _T]) -> _T:
    """Run C{load}, turning a missing or malformed C{path} into one line."""
    try:
        return load()
    except ssl.SSLError as e:
        raise ClientError(f"cannot load {path}: {e.reason or e}") from None
    except OSError as e:
        raise ClientError(f"cannot load {path}: {e.strerror or e}") from None


def connect(
    endpoint: Endpoint,
    timeout: float,
    deadline: Deadline,
    tls: ssl.SSLContext | None = None,
) -> Channel:
    """
    Connect to C{endpoint} (a connected UDP socket for C{udp:}, so ICMP errors reach
    us and datagrams from anyone else do not), completing the TLS handshake for C{tls:}.

    @raise ClientError: refused, unreachable, timed out, or the handshake failed.
    """
    started = deadline.monotonic()
    kind = socket.SOCK_DGRAM if endpoint.datagram else socket.SOCK_STREAM
    sock = socket.socket(endpoint.family, kind)
    try:
        sock.settimeout(deadline.limit(timeout))
        if endpoint.transport in ("tcp", "tls"):
            # Small probes must leave at once: Nagle's wait would be measured as latency.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.connect(endpoint.address)
    except TimeoutError:
        sock.close()
        raise ClientError(
            f"cannot connect to {endpoint}: timed out after {seconds(timeout)}"
        ) from None
    except OSError as e:
        sock.close()
        raise ClientError(f"cannot connect to {endpoint}: {e.strerror or e}") from None
    if endpoint.transport == "tls":
        sock = _handshake(sock, endpoint, tls or ssl.create_default_context(), timeout)
    return Channel(sock, str(endpoint), endpoint.datagram, timeout, deadline, started)


def _handshake(
    sock: socket.socket, endpoint: Endpoint, context: ssl.SSLContext, timeout: float
) -> ssl.SSLSocket:
    what = f"TLS handshake with {endpoint}"
    try:
        return context.wrap_socket(sock, server_hostname=endpoint.serverName)
    except ssl.SSLCertVerificationError as e:
        reason = f"certificate verify failed: {e.verify_message}"
    except ssl.SSLError as e:
        reason = e.reason or str(e)
    except TimeoutError:
        reason = f"timed out after {seconds(timeout)}"
    except OSError as e:
        reason = e.strerror or "the server closed the connection"
    sock.close()
    raise ClientError(f"{what} failed: {reason}")


class Channel:
    """
    A connected socket whose every wait is bounded and whose every failure is a
    L{ClientError} naming the peer.

    @ivar peer: the server as printed (C{127.0.0.1:7}, C{[::1]:7}, C{unix:/path}).
    @ivar datagram: whether each send and receive is one datagram.
    @ivar timeout: the per-step bound, in seconds.
    @ivar started: when connecting began, on the deadline's clock: a server that speaks
        first (time, daytime) may answer from then on.
    """

    def __init__(
        self,
        sock: socket.socket,
        peer: str,
        datagram: bool,
        timeout: float,
        deadline: Deadline,
        started: float | None = None,
    ) -> None:
        self.sock = sock
        self.started = deadline.monotonic() if started is None else started
        self.peer = peer
        self.datagram = datagram
        self.timeout = timeout
        self.deadline = deadline

    def __enter__(self) -> Channel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def _fail(self, error: OSError) -> ClientError:
        if isinstance(error, ConnectionRefusedError) and self.datagram:
            return Refused(
                f"{self.peer} refused the datagram: Connection refused (port unreachable)"
            )
        if isinstance(error, ssl.SSLError):
            return ClientError(f"TLS error with {self.peer}: {error.reason or error}")
        return ClientError(f"connection to {self.peer} lost: {error.strerror or error}")

    def send(self, data: bytes) -> None:
        """
        Send C{data} (one datagram, or all of it on a stream).

        @raise ClientError: if the server stops reading for C{timeout}, or goes away.
        """
        try:
            self.sock.settimeout(self.deadline.limit(self.timeout))
            if self.datagram:
                self.sock.send(data)
            else:
                self.sock.sendall(data)
        except TimeoutError:
            raise ClientError(
                f"{self.peer} stopped reading: no progress for {seconds(self.timeout)}"
            ) from None
        except OSError as e:
            raise self._fail(e) from None

    def receive(self, wait: float | None = None, size: int = RECEIVE_SIZE) -> bytes | None:
        """
        The next datagram, or the next bytes of the stream (C{b""} at its end); C{None}
        if nothing came within C{wait} (default: C{timeout}).

        @raise Refused: for a datagram answered by ICMP port unreachable.
        @raise ClientError: if the connection breaks or the deadline passes.
        """
        wait = self.timeout if wait is None else wait
        try:
            self.sock.settimeout(max(self.deadline.limit(wait), 0.001))
            return self.sock.recv(size)
        except TimeoutError:
            return None
        except OSError as e:
            raise self._fail(e) from None

    def expect(self, what: str, size: int = RECEIVE_SIZE) -> bytes:
        """
        Like L{receive}, but silence is an error naming C{what} was awaited.

        @raise ClientError: if nothing came within C{timeout}.
        """
        try:
            data = self.receive(size=size)
        except Refused as e:
            raise ClientError(f"no {what} from {self.peer}: Connection refused") from e
        if data is None:
            raise ClientError(f"no {what} from {self.peer} within {seconds(self.timeout)}")
        return data

    def readToEnd(self, what: str, limit: int) -> bytes:
        """
        Everything the server sends before it closes the stream, or one datagram.

        @raise ClientError: if it sends more than C{limit} bytes, or stalls.
        """
        if self.datagram:
            return self.expect(what)
        received = bytearray()
        while data := self.expect(what):
            received += data
            if len(received) > limit:
                raise ClientError(f"{self.peer} sent more than {limit} bytes of {what}")
        return bytes(received)

    def exchange(self, data: bytes, sink: Callable[[bytes], None]) -> None:
        """
        Send all of C{data} on a stream while handing whatever arrives meanwhile to
        C{sink}: a server that answers as it reads (echo) would otherwise stop reading
        once its replies fill our receive buffer, and both sides would wait forever.

        @raise ClientError: if the server closes the stream, or nothing moves either way
            for C{timeout}.
        """
        view = memoryview(data)
        sent = 0
        with selectors.DefaultSelector() as selector:
            selector.register(self.sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
            self.sock.setblocking(False)
            try:
                while sent < len(view):
                    if not selector.select(self.deadline.limit(self.timeout)):
                        raise ClientError(
                            f"{self.peer} stalled: no progress for {seconds(self.timeout)}"
                        )
                    try:
                        sent += self.sock.send(view[sent : sent + SEND_CHUNK])
                    except _WOULD_BLOCK:
                        pass
                    self._drain(sink, finished=sent == len(view))
            except OSError as e:
                raise self._fail(e) from None
            finally:
                self.sock.setblocking(True)

    def _drain(self, sink: Callable[[bytes], None], finished: bool) -> None:
        """
        Read until the socket (and TLS's own buffer) has nothing more.  The end of the
        stream is an error only while we still have bytes to send; after that, the
        caller's next read meets it again.
        """
        while True:
            try:
                data = self.sock.recv(RECEIVE_SIZE)
            except _WOULD_BLOCK:
                return
            if not data and finished:
                return
            if not data:
                raise ClientError(f"{self.peer} closed the connection while we were still sending")
            sink(data)

    def finish(self) -> bytes:
        """
        End our side of a stream and wait for the server to close its side, returning
        anything it still sent.

        A server that closes only after reading our end-of-stream has read everything we
        sent; one that closed early with our data unread makes its kernel reset the
        connection instead.  Over TLS this is the close_notify exchange.

        @raise ClientError: on a reset, or if the server does not close within C{timeout}.
        """
        try:
            if isinstance(self.sock, ssl.SSLSocket):
                self.sock.settimeout(self.deadline.limit(self.timeout))
                self.sock = self.sock.unwrap()
                return b""
            self.sock.shutdown(socket.SHUT_WR)
        except TimeoutError:
            raise ClientError(
                f"{self.peer} did not close within {seconds(self.timeout)} of our end of data"
            ) from None
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            return b""
        except OSError as e:
            raise self._fail(e) from None
        trailing = bytearray()
        while data := self.receive():
            trailing += data
        if data is None:
            raise ClientError(
                f"{self.peer} did not close within {seconds(self.timeout)} of our end of data"
            )
        return bytes(trailing)
