"""
Tests for a forward service's configuration: the target (L{netd.forward.target}), the
C{forward} and C{send-proxy} keys of a config file and their command-line options, and
a reload that changes the target or fails.
"""

from __future__ import annotations

import io
import json

from twisted.internet.testing import MemoryReactorClock
from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase

from netd.config.file import ConfigFileError, parseConfig
from netd.config.options import Options, optionsFor
from netd.forward.connector import ForwardFactory
from netd.forward.service import Forwarding
from netd.forward.target import CONNECT_TIMEOUT, BadTarget, parseTarget
from netd.serving.daemon import Daemon
from tests.support import builtins
from tests.test_admin import buildDaemon, client, fetch, labels, samples

FILE = "netd.toml"


def parse(text: str) -> object:
    return parseConfig(text, FILE, builtins())


def options(*argv: str) -> Options:
    parsed = optionsFor(builtins(), lambda requested: "epoll")()
    parsed.parseOptions(list(argv))
    return parsed


class TargetTests(SynchronousTestCase):
    def test_tcpLiterals(self) -> None:
        """tcp: takes an IPv4 literal, a bracketed or escaped IPv6 literal, and Twisted's keywords."""
        for text, host in (
            ("tcp:192.0.2.10:443", "192.0.2.10"),
            ("tcp:[2001:db8::1]:443", "2001:db8::1"),
            ("tcp:2001\\:db8\\:\\:1:443", "2001:db8::1"),
            ("tcp:host=192.0.2.10:port=443", "192.0.2.10"),
        ):
            target = parseTarget(text)
            self.assertEqual((target.kind, target.host, target.port), ("tcp", host, 443), text)
            self.assertEqual(target.timeout, CONNECT_TIMEOUT)

    def test_timeout(self) -> None:
        """timeout= sets how long the backend has to accept; nonsense is refused."""
        self.assertEqual(parseTarget("tcp:[::1]:80:timeout=2.5").timeout, 2.5)
        for bad in ("0", "-1", "nan", "inf", "soon"):
            self.assertRaises(BadTarget, parseTarget, f"tcp:127.0.0.1:80:timeout={bad}")

    def test_unix(self) -> None:
        """unix: takes a socket path, positional or as path=."""
        self.assertEqual(parseTarget("unix:/run/b.sock").path, "/run/b.sock")
        self.assertEqual(parseTarget("unix:path=/run/b.sock:timeout=1").timeout, 1.0)

    def test_hostNameRefused(self) -> None:
        """A host name is refused, saying netd never resolves."""
        for text in ("tcp:backend.example:443", "tcp:localhost:80", "tcp:host=db:port=5432"):
            error = self.assertRaises(BadTarget, parseTarget, text)
            self.assertIn("never resolves", str(error))

    def test_malformed(self) -> None:
        """Missing ports, bad ports, extra parts, unknown options and other kinds are refused."""
        for text in (
            "",
            "tcp:192.0.2.1",
            "tcp:192.0.2.1:0",
            "tcp:192.0.2.1:65536",
            "tcp:192.0.2.1:https",
            "tcp:192.0.2.1:443:9",
            "tcp:192.0.2.1:443:bindAddress=10.0.0.1",
            "tcp:[2001:db8::1:443",
            "ssl:192.0.2.1:443",
            "unix:",
            "unix:/a:/b",
        ):
            self.assertRaises(BadTarget, parseTarget, text)


