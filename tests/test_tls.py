"""
TLS for C{ssl:} listeners: the files checked when the options are parsed, the context
built (TLS 1.2 floor, modern ciphers, client certificates on request), and the
C{tls-client-ca} policy key.  Handshakes run in memory, between OpenSSL memory BIOs.
"""

from __future__ import annotations

import datetime
import functools
import ipaddress
import os
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from OpenSSL import SSL
from twisted.internet.address import IPv4Address
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactor, StringTransport
from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase

from netd.admission.policy import Policy
from netd.config.file import parseConfig
from netd.config.options import optionsFor
from netd.config.policy import PolicyError, buildPolicy
from netd.interfaces import STREAM
from netd.listen.endpoint import BadListen, parseListen
from netd.listen.tls import (
    ClientAuthorities,
    TLSContexts,
    TLSFactory,
    TLSServerEndpoint,
    certificateOptions,
    loadClientAuthorities,
)
from tests.support import builtins

_FOREVER = (datetime.datetime(2000, 1, 1), datetime.datetime(2100, 1, 1))


def _name(commonName: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, commonName)])


def _keyPEM(key: Any) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _certificatePEM(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


class Authority:
    """A test CA (EC P-256) that issues certificates valid from 2000 to 2100."""

    def __init__(self, commonName: str) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = _name(commonName)
        self.certificate = self._sign(self.name, self.key.public_key(), ca=True)
        self.pem = _certificatePEM(self.certificate)

    def _sign(self, subject: x509.Name, publicKey: Any, ca: bool) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.name)
            .public_key(publicKey)
            .serial_number(x509.random_serial_number())
            .not_valid_before(_FOREVER[0])
            .not_valid_after(_FOREVER[1])
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
        return builder.sign(self.key, hashes.SHA256())

    def issue(self, commonName: str, key: Any = None) -> tuple[bytes, bytes]:
        """A certificate for C{key} (default: a new EC P-256 key); both PEM."""
        key = key or ec.generate_private_key(ec.SECP256R1())
        return _keyPEM(key), _certificatePEM(self._sign(_name(commonName), key.public_key(), False))


@functools.cache
def pki() -> dict[str, bytes]:
    """
    One set of test credentials (generated once per run): a CA, an RSA server
    certificate and a client certificate it issued, and a client certificate from
    another CA.
    """
    ca, other = Authority("netd test CA"), Authority("another CA")
    serverKey, serverCert = ca.issue("localhost", rsa.generate_private_key(65537, 2048))
    clientKey, clientCert = ca.issue("client")
    strangerKey, strangerCert = other.issue("stranger")
    return {
        "ca.pem": ca.pem,
        "other-ca.pem": other.pem,
        "server.key": serverKey,
        "server.pem": serverCert,
        "client.key": clientKey,
        "client.pem": clientCert,
        "stranger.key": strangerKey,
        "stranger.pem": strangerCert,
    }


def writePKI(directory: str) -> dict[str, str]:
    """Write L{pki} into C{directory}; return each file's path by name."""
    os.makedirs(directory, exist_ok=True)
    paths = {}
    for name, data in pki().items():
        paths[name] = os.path.join(directory, name)
        with open(paths[name], "wb") as f:
            f.write(data)
    return paths


def _pump(source: SSL.Connection, destination: SSL.Connection) -> None:
    try:
        data = source.bio_read(2**17)
    except SSL.WantReadError:
        return
    destination.bio_write(data)


def serverHandshake(server: SSL.Connection, client: SSL.Connection) -> SSL.Error | None:
    """
    Run a handshake in memory; return the server's error, or C{None} once the server
    has completed it (the server's view: the client's own errors are not the question).
    """
    server.set_accept_state()
    client.set_connect_state()
    for _ in range(10):
        try:
            client.do_handshake()
        except SSL.Error:
            pass  # WantReadError while in progress; or the server's alert arrived
        _pump(client, server)
        try:
            server.do_handshake()
        except SSL.WantReadError:
            pass
        except SSL.Error as e:
            return e
        else:
            return None
        _pump(server, client)
    raise AssertionError("the handshake did not finish")


