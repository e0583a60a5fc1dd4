"""
TLS against the real daemon on loopback: C{openssl s_client} and Python's C{ssl} as
clients, with certificates generated for the test (L{tests.test_tls.writePKI}).
"""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import socket
import ssl
import subprocess
import time

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests.integration.daemon import Daemon
from tests.test_tls import writePKI

LINE = b"sealed line\n"
#: Lets the client offer TLS 1.0/1.1 and old ciphers (Debian's OpenSSL refuses them at
#: its default security level), so any refusal seen is the server's.
ANYTHING = "DEFAULT:@SECLEVEL=0"


def sClient(address: tuple[str, int], *options: str, timeout: float = 10.0) -> tuple[bytes, str]:
    """
    Send L{LINE} through C{openssl s_client -quiet} and read until it comes back, the
    connection ends, or C{timeout}; return what came back and what s_client reported.
    """
    host, port = address
    process = subprocess.Popen(
        ["openssl", "s_client", "-connect", f"{host}:{port}", "-quiet", *options],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    stdin, stdout = process.stdin, process.stdout
    assert stdin is not None and stdout is not None
    try:
        stdin.write(LINE)
        stdin.close()  # -quiet ignores the end of input: it keeps reading
        process.stdin = None  # so communicate() leaves it alone
        received = _readUntil(stdout, len(LINE), time.monotonic() + timeout)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=timeout)
    return received, stderr.decode("utf-8", "replace")


def _readUntil(stream: object, size: int, deadline: float) -> bytes:
    received = b""
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)  # type: ignore[arg-type]
        while len(received) < size and (remaining := deadline - time.monotonic()) > 0:
            if not selector.select(remaining):
                break
            chunk = os.read(stream.fileno(), 4096)  # type: ignore[attr-defined]
            if not chunk:
                break
            received += chunk
    return received


def pyEcho(
    address: tuple[str, int],
    context: ssl.SSLContext,
    source: str | None = None,
    timeout: float = 5.0,
) -> bytes | Exception:
    """Echo L{LINE} over TLS with Python's C{ssl}: what came back, or why it failed."""
    try:
        sock = socket.create_connection(
            address, timeout, source_address=(source, 0) if source else None
        )
        with context.wrap_socket(sock, server_hostname="localhost") as tls:
            tls.sendall(LINE)
            received = b""
            while len(received) < len(LINE):
                chunk = tls.recv(len(LINE) - len(received))
                if not chunk:
                    break
                received += chunk
            return received
    except (OSError, ssl.SSLError) as e:
        return e


class TLSTestCase(SynchronousTestCase):
    """Credentials, and a daemon serving echo over TLS on loopback."""

    def setUp(self) -> None:
        if shutil.which("openssl") is None:
            raise SkipTest("the openssl command is not installed (run `make tools`)")
        self.paths = writePKI(os.path.abspath(self.mktemp()))
        self.listen = (
            f"ssl:0:interface=127.0.0.1:privateKey={self.paths['server.key']}"
            f":certKey={self.paths['server.pem']}"
        )

    def serve(self, *args: str) -> tuple[str, int]:
        daemon = Daemon(["--proto", "echo", "--listen", self.listen, *args], expect=1)
        self.addCleanup(daemon.stop)
        return daemon.address("echo")

    def context(self, cert: str | None = None) -> ssl.SSLContext:
        """A client trusting the test CA, presenting C{cert} if given."""
        context = ssl.create_default_context(cafile=self.paths["ca.pem"])
        if cert is not None:
            context.load_cert_chain(self.paths[f"{cert}.pem"], self.paths[f"{cert}.key"])
        return context

    def assertServed(self, address: tuple[str, int], *options: str) -> None:
        received, report = sClient(address, "-CAfile", self.paths["ca.pem"], *options)
        self.assertEqual(received, LINE, report)

    def assertRefused(self, address: tuple[str, int], alert: str, *options: str) -> None:
        """s_client gets no echo, and the reason is the server's alert C{alert}."""
        received, report = sClient(address, "-CAfile", self.paths["ca.pem"], *options)
        self.assertEqual(received, b"", report)
        self.assertIn(alert, report)


