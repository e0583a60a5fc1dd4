"""
The command line: every mistake a one-line usage error, every good line a service model.
"""

from __future__ import annotations

from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase

from netd.config.options import CommandLineOptions, Options, optionsFor
from netd.interfaces import DATAGRAM, STREAM
from netd.reactor import ReactorConflict, ReactorUnavailable
from tests.support import builtins


class FakeInstaller:
    """Records which reactor the options asked for instead of installing one."""

    def __init__(self, error: Exception | None = None) -> None:
        self.requested: list[str | None] = []
        self.error = error

    def __call__(self, requested: str | None) -> str:
        self.requested.append(requested)
        if self.error is not None:
            raise self.error
        return requested or "epoll"


class OptionsTests(SynchronousTestCase):
    def parse(self, *argv: str, installer: FakeInstaller | None = None) -> Options:
        options = optionsFor(builtins(), installer or FakeInstaller())()
        options.parseOptions(list(argv))
        return options

    def test_defaultListenIsLoopbackTcp(self) -> None:
        """Without --listen a service listens on its unprivileged default port on 127.0.0.1, TCP only."""
        [service] = self.parse("--proto", "echo").config.services
        self.assertEqual(service.name, "echo")
        self.assertEqual([s.description for s in service.listen], ["tcp:10007:interface=127.0.0.1"])

    def test_listenIsRepeatable(self) -> None:
        """Several --listen give one service several listeners, stream and datagram."""
        [service] = self.parse(
            "--proto", "daytime", "--listen", "tcp:10013:interface=0.0.0.0", "--listen", "udp:10013"
        ).config.services
        self.assertEqual([s.kind for s in service.listen], [STREAM, DATAGRAM])

    def test_protocolOptionsAreCoercedWithDefaults(self) -> None:
        """A protocol's own options are coerced, and missing ones take their defaults."""
        [service] = self.parse("--proto", "linelogger", "--max-line-length", "100").config.services
        self.assertEqual(
            {k: service.settings[k] for k in ("max-line-length", "output")},
            {"max-line-length": 100, "output": None},
        )
        [greeting] = self.parse("--proto", "greeting").config.services
        self.assertEqual(greeting.settings, {"message": "Thank you for connecting"})

    def test_unknownProtocolListsChoices(self) -> None:
        """An unknown protocol is an error listing the valid names."""
        error = self.assertRaises(UsageError, self.parse, "--proto", "nope")
        self.assertIn("choose one of: chargen, daytime", str(error))

    def test_protoIsRequired(self) -> None:
        """Without --proto the error says so and lists the protocols."""
        error = self.assertRaises(UsageError, self.parse)
        self.assertIn("--proto or --config is required", str(error))

    def test_optionOfAnotherProtocol(self) -> None:
        """An option that belongs to another protocol is refused, naming the protocol."""
        error = self.assertRaises(UsageError, self.parse, "--proto", "echo", "--message", "hi")
        self.assertEqual(str(error), "--message: not an option of echo (its options: none)")

    def test_badOptionValue(self) -> None:
        """A bad option value names the option and the value."""
        error = self.assertRaises(
            UsageError, self.parse, "--proto", "linelogger", "--max-line-length", "lots"
        )
        self.assertEqual(str(error), "--max-line-length: expected a positive integer, got 'lots'")
        self.assertRaises(UsageError, self.parse, "--proto", "linelogger", "--max-line-length", "0")

    def test_udpOfTcpOnlyService(self) -> None:
        """Asking a TCP-only service for UDP is refused."""
        error = self.assertRaises(
            UsageError, self.parse, "--proto", "greeting", "--listen", "udp:10017"
        )
        self.assertIn("greeting is TCP-only", str(error))

    def test_malformedEndpoints(self) -> None:
        """Malformed endpoints, bad ports and non-literal interfaces are refused at parse time."""
        for bad in (
            "tcp:notaport",
            "tcp:70000",
            "bogus:1",
            "udp:",
            "udp:1:2",
            "udp:-1",
            "udp:7:interface=localhost",
            "tcp:7:interface=example.com",
            "nocolon",
        ):
            self.assertRaises(UsageError, self.parse, "--proto", "echo", "--listen", bad)

    def test_reactorIsInstalledWhenParsed(self) -> None:
        """The options install the reactor asked for (or the platform's best) when parsed."""
        installer = FakeInstaller()
        self.assertEqual(
            self.parse("--proto", "echo", "--reactor", "poll", installer=installer).reactorName,
            "poll",
        )
        self.parse("--proto", "echo", installer=installer)
        self.assertEqual(installer.requested, ["poll", None])

    def test_unknownReactor(self) -> None:
        """An unknown reactor name is an error listing the valid ones, and nothing is installed."""
        installer = FakeInstaller()
        error = self.assertRaises(
            UsageError, self.parse, "--proto", "echo", "--reactor", "fast", installer=installer
        )
        self.assertIn("epoll, kqueue, iocp, poll, select, asyncio, uvloop", str(error))
        self.assertEqual(installer.requested, [])

    def test_unavailableOrConflictingReactor(self) -> None:
        """An unavailable or conflicting reactor becomes a usage error with the reason."""
        for error in (
            ReactorUnavailable("no kqueue here"),
            ReactorConflict("conflicts with twistd -r"),
        ):
            raised = self.assertRaises(
                UsageError,
                self.parse,
                "--proto",
                "echo",
                "--reactor",
                "kqueue",
                installer=FakeInstaller(error),
            )
            self.assertEqual(str(raised), str(error))

    def test_helpListsEveryProtocol(self) -> None:
        """--help shows each protocol with its description."""
        usage = str(optionsFor(builtins(), FakeInstaller())())
        for protocol in builtins():
            self.assertIn(f"{protocol.name} ", usage)
            self.assertIn(protocol.description, usage)

    def test_commandLineErrorsAreOneLine(self) -> None:
        """At a shell, a mistake exits with one line, not the whole usage text."""
        options = optionsFor(builtins(), FakeInstaller(), base=CommandLineOptions)()
        error = self.assertRaises(SystemExit, options.parseOptions, ["--proto", "nope"])
        self.assertIn("netd: unknown protocol 'nope'", str(error.code))
        self.assertNotIn("\n", str(error.code))