def clientConnection(
    version: int | None = None,
    ciphers: bytes | None = None,
    cert: str | None = None,
    paths: Any = None,
) -> SSL.Connection:
    """A client at exactly C{version} (default: any), with C{ciphers}, maybe a certificate."""
    context = SSL.Context(SSL.TLS_METHOD)
    if version is not None:
        context.set_min_proto_version(version)
        context.set_max_proto_version(version)
    context.set_cipher_list(ciphers or b"DEFAULT:@SECLEVEL=0")
    if cert is not None:
        context.use_certificate_file(paths[f"{cert}.pem"])
        context.use_privatekey_file(paths[f"{cert}.key"])
    return SSL.Connection(context, None)


def reasons(error: SSL.Error | None) -> str:
    """OpenSSL's reasons for C{error}, in one string."""
    assert error is not None, "the server accepted the handshake"
    return " ".join(str(part) for args in error.args for entry in args for part in entry)


class TLSTestCase(SynchronousTestCase):
    """Test credentials in a fresh directory, and C{ssl:} descriptions using them."""

    def setUp(self) -> None:
        self.paths = writePKI(self.mktemp())

    def describe(self, key: str = "server.key", cert: str = "server.pem", extra: str = "") -> str:
        return f"ssl:0:interface=127.0.0.1:privateKey={self.paths.get(key, key)}:certKey={self.paths.get(cert, cert)}{extra}"

    def write(self, name: str, data: bytes) -> str:
        path = os.path.join(os.path.dirname(self.paths["ca.pem"]), name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def badListen(self, description: str) -> str:
        error = self.assertRaises(BadListen, parseListen, description)
        message = str(error)
        self.assertEqual(message.splitlines(), [message])
        return message

    def contexts(self, clientCA: ClientAuthorities | None = None) -> TLSContexts:
        credentials = parseListen(self.describe()).endpoint(None).settings.load()  # type: ignore[union-attr]
        return TLSContexts(credentials, lambda: clientCA)

    def serverConnection(self, contexts: TLSContexts) -> SSL.Connection:
        factory = TLSFactory(contexts, False, Factory.forProtocol(Protocol), clock=object())
        return contexts.serverConnectionForTLS(
            factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
        )

    def handshake(
        self, clientCA: ClientAuthorities | None = None, **client: Any
    ) -> SSL.Error | None:
        server = self.serverConnection(self.contexts(clientCA))
        return serverHandshake(server, clientConnection(paths=self.paths, **client))


class DescriptionTests(TLSTestCase):
    def test_validDescription(self) -> None:
        """A readable key and its certificate make a stream listener, bound like tcp:."""
        spec = parseListen(self.describe().replace("ssl:0", "ssl:8443"))
        self.assertEqual(spec.kind, STREAM)
        self.assertEqual(spec.bindKey(), ("TCP", "127.0.0.1", "8443"))

    def test_missingFile(self) -> None:
        """A key file that does not exist is a one-line error naming it."""
        missing = os.path.join(self.mktemp(), "nope.key")
        message = self.badListen(self.describe(key=missing))
        self.assertIn(f"privateKey {missing}: cannot read: No such file or directory", message)

    def test_mismatchedKey(self) -> None:
        """A key that is not the certificate's is an error naming both files."""
        message = self.badListen(self.describe(key="client.key"))
        self.assertIn(
            f"privateKey {self.paths['client.key']} does not match the certificate in "
            f"{self.paths['server.pem']}",
            message,
        )

    def test_badCertificatePEM(self) -> None:
        """A certificate file that is not PEM, or a corrupt one, is named."""
        garbage = self.write("garbage.pem", b"hello\n")
        self.assertIn(
            f"certKey {garbage}: no PEM certificate", self.badListen(self.describe(cert=garbage))
        )
        corrupt = self.write(
            "corrupt.pem", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
        )
        self.assertIn(
            f"certKey {corrupt}: not a valid PEM certificate",
            self.badListen(self.describe(cert=corrupt)),
        )

    def test_badKeyPEM(self) -> None:
        """A key file holding no key (here: a certificate) is named."""
        message = self.badListen(self.describe(key="server.pem"))
        self.assertIn(f"privateKey {self.paths['server.pem']}: not a PEM private key", message)

    def test_encryptedKey(self) -> None:
        """An encrypted key is refused at once, rather than prompting for a passphrase."""
        key = serialization.load_pem_private_key(pki()["server.key"], None)
        encrypted = self.write(
            "encrypted.key",
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(b"secret"),
            ),
        )
        self.assertIn("the key is encrypted", self.badListen(self.describe(key=encrypted)))

    def test_weakKey(self) -> None:
        """A key too small for OpenSSL's security level is refused, naming the certificate."""
        key, cert = Authority("small CA").issue("small", rsa.generate_private_key(65537, 1024))
        message = self.badListen(
            self.describe(key=self.write("small.key", key), cert=self.write("small.pem", cert))
        )
        self.assertIn("small.pem: OpenSSL refuses it: ee key too small", message)

    def test_unknownOption(self) -> None:
        """An option netd's ssl: does not take is named, with the valid ones."""
        message = self.badListen(self.describe(extra=":verify=yes"))
        self.assertIn("unknown option 'verify' (ssl: takes port, interface, backlog", message)

    def test_privateKeyRequired(self) -> None:
        """An ssl: description without a key says what it expects."""
        self.assertIn("expected ssl:PORT:privateKey=KEY", self.badListen("ssl:443"))

    def test_badPortAndInterface(self) -> None:
        """Port and interface are checked as for tcp:."""
        self.assertIn(
            "port 70000 is not in 0-65535",
            self.badListen(self.describe().replace("ssl:0", "ssl:70000")),
        )
        self.assertIn(
            "interface 'localhost' is not an IP address",
            self.badListen(self.describe().replace("127.0.0.1", "localhost")),
        )

    def test_proxiedTLSRefused(self) -> None:
        """haproxy:ssl: is refused: a proxy sends its header before the TLS handshake."""
        self.assertIn("haproxy:ssl: is not supported", self.badListen("haproxy:" + self.describe()))

    def test_combinedFile(self) -> None:
        """Without certKey, the key file holds the certificate too (as in Twisted)."""
        both = self.write("both.pem", pki()["server.pem"] + pki()["server.key"])
        spec = parseListen(f"ssl:0:privateKey={both}")
        endpoint = spec.endpoint(MemoryReactor())
        assert isinstance(endpoint, TLSServerEndpoint)
        self.assertEqual(endpoint.settings.certKey, both)

    def test_chain(self) -> None:
        """Certificates after the first in certKey, then those of extraCertChain, are the chain."""
        chained = self.write("full.pem", pki()["server.pem"] + pki()["ca.pem"])
        description = self.describe(
            cert=chained, extra=f":extraCertChain={self.paths['other-ca.pem']}"
        )
        endpoint = parseListen(description).endpoint(MemoryReactor())
        assert isinstance(endpoint, TLSServerEndpoint)
        chain = endpoint.settings.load().chain
        self.assertEqual(
            [c.original.to_cryptography().subject.rfc4514_string() for c in chain],
            ["CN=netd test CA", "CN=another CA"],
        )

    def test_refusedTwistedOptions(self) -> None:
        """Twisted's sslmethod and dhParameters are refused, saying why."""
        self.assertIn(
            "sslmethod is not supported: netd allows TLS 1.2 and 1.3 only",
            self.badListen(self.describe(extra=":sslmethod=TLSv1_METHOD")),
        )
        self.assertIn(
            "dhParameters is not supported: netd offers ECDHE key exchange only",
            self.badListen(self.describe(extra=":dhParameters=dh.pem")),
        )