class ConfigFileTests(SynchronousTestCase):
    def failure(self, text: str) -> str:
        error = self.assertRaises(ConfigFileError, parse, text)
        message = str(error)
        self.assertEqual(message.splitlines(), [message])
        return message

    def test_forwardService(self) -> None:
        """A table with forward is a forward service with its policy keys and listeners."""
        config = parse(
            "[services.api]\n"
            'listen = ["tcp:10443:interface=127.0.0.1"]\n'
            'forward = "tcp:192.0.2.10:6443"\n'
            'send-proxy = "v2"\n'
            "max-connections = 7\n"
            "idle-timeout = 30\n"
        )
        [service] = config.services  # type: ignore[attr-defined]
        self.assertEqual(service.name, "api")
        self.assertEqual(service.protocol, Forwarding(parseTarget("tcp:192.0.2.10:6443"), "v2"))
        self.assertEqual(service.policy.maxConnections, 7)
        self.assertEqual(service.policy.idleTimeout, 30)

    def test_sendProxyOff(self) -> None:
        """send-proxy is off unless set; "off" and false say so explicitly."""
        for line in ("", 'send-proxy = "off"\n', "send-proxy = false\n"):
            config = parse(f'[services.api]\nlisten = "tcp:10443"\nforward = "tcp:[::1]:1"\n{line}')
            self.assertIsNone(config.services[0].protocol.sendProxy)  # type: ignore[attr-defined]

    def test_hostNameIsOneLineNamingServiceAndKey(self) -> None:
        """A host name target is one line naming the file, the service and the forward key."""
        message = self.failure(
            '[services.api]\nlisten = "tcp:10443"\nforward = "tcp:backend.example:443"\n'
        )
        self.assertTrue(
            message.startswith("netd.toml: service 'api': forward: 'backend.example' is not an IP"),
            message,
        )

    def test_forwardWithProtocolExecOrWait(self) -> None:
        """forward with protocol, exec or wait is one line naming the service and both keys."""
        for key, value in (("protocol", '"echo"'), ("exec", '["/bin/cat"]'), ("wait", "true")):
            message = self.failure(
                f'[services.api]\nlisten = "tcp:10443"\nforward = "tcp:[::1]:1"\n{key} = {value}\n'
            )
            self.assertIn(
                "service 'api': forward: forward and " + key + " cannot be combined", message
            )

    def test_sendProxyNeedsForward(self) -> None:
        """send-proxy without forward is refused, naming send-proxy."""
        message = self.failure('[services.echo]\nsend-proxy = "v1"\n')
        self.assertIn("service 'echo': send-proxy: needs forward", message)

    def test_badSendProxy(self) -> None:
        """send-proxy takes v1, v2 or off."""
        message = self.failure(
            '[services.api]\nlisten = "tcp:1"\nforward = "tcp:[::1]:1"\nsend-proxy = "v3"\n'
        )
        self.assertIn("send-proxy: expected v1, v2 or off, got 'v3'", message)

    def test_listenRequired(self) -> None:
        """A forward service has no port of its own: listen is required."""
        message = self.failure('[services.api]\nforward = "tcp:[::1]:1"\n')
        self.assertIn("service 'api': listen: a forward service needs listen", message)

    def test_streamOnly(self) -> None:
        """A UDP listener for a forward service is refused."""
        message = self.failure('[services.api]\nlisten = "udp:53"\nforward = "tcp:[::1]:53"\n')
        self.assertIn("forward is TCP-only", message)

    def test_protocolOptionIsUnknown(self) -> None:
        """A protocol's option in a forward table is an unknown key."""
        message = self.failure(
            '[services.api]\nlisten = "tcp:1"\nforward = "tcp:[::1]:1"\nmessage = "hi"\n'
        )
        self.assertIn("unknown key 'message'", message)