class ServingTests(TLSTestCase):
    def test_echoWithOpenSSL(self) -> None:
        """openssl s_client verifies the server against the test CA and gets its line back."""
        self.assertServed(self.serve(), "-verify_return_error")

    def test_echoWithPython(self) -> None:
        """Python's ssl client verifies the server and gets its line back over TLS 1.3."""
        address = self.serve()
        self.assertEqual(pyEcho(address, self.context()), LINE)
        with socket.create_connection(address, 5.0) as sock:
            with self.context().wrap_socket(sock, server_hostname="localhost") as tls:
                self.assertEqual(tls.version(), "TLSv1.3")

    def test_oldVersionsRefused(self) -> None:
        """TLS 1.0 and 1.1 are refused by the server, while TLS 1.2 with the same client options is served."""
        address = self.serve()
        for version in ("-tls1", "-tls1_1"):
            self.assertRefused(address, "alert protocol version", version, "-cipher", ANYTHING)
        self.assertServed(address, "-tls1_2", "-cipher", ANYTHING)

    def test_weakCiphersRefused(self) -> None:
        """TLS 1.2 with RSA key exchange, or ECDHE without AEAD, finds no shared cipher."""
        address = self.serve()
        for weak in ("AES128-SHA", "AES256-GCM-SHA384", "ECDHE-RSA-AES128-SHA"):
            self.assertRefused(
                address, "alert handshake failure", "-tls1_2", "-cipher", f"{weak}:@SECLEVEL=0"
            )
        self.assertServed(address, "-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256")


class ClientCertificateTests(TLSTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.address = self.serve("--tls-client-ca", self.paths["ca.pem"])

    def test_withoutCertificateRefused(self) -> None:
        """A client without a certificate is refused, over TLS 1.3 and 1.2."""
        self.assertRefused(self.address, "alert certificate required")
        self.assertRefused(self.address, "alert handshake failure", "-tls1_2")
        self.assertIsInstance(pyEcho(self.address, self.context()), ssl.SSLError)

    def test_otherCARefused(self) -> None:
        """A client certificate from another CA is refused."""
        stranger = ["-cert", self.paths["stranger.pem"], "-key", self.paths["stranger.key"]]
        self.assertRefused(self.address, "alert unknown ca", *stranger)
        error = pyEcho(self.address, self.context("stranger"))
        self.assertIsInstance(error, ssl.SSLError)
        self.assertIn("UNKNOWN_CA", str(error))

    def test_certificateFromTheCAServed(self) -> None:
        """A client certificate issued by the configured CA is served, with either client."""
        self.assertServed(
            self.address, "-cert", self.paths["client.pem"], "-key", self.paths["client.key"]
        )
        self.assertEqual(pyEcho(self.address, self.context("client")), LINE)


class PolicyTests(TLSTestCase):
    def test_accessRulesApply(self) -> None:
        """A denied peer is refused through TLS while an allowed one is served."""
        address = self.serve("--deny", "127.0.0.2")
        self.assertIsInstance(pyEcho(address, self.context(), source="127.0.0.2"), Exception)
        self.assertEqual(pyEcho(address, self.context(), source="127.0.0.1"), LINE)

    def test_reloadChangesClientCA(self) -> None:
        """A reload that adds tls-client-ca applies to the next connection on the same socket."""
        config = os.path.join(os.path.dirname(self.paths["ca.pem"]), "netd.toml")
        service = f"[services.echo]\nlisten = ['{self.listen}']\n"
        with open(config, "w") as f:
            f.write(service)
        daemon = Daemon(["--config", config], expect=1)
        self.addCleanup(daemon.stop)
        address = daemon.address("echo")
        self.assertEqual(pyEcho(address, self.context()), LINE)
        with open(config, "w") as f:
            f.write(service + f"tls-client-ca = '{self.paths['ca.pem']}'\n")
        daemon.process.send_signal(signal.SIGHUP)
        daemon.logged("reloaded")
        self.assertIsInstance(pyEcho(address, self.context()), ssl.SSLError)
        self.assertEqual(pyEcho(address, self.context("client")), LINE)