class OptionsTests(TLSTestCase):
    def test_minimumVersion(self) -> None:
        """The options refuse TLS 1.0 and 1.1 and keep TLS 1.2 and 1.3."""
        options = certificateOptions(self.contexts().credentials)
        for disabled in (SSL.OP_NO_SSLv3, SSL.OP_NO_TLSv1, SSL.OP_NO_TLSv1_1):
            self.assertTrue(options._options & disabled)
        for enabled in (SSL.OP_NO_TLSv1_2, SSL.OP_NO_TLSv1_3):
            self.assertFalse(options._options & enabled)

    def test_noClientCertificateByDefault(self) -> None:
        """Without tls-client-ca no client certificate is asked for."""
        options = certificateOptions(self.contexts().credentials)
        self.assertFalse(options.verify)
        self.assertEqual(options.getContext().get_verify_mode(), SSL.VERIFY_NONE)

    def test_clientCertificateRequired(self) -> None:
        """With tls-client-ca the options verify and require a client certificate from its CAs."""
        authorities = loadClientAuthorities(self.paths["ca.pem"])
        options = certificateOptions(self.contexts().credentials, authorities)
        self.assertTrue(options.verify)
        self.assertTrue(options.requireCertificate)
        self.assertEqual(len(options.caCerts or ()), 1)
        mode = options.getContext().get_verify_mode()
        self.assertTrue(mode & SSL.VERIFY_PEER and mode & SSL.VERIFY_FAIL_IF_NO_PEER_CERT)

    def test_noRenegotiation(self) -> None:
        """Client-initiated renegotiation is switched off."""
        context = certificateOptions(self.contexts().credentials).getContext()
        self.assertTrue(context.set_options(0) & SSL.OP_NO_RENEGOTIATION)


