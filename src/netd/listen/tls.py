"""
TLS for C{ssl:} listeners: the context netd builds itself, hardened.

Twisted's C{ssl:} endpoint string takes a key and a certificate but offers no client
certificate verification and no minimum version, and listens with C{listenSSL}, which
bypasses netd's eager-write transports.  Here netd reads the files itself (every problem
a one-line error naming the file), builds L{CertificateOptions} with TLS 1.2 as the
floor and only forward-secret AEAD suites, and listens with C{listenTCP} under
Twisted's L{TLSMemoryBIOFactory}, so the encrypted bytes go through the same transports
as plain TCP.

The service policy's C{tls-client-ca} belongs in the context too (it decides whether a
client certificate is required), so the context is chosen per connection from the
policy in force: a reload that changes the CA applies to the next handshake.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL, crypto
from twisted.internet import defer
from twisted.internet.interfaces import (
    IListeningPort,
    IOpenSSLServerConnectionCreator,
    IProtocolFactory,
    IStreamServerEndpoint,
)
from twisted.internet.ssl import (
    AcceptableCiphers,
    Certificate,
    CertificateOptions,
    KeyPair,
    PrivateCertificate,
    TLSVersion,
)
from twisted.protocols.tls import BufferingTLSTransport, TLSMemoryBIOFactory
from zope.interface import implementer

__all__ = [
    "CIPHERS",
    "MINIMUM_VERSION",
    "BadCredentials",
    "ClientAuthorities",
    "ServerCredentials",
    "TLSContexts",
    "TLSFactory",
    "TLSListen",
    "TLSServerEndpoint",
    "certificateOptions",
    "loadClientAuthorities",
]

#: TLS 1.0 and 1.1 are refused (RFC 8996).
MINIMUM_VERSION = TLSVersion.TLSv1_2
#: TLS 1.2 suites: forward-secret (ECDHE) key exchange and AEAD encryption only, so
#: there is no finite-field DHE and no C{dhParameters}.  TLS 1.3 has nothing weaker to
#: exclude: OpenSSL's TLS 1.3 suites are all ECDHE (or hybrid) and AEAD.
CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL"
#: Client-initiated renegotiation costs the server a handshake for a few bytes from
#: the client, and nothing netd serves needs it.
_NO_RENEGOTIATION = getattr(SSL, "OP_NO_RENEGOTIATION", 0)

_PEM_CERTIFICATE = b"-----BEGIN CERTIFICATE-----"


class BadCredentials(ValueError):
    """A key or certificate file netd cannot use; the message names it."""


def _named(role: str, path: str) -> str:
    """How an error names a file: C{certKey cert.pem}, or just the path."""
    return f"{role} {path}" if role else path


def _read(role: str, path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise BadCredentials(f"{_named(role, path)}: cannot read: {e.strerror or e}") from None


def _certificates(role: str, path: str, data: bytes) -> tuple[x509.Certificate, ...]:
    """Every certificate of a PEM file, in order; at least one."""
    if _PEM_CERTIFICATE not in data:
        raise BadCredentials(f"{_named(role, path)}: no PEM certificate (BEGIN CERTIFICATE) in it")
    try:
        return tuple(x509.load_pem_x509_certificates(data))
    except ValueError:
        raise BadCredentials(f"{_named(role, path)}: not a valid PEM certificate") from None


def _privateKey(path: str, data: bytes) -> crypto.PKey:
    """
    The key, parsed by C{cryptography}: an encrypted key is an error here, where
    OpenSSL would ask for a passphrase on the terminal and hang a daemon.
    """
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise BadCredentials(
            f"privateKey {path}: the key is encrypted; netd needs it unencrypted"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise BadCredentials(f"privateKey {path}: not a PEM private key") from None
    try:
        return crypto.PKey.from_cryptography_key(key)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise BadCredentials(f"privateKey {path}: unsupported key type") from None


@dataclass(frozen=True)
class ServerCredentials:
    """What the server presents: its certificate with its key, and the chain after it."""

    certificate: PrivateCertificate
    chain: tuple[Certificate, ...] = ()


@dataclass(frozen=True)
class TLSListen:
    """
    An C{ssl:} listen description, parsed but not yet read: the port to bind and the
    files to read when binding (while still privileged, so a root-only key works).

    @ivar certKey: the server certificate, then optionally its chain (a certbot
        C{fullchain.pem}); may be the C{privateKey} file itself.
    @ivar extraCertChain: more chain certificates, sent after those of C{certKey}.
    """

    port: int
    privateKey: str
    certKey: str
    interface: str = ""
    backlog: int = 50
    extraCertChain: str | None = None

    def load(self) -> ServerCredentials:
        """
        Read and check the files: a bad one is named in one line.

        @raise BadCredentials: a file unreadable, not PEM, or a key that does not match
            the certificate.
        """
        key = _privateKey(self.privateKey, _read("privateKey", self.privateKey))
        leaf, *chain = _certificates("certKey", self.certKey, _read("certKey", self.certKey))
        if self.extraCertChain is not None:
            data = _read("extraCertChain", self.extraCertChain)
            chain.extend(_certificates("extraCertChain", self.extraCertChain, data))
        try:
            certificate = PrivateCertificate.fromCertificateAndKeyPair(
                Certificate(crypto.X509.from_cryptography(leaf)), KeyPair(key)
            )
        except Exception:  # Twisted's VerifyError, or OpenSSL on a key of another type
            raise BadCredentials(
                f"privateKey {self.privateKey} does not match the certificate in {self.certKey}"
            ) from None
        credentials = ServerCredentials(
            certificate, tuple(Certificate(crypto.X509.from_cryptography(c)) for c in chain)
        )
        try:
            certificateOptions(credentials)
        except SSL.Error as e:  # e.g. a key too small for OpenSSL's security level
            raise BadCredentials(
                f"certKey {self.certKey}: OpenSSL refuses it: {_reasons(e)}"
            ) from None
        return credentials


def _reasons(error: SSL.Error) -> str:
    """OpenSSL's reasons (C{ee key too small}) without its list-of-tuples framing."""
    entries = error.args[0] if error.args and isinstance(error.args[0], list) else []
    reasons = [entry[-1] for entry in entries if isinstance(entry, tuple) and entry]
    return "; ".join(map(str, reasons)) or str(error)