class CommandLineTests(SynchronousTestCase):
    def test_forwardService(self) -> None:
        """--forward with --listen and policy options is one forward service named forward."""
        parsed = options(
            "--forward",
            "tcp:127.0.0.1:8080",
            "--send-proxy",
            "v1",
            "--listen",
            "tcp:0:interface=127.0.0.1",
            "--max-per-source",
            "3",
        )
        [service] = parsed.config.services
        self.assertEqual(service.name, "forward")
        self.assertEqual(service.protocol, Forwarding(parseTarget("tcp:127.0.0.1:8080"), "v1"))
        self.assertEqual(service.policy.maxPerSource, 3)

    def test_mistakesAreOneLine(self) -> None:
        """Each mistake with --forward is one usage error naming the option at fault."""
        listen = ["--listen", "tcp:0"]
        for argv, expected in (
            (["--forward", "tcp:db.example:5432", *listen], "--forward: 'db.example' is not an IP"),
            (["--forward", "tcp:[::1]:1"], "--forward: needs --listen"),
            (["--forward", "tcp:[::1]:1", "--proto", "echo", *listen], "--forward and --proto"),
            (["--forward", "tcp:[::1]:1", "--message", "hi", *listen], "--forward and --message"),
            (["--send-proxy", "v2", "--proto", "echo"], "--send-proxy: needs --forward"),
            (["--forward", "tcp:[::1]:1", "--send-proxy", "v9", *listen], "--send-proxy: expected"),
            (["--forward", "tcp:[::1]:1", "--config", "x.toml"], "--forward cannot be combined"),
        ):
            error = self.assertRaises(UsageError, options, *argv)
            self.assertTrue(str(error).startswith(expected), (argv, str(error)))
            self.assertEqual(len(str(error).splitlines()), 1)


CONFIG = '[services.api]\nlisten = "tcp:10443"\nforward = "{target}"\n'


class ReloadTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.text = CONFIG.format(target="tcp:192.0.2.10:443")
        self.reactor = MemoryReactorClock()
        self.daemon = Daemon(
            parse(self.text),  # type: ignore[arg-type]
            self.reactor,
            lambda: parseConfig(self.text, FILE, builtins()),
            stderr=io.StringIO(),
        )
        [self.runtime] = self.daemon.runtimes()

    def target(self) -> str:
        factory = self.runtime.served.stream
        assert isinstance(factory, ForwardFactory)
        return factory.target.description

    def test_newTargetForNewConnections(self) -> None:
        """A reload with a new target sends new connections there."""
        self.text = CONFIG.format(target="tcp:192.0.2.11:443")
        self.assertTrue(self.daemon.reload())
        self.assertEqual(self.target(), "tcp:192.0.2.11:443")

    def test_badTargetKeepsTheRunningOne(self) -> None:
        """A reload naming a host name is rejected and the running target stays."""
        self.text = CONFIG.format(target="tcp:backend.example:443")
        self.assertFalse(self.daemon.reload())
        self.assertEqual(self.target(), "tcp:192.0.2.10:443")
        self.assertEqual(self.daemon.reloadFailures, 1)


class AdminTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.daemon = buildDaemon(
            "--forward", "tcp:192.0.2.10:443", "--send-proxy", "v2", "--listen", "tcp:10443"
        )
        [runtime] = self.daemon.runtimes()
        self.stats = runtime.served.stream.stats  # type: ignore[union-attr]

    def test_metricsCountRelays(self) -> None:
        """/metrics shows forwarded connections, failed connects by reason and bytes each way."""
        self.stats.forwarded += 4
        self.stats.failed["refused"] += 2
        self.stats.toBackend += 100
        self.stats.toClient += 2000
        found = samples(fetch(self, client(self.daemon), "/metrics").body)
        expected = {
            ("netd_forward_connections_total", labels(service="forward")): 4,
            ("netd_forward_connect_failures_total", labels(service="forward", reason="refused")): 2,
            ("netd_forward_connect_failures_total", labels(service="forward", reason="timeout")): 0,
            ("netd_forward_bytes_total", labels(service="forward", direction="to-backend")): 100,
            ("netd_forward_bytes_total", labels(service="forward", direction="to-client")): 2000,
            ("netd_forward_connecting", labels(service="forward")): 0,
        }
        self.assertEqual({key: found.get(key) for key in expected}, expected)

    def test_servicesPageNamesTheTarget(self) -> None:
        """/services shows a forward service's target, PROXY version and relay counters."""
        self.stats.forwarded += 1
        body = json.loads(fetch(self, client(self.daemon), "/services").body)
        [service] = body["services"]
        self.assertEqual(service["protocol"], "forward")
        self.assertEqual(service["forward"]["target"], "tcp:192.0.2.10:443")
        self.assertEqual(service["forward"]["send-proxy"], "v2")
        self.assertEqual(service["forward"]["stats"]["forwarded"], 1)