class HandshakeTests(TLSTestCase):
    def test_modernClientServed(self) -> None:
        """A TLS 1.3 and a TLS 1.2 client complete the handshake."""
        self.assertIsNone(self.handshake(version=SSL.TLS1_3_VERSION))
        self.assertIsNone(self.handshake(version=SSL.TLS1_2_VERSION))

    def test_oldVersionsRefused(self) -> None:
        """TLS 1.0 and 1.1 clients are refused by the server, whatever their ciphers."""
        for version in (SSL.TLS1_VERSION, SSL.TLS1_1_VERSION):
            self.assertIn("unsupported protocol", reasons(self.handshake(version=version)))

    def test_weakCiphersRefused(self) -> None:
        """TLS 1.2 without ECDHE or without AEAD finds no shared cipher."""
        for weak in (
            b"AES128-SHA",
            b"AES256-GCM-SHA384",
            b"ECDHE-RSA-AES128-SHA",
            b"DHE-RSA-AES128-GCM-SHA256",
        ):
            error = self.handshake(version=SSL.TLS1_2_VERSION, ciphers=weak)
            self.assertIn("no shared cipher", reasons(error), weak)
        self.assertIsNone(
            self.handshake(version=SSL.TLS1_2_VERSION, ciphers=b"ECDHE-RSA-AES128-GCM-SHA256")
        )

    def test_clientCertificateChecked(self) -> None:
        """With a client CA: no certificate and another CA's are refused, the CA's own served."""
        authorities = loadClientAuthorities(self.paths["ca.pem"])
        self.assertIn("peer did not return a certificate", reasons(self.handshake(authorities)))
        self.assertIn(
            "certificate verify failed", reasons(self.handshake(authorities, cert="stranger"))
        )
        self.assertIsNone(self.handshake(authorities, cert="client"))
        self.assertIn(
            "certificate verify failed",
            reasons(self.handshake(authorities, cert="stranger", version=SSL.TLS1_2_VERSION)),
        )

    def test_policyChangeReachesNextHandshake(self) -> None:
        """A new client CA from the policy in force applies to the next connection; an unchanged one reuses the options."""
        current: list[ClientAuthorities | None] = [None]
        contexts = TLSContexts(self.contexts().credentials, lambda: current[0])
        first = contexts.options()
        self.assertIs(contexts.options(), first)
        self.assertIsNone(serverHandshake(self.serverConnection(contexts), clientConnection()))
        current[0] = loadClientAuthorities(self.paths["ca.pem"])
        self.assertIsNotNone(serverHandshake(self.serverConnection(contexts), clientConnection()))
        self.assertIsNot(contexts.options(), first)
        current[0] = loadClientAuthorities(self.paths["ca.pem"])  # equal, re-read
        second = contexts.options()
        self.assertIs(contexts.options(), second)