@dataclass(frozen=True)
class ClientAuthorities:
    """
    The CAs whose certificates a client must present (the C{tls-client-ca} policy key),
    read when the configuration is: a reload re-reads the file.

    @ivar certificates: each CA certificate, DER-encoded.
    """

    path: str
    certificates: tuple[bytes, ...]

    def __str__(self) -> str:
        return self.path


def loadClientAuthorities(value: object) -> ClientAuthorities:
    """
    The C{tls-client-ca} coercion: a PEM file of one or more CA certificates.

    @raise ValueError: naming the file and the problem, in one line.
    """
    if isinstance(value, ClientAuthorities):
        return value
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected the path of a PEM file of CA certificates, got {value!r}")
    try:
        certificates = _certificates("", value, _read("", value))
    except BadCredentials as e:
        raise ValueError(str(e)) from None
    return ClientAuthorities(
        value, tuple(c.public_bytes(serialization.Encoding.DER) for c in certificates)
    )


def certificateOptions(
    credentials: ServerCredentials, clientCA: ClientAuthorities | None = None
) -> CertificateOptions:
    """
    The server's TLS settings: TLS 1.2 or later, forward-secret AEAD suites only, no
    renegotiation; with C{clientCA}, a client certificate issued by one of its CAs is
    required.
    """
    verification: dict[str, Any] = {}
    if clientCA is not None:
        verification = {
            "verify": True,
            "requireCertificate": True,
            "caCerts": [
                crypto.X509.from_cryptography(x509.load_der_x509_certificate(der))
                for der in clientCA.certificates
            ],
        }
    options = CertificateOptions(
        privateKey=credentials.certificate.privateKey.original,
        certificate=credentials.certificate.original,
        extraCertChain=[c.original for c in credentials.chain] or None,
        acceptableCiphers=AcceptableCiphers.fromOpenSSLCipherString(CIPHERS),
        raiseMinimumTo=MINIMUM_VERSION,
        **verification,
    )
    # Build the (cached) context now: a problem shows here, not at the first client.
    options.getContext().set_options(_NO_RENEGOTIATION)
    return options


@implementer(IOpenSSLServerConnectionCreator)
class TLSContexts:
    """
    Creates each connection's TLS state from the options for the client CA in force
    (C{clientCA()}, the service policy's), rebuilt only when that changes.
    """

    def __init__(
        self,
        credentials: ServerCredentials,
        clientCA: Callable[[], ClientAuthorities | None] = lambda: None,
    ) -> None:
        self.credentials = credentials
        self.clientCA = clientCA
        self._for: ClientAuthorities | None = clientCA()
        self._options = certificateOptions(credentials, self._for)

    def options(self) -> CertificateOptions:
        """The options for the current client CA."""
        wanted = self.clientCA()
        if wanted is not self._for and wanted != self._for:
            self._options = certificateOptions(self.credentials, wanted)
            self._for = wanted
        return self._options

    def serverConnectionForTLS(self, tlsProtocol: Any) -> SSL.Connection:
        return self.options().serverConnectionForTLS(tlsProtocol)


class TLSConnection(BufferingTLSTransport):
    """
    One TLS connection.  Twisted's protocol wrappers forward unknown attributes to the
    transport below, so without this the policy wrapper would take the TCP
    connection's direct mode (meant for plain TCP) and bypass the decryption.
    """

    offersDirectMode = False


class TLSFactory(TLSMemoryBIOFactory):
    """
    Twisted's TLS factory, with L{TLSConnection}s, that passes a refusal (C{None}) from
    the factory it wraps through instead of wrapping it: the socket is closed before any
    handshake work.
    """

    protocol = TLSConnection

    def buildProtocol(self, addr: Any) -> TLSConnection | None:  # type: ignore[override]
        inner = self.wrappedFactory.buildProtocol(addr)
        if inner is None:
            return None
        return self.protocol(self, inner)


@implementer(IStreamServerEndpoint)
@dataclass(frozen=True)
class TLSServerEndpoint:
    """
    An C{ssl:} listener: reads the key and certificates, then C{listenTCP} with
    L{TLSFactory}, so netd's reactors serve it with their eager-write transports.

    @ivar clientCA: returns the client CA in force (the service policy's), asked at
        each new connection.
    """

    reactor: Any
    settings: TLSListen
    clientCA: Callable[[], ClientAuthorities | None] = lambda: None

    def listen(self, factory: IProtocolFactory) -> defer.Deferred[IListeningPort]:
        try:
            contexts = TLSContexts(self.settings.load(), self.clientCA)
            port = self.reactor.listenTCP(
                self.settings.port,
                TLSFactory(cast(Any, contexts), False, factory, clock=self.reactor),
                self.settings.backlog,
                self.settings.interface,
            )
        except Exception:
            return defer.fail()
        return defer.succeed(port)