class ListeningTests(TLSTestCase):
    def test_listensWithTCP(self) -> None:
        """An ssl: listener binds with listenTCP under netd's TLS factory, around the given factory."""
        reactor = MemoryReactor()
        spec = parseListen(self.describe(extra=":backlog=7").replace("ssl:0", "ssl:8443"))
        inner = Factory.forProtocol(Protocol)
        spec.endpoint(reactor).listen(inner)  # type: ignore[arg-type]
        [(port, factory, backlog, interface)] = reactor.tcpServers
        self.assertEqual((port, backlog, interface), (8443, 7, "127.0.0.1"))
        self.assertIsInstance(factory, TLSFactory)
        self.assertIs(factory.wrappedFactory, inner)

    def test_clientCAFromThePolicyInForce(self) -> None:
        """The endpoint asks the service's current policy for the client CA."""
        policies = [Policy()]
        endpoint = parseListen(self.describe()).endpoint(
            MemoryReactor(), clientCA=lambda: policies[-1].tlsClientCA
        )
        assert isinstance(endpoint, TLSServerEndpoint)
        self.assertIsNone(endpoint.clientCA())
        policies.append(buildPolicy({"tls-client-ca": self.paths["ca.pem"]}))
        self.assertEqual(str(endpoint.clientCA()), self.paths["ca.pem"])

    def test_filesGoneAtBind(self) -> None:
        """A key removed between parsing and binding fails the listen, naming the file."""
        spec = parseListen(self.describe())
        os.remove(self.paths["server.key"])
        failure = self.failureResultOf(spec.endpoint(MemoryReactor()).listen(Factory()))  # type: ignore[arg-type]
        self.assertIn(f"privateKey {self.paths['server.key']}: cannot read", str(failure.value))

    def test_refusalPassedThrough(self) -> None:
        """A refusal (None) from the wrapped factory closes the socket before any handshake."""

        class Refusing(Factory):
            def buildProtocol(self, addr: Any) -> None:
                return None

        factory = TLSFactory(self.contexts(), False, Refusing(), clock=object())
        self.assertIsNone(factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1)))

    def test_noDirectModeUnderTLS(self) -> None:
        """A TLS connection never offers the plain-TCP direct mode of the transport below it."""
        transport = StringTransport()
        transport.offersDirectMode = True  # type: ignore[attr-defined]
        factory = TLSFactory(self.contexts(), False, Factory.forProtocol(Protocol), clock=object())
        connection = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
        assert connection is not None
        connection.makeConnection(transport)
        self.assertFalse(connection.offersDirectMode)  # type: ignore[attr-defined]


class ClientCATests(TLSTestCase):
    def test_coercion(self) -> None:
        """tls-client-ca reads every CA of the file; the policy shows it as its path."""
        bundle = self.write("bundle.pem", pki()["ca.pem"] + pki()["other-ca.pem"])
        policy = buildPolicy({"tls-client-ca": bundle})
        assert policy.tlsClientCA is not None
        self.assertEqual(len(policy.tlsClientCA.certificates), 2)
        self.assertEqual(str(policy.tlsClientCA), bundle)
        self.assertIsNone(Policy().tlsClientCA)

    def test_errors(self) -> None:
        """A missing file, a file without certificates, or a non-path is a one-line error naming the key."""
        missing = os.path.join(self.mktemp(), "ca.pem")
        garbage = self.write("garbage.pem", b"not pem")
        for value, problem in [
            (missing, f"{missing}: cannot read: No such file or directory"),
            (garbage, f"{garbage}: no PEM certificate (BEGIN CERTIFICATE) in it"),
            (7, "expected the path of a PEM file of CA certificates, got 7"),
        ]:
            error = self.assertRaises(PolicyError, buildPolicy, {"tls-client-ca": value})
            self.assertEqual(str(error), f"tls-client-ca: {problem}")

    def test_commandLine(self) -> None:
        """--tls-client-ca sets the service's client CA; a bad file is a usage error."""
        options = optionsFor(builtins(), lambda requested: "epoll")()
        options.parseOptions(
            [
                "--proto",
                "echo",
                "--listen",
                self.describe(),
                "--tls-client-ca",
                self.paths["ca.pem"],
            ]
        )
        [service] = options.config.services
        self.assertEqual(str(service.policy.tlsClientCA), self.paths["ca.pem"])
        bad = optionsFor(builtins(), lambda requested: "epoll")()
        error = self.assertRaises(
            UsageError,
            bad.parseOptions,
            ["--proto", "echo", "--tls-client-ca", "/nonexistent/ca.pem"],
        )
        self.assertEqual(
            str(error),
            "--tls-client-ca: /nonexistent/ca.pem: cannot read: No such file or directory",
        )

    def test_configFile(self) -> None:
        """tls-client-ca is a config key, in a service table or in [defaults]."""
        config = parseConfig(
            f'[defaults]\ntls-client-ca = "{self.paths["ca.pem"]}"\n'
            f'[services.echo]\nlisten = ["{self.describe()}"]\n',
            "netd.toml",
            builtins(),
        )
        [service] = config.services
        self.assertEqual(str(service.policy.tlsClientCA), self.paths["ca.pem"])
