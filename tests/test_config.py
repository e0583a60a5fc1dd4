"""
The config file: every good file the same model as the command line, every mistake one
line naming the file, the service and the key.
"""

from __future__ import annotations

import os
from typing import cast

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from netd.admission.policy import Policy
from netd.config.file import ConfigFileError, loadConfig, parseConfig
from netd.config.model import DaemonConfig, ServiceConfig
from netd.config.options import optionsFor
from netd.config.settings import DaemonSettings
from netd.interfaces import DATAGRAM, STREAM, INetdProtocol
from netd.plugin import Option, ProtocolPlugin, positiveInt
from netd.plugin import text as textOption
from netd.registry import Registry
from tests.support import builtins

EXAMPLE = os.path.join(os.path.dirname(os.path.dirname(__file__)), "examples", "netd.toml")
FILE = "netd.toml"


class ConfigTestCase(SynchronousTestCase):
    """Parses config text as if it came from C{netd.toml}; expects failures in one line."""

    def parse(self, text: str) -> DaemonConfig:
        return parseConfig(text, FILE, builtins())

    def failure(self, text: str) -> ConfigFileError:
        error = self.assertRaises(ConfigFileError, self.parse, text)
        message = str(error)
        self.assertEqual(message.splitlines(), [message])
        self.assertTrue(message.startswith(f"{FILE}: "), message)
        return error


class ExampleTests(SynchronousTestCase):
    def test_exampleServesEveryClassicService(self) -> None:
        """The shipped example loads and serves every built-in protocol on its loopback port."""
        config = loadConfig(EXAMPLE, builtins())
        self.assertEqual(config.path, EXAMPLE)
        self.assertEqual(config.settings, DaemonSettings())
        listeners = {s.name: [spec.description for spec in s.listen] for s in config.services}

        def both(port: int) -> list[str]:
            return [f"tcp:{port}:interface=127.0.0.1", f"udp:{port}:interface=127.0.0.1"]

        self.assertEqual(
            listeners,
            {
                "echo": both(10007),
                "discard": both(10009),
                "daytime": both(10013),
                "chargen": ["tcp:10019:interface=127.0.0.1"],
                "time": both(10037),
                "greeting": ["tcp:10017:interface=127.0.0.1"],
                "logger": ["tcp:10514:interface=127.0.0.1"],
                "linelogger": ["tcp:10601:interface=127.0.0.1"],
            },
        )
        self.assertEqual(sorted(listeners), sorted(builtins().names()))

    def test_exampleLimits(self) -> None:
        """The example's defaults reach every service, and chargen's own limits override them."""
        services = {s.name: s for s in loadConfig(EXAMPLE, builtins()).services}
        echo, chargen = services["echo"].policy, services["chargen"].policy
        self.assertEqual((echo.maxConnections, echo.idleTimeout, echo.maxLifetime), (200, 120, 0))
        self.assertEqual([str(n) for n in echo.access.deny], ["192.0.2.0/24"])
        self.assertEqual((chargen.maxConnections, chargen.maxLifetime), (20, 600))
        self.assertEqual(chargen.access, echo.access)
        self.assertEqual(services["linelogger"].settings["max-line-length"], 4096)
        self.assertEqual(services["greeting"].settings, {"message": "Welcome to netd"})


class ServiceTests(ConfigTestCase):
    def test_tableNameIsProtocolAndDefaultListen(self) -> None:
        """A bare [services.NAME] table serves protocol NAME on its default loopback TCP port."""
        config = self.parse("[services.echo]\n")
        [service] = config.services
        self.assertEqual(service.name, "echo")
        self.assertIs(service.protocol, builtins().lookup("echo"))
        self.assertEqual([s.description for s in service.listen], ["tcp:10007:interface=127.0.0.1"])
        self.assertEqual(service.policy, Policy())
        self.assertEqual(config.settings, DaemonSettings())
        self.assertEqual(config.path, FILE)

    def test_protocolKeyNamesTheProtocol(self) -> None:
        """C{protocol} lets a table of any name serve a protocol, so one protocol can run twice."""
        config = self.parse(
            '[services.inside]\nprotocol = "echo"\nlisten = "tcp:10007"\n'
            '[services.outside]\nprotocol = "echo"\nlisten = ["tcp:20007", "udp:20007"]\n'
        )
        self.assertEqual([s.name for s in config.services], ["inside", "outside"])
        self.assertEqual([s.kind for s in config.services[1].listen], [STREAM, DATAGRAM])

    def test_servicesKeepFileOrder(self) -> None:
        """Services come out in the order the file lists them."""
        config = self.parse("[services.time]\n[services.echo]\n[services.daytime]\n")
        self.assertEqual([s.name for s in config.services], ["time", "echo", "daytime"])

    def test_disabledServiceIsLeftOut(self) -> None:
        """A table with C{enabled = false} is checked but not served."""
        config = self.parse("[services.echo]\n[services.time]\nenabled = false\n")
        self.assertEqual([s.name for s in config.services], ["echo"])

    def test_disabledServiceIsStillChecked(self) -> None:
        """A mistake in a disabled service is still an error, so enabling it later cannot fail."""
        error = self.failure("[services.echo]\n[services.time]\nenabled = false\nrate = -1\n")
        self.assertEqual(
            str(error), "netd.toml: service 'time': rate: expected a number >= 0, got -1"
        )

    def test_disabledServiceMayShareAnAddress(self) -> None:
        """A disabled service does not bind, so it may name an enabled service's address."""
        config = self.parse(
            '[services.echo]\n[services.other]\nprotocol = "discard"\n'
            'listen = "tcp:10007:interface=127.0.0.1"\nenabled = false\n'
        )
        self.assertEqual([s.name for s in config.services], ["echo"])

    def test_protocolOptions(self) -> None:
        """A protocol's own options are set in its table, coerced, with defaults filled in."""
        [service] = self.parse("[services.linelogger]\nmax-line-length = 100\n").services
        self.assertEqual(
            {k: service.settings[k] for k in ("max-line-length", "output")},
            {"max-line-length": 100, "output": None},
        )

    def test_netdKeysWinOverProtocolOptions(self) -> None:
        """A protocol option named like a netd key cannot be set: the key means netd's setting."""
        clash = ProtocolPlugin(
            name="clash",
            description="declares options named like netd's keys",
            builder="tests.nowhere.build",
            defaultPort=10100,
            options=(
                Option("max-connections", 7, positiveInt, "shadowed by the policy key"),
                Option("listen", "x", textOption, "shadowed by the service key"),
            ),
        )
        [service] = parseConfig(
            '[services.clash]\nmax-connections = 3\nlisten = "tcp:10100"\n',
            FILE,
            Registry([cast(INetdProtocol, clash)]),  # @implementer is invisible to mypy
        ).services
        self.assertEqual(service.policy.maxConnections, 3)
        self.assertEqual([s.description for s in service.listen], ["tcp:10100"])
        self.assertEqual(service.settings, {"max-connections": 7, "listen": "x"})

    def test_daemonSettings(self) -> None:
        """The top-level keys set the whole daemon's settings."""
        config = self.parse(
            'shutdown-timeout = 1.5\nudp-reply-budget = 0\nlog-format = "json"\n[services.echo]\n'
        )
        self.assertEqual(config.settings, DaemonSettings(1.5, 0.0, "json"))

    def test_chargenOverUdpWhenAllowed(self) -> None:
        """chargen over UDP is served once the table sets C{allow-amplification = true}."""
        [service] = self.parse(
            '[services.chargen]\nlisten = "udp:10019"\nallow-amplification = true\n'
        ).services
        self.assertTrue(service.policy.allowAmplification)

    def test_loadConfigReadsFile(self) -> None:
        """loadConfig reads the named file and records its path."""
        path = self.mktemp()
        with open(path, "w", encoding="utf-8") as f:
            f.write('[services.greeting]\nmessage = "h\u00e9llo"\n')
        config = loadConfig(path, builtins())
        self.assertEqual(config.path, path)
        self.assertEqual(config.services[0].settings, {"message": "h\u00e9llo"})


class CommandLineEquivalenceTests(ConfigTestCase):
    def commandLine(self, *argv: str) -> ServiceConfig:
        options = optionsFor(builtins(), lambda requested: "epoll")()
        options.parseOptions(list(argv))
        return options.config.services[0]

    def test_sameServiceFromBothFrontEnds(self) -> None:
        """One service on the command line and in a file: same name, listeners and settings."""
        for argv, text in [
            (["--proto", "echo"], "[services.echo]\n"),
            (
                ["--proto", "daytime", "--listen", "tcp:10013", "--listen", "udp:10013"],
                '[services.daytime]\nlisten = ["tcp:10013", "udp:10013"]\n',
            ),
            (
                ["--proto", "linelogger", "--max-line-length", "100"],
                "[services.linelogger]\nmax-line-length = 100\n",
            ),
            (["--proto", "greeting", "--message", "hi"], '[services.greeting]\nmessage = "hi"\n'),
        ]:
            cli = self.commandLine(*argv)
            [fromFile] = self.parse(text).services
            for field in ("name", "protocol", "listen", "settings"):
                self.assertEqual(getattr(cli, field), getattr(fromFile, field), (argv, field))

    def test_samePolicyFromBothFrontEnds(self) -> None:
        """A policy given on the command line equals the same policy given in a file."""
        options = optionsFor(builtins(), lambda requested: "epoll")()
        if "max-connections" not in options:
            raise SkipTest("the command line has no policy options yet")
        cli = self.commandLine("--proto", "echo", "--max-connections", "5", "--idle-timeout", "30")
        [fromFile] = self.parse(
            "[services.echo]\nmax-connections = 5\nidle-timeout = 30\n"
        ).services
        self.assertEqual(cli.policy, fromFile.policy)


class DefaultsTests(ConfigTestCase):
    def test_defaultsInheritedAndOverridden(self) -> None:
        """[defaults] applies to every service, and a service's own key overrides it."""
        config = self.parse(
            "[defaults]\nidle-timeout = 30\nmax-connections = 10\n"
            "[services.echo]\n[services.time]\nmax-connections = 3\n"
        )
        echo, time = (s.policy for s in config.services)
        self.assertEqual((echo.idleTimeout, echo.maxConnections), (30, 10))
        self.assertEqual((time.idleTimeout, time.maxConnections), (30, 3))
        self.assertEqual(echo.maxPerSource, Policy().maxPerSource)

    def test_serviceAllowReplacesDefaultAllow(self) -> None:
        """A service's allow list replaces the default one instead of adding to it."""
        config = self.parse(
            '[defaults]\nallow = ["10.0.0.0/8"]\ndeny = ["10.9.0.0/16"]\n'
            '[services.echo]\nallow = ["192.168.0.0/16"]\n[services.time]\n'
        )
        echo, time = (s.policy.access for s in config.services)
        self.assertEqual([str(n) for n in echo.allow], ["192.168.0.0/16"])
        self.assertEqual([str(n) for n in echo.deny], ["10.9.0.0/16"])
        self.assertFalse(echo.allows("10.1.2.3"))
        self.assertTrue(echo.allows("192.168.1.1"))
        self.assertEqual([str(n) for n in time.allow], ["10.0.0.0/8"])

    def test_serviceDenyReplacesDefaultDeny(self) -> None:
        """A service's deny list replaces the default one, so an empty list lifts it."""
        [echo] = self.parse(
            '[defaults]\ndeny = ["192.0.2.0/24"]\n[services.echo]\ndeny = []\n'
        ).services
        self.assertEqual(echo.policy.access.deny, ())
        self.assertTrue(echo.policy.access.allows("192.0.2.1"))

    def test_singleNetworkString(self) -> None:
        """A single network may be written as a string instead of a list."""
        [echo] = self.parse('[services.echo]\ndeny = "192.0.2.0/24"\n').services
        self.assertEqual([str(n) for n in echo.policy.access.deny], ["192.0.2.0/24"])


class ErrorTests(ConfigTestCase):
    def test_badPolicyValue(self) -> None:
        """A policy value of the wrong type names the file, the service and the key."""
        error = self.failure('[services.echo]\nmax-connections = "lots"\n')
        self.assertEqual(
            str(error),
            "netd.toml: service 'echo': max-connections: expected a whole number >= 0, got 'lots'",
        )
        self.assertEqual((error.path, error.service, error.key), (FILE, "echo", "max-connections"))

    def test_infiniteWholeNumber(self) -> None:
        """C{inf} where a whole number belongs is a one-line error naming the key, not a traceback."""
        error = self.failure("[services.echo]\nmax-connections = inf\n")
        self.assertEqual(
            str(error),
            "netd.toml: service 'echo': max-connections: expected a whole number >= 0, got inf",
        )
        error = self.failure("[services.linelogger]\nmax-line-length = -inf\n")
        self.assertEqual(
            str(error),
            "netd.toml: service 'linelogger': max-line-length: "
            "expected a positive integer, got -inf",
        )

    def test_errorShowsNoTerminalEscape(self) -> None:
        """A service named with an ESC (or any control character) is shown escaped in the error, never raw."""
        error = self.failure('[services]\n"\\u001b[2Jecho" = 5\n')
        self.assertEqual(
            str(error),
            "netd.toml: service '\\x1b[2Jecho': expected a table [services.\\x1b[2Jecho], got 5",
        )

    def test_networksMustBeAList(self) -> None:
        """C{allow = 10} is refused, naming the key."""
        error = self.failure("[services.echo]\nallow = 10\n")
        self.assertEqual(
            str(error), "netd.toml: service 'echo': allow: expected a list of networks, got 10"
        )

    def test_enabledMustBeBoolean(self) -> None:
        """C{enabled = "yes"} is refused, naming the key."""
        error = self.failure('[services.echo]\nenabled = "yes"\n')
        self.assertEqual(
            str(error), "netd.toml: service 'echo': enabled: expected true or false, got 'yes'"
        )

    def test_booleanPolicyKeyMustBeBoolean(self) -> None:
        """A flag such as allow-amplification takes true or false, not a string."""
        error = self.failure('[services.chargen]\nallow-amplification = "yes"\n')
        self.assertIn("service 'chargen': allow-amplification: expected true or false", str(error))

    def test_unknownServiceKeySuggests(self) -> None:
        """A misspelt key is refused with the closest valid key."""
        error = self.failure("[services.echo]\nmax-conections = 100\n")
        self.assertEqual(
            str(error),
            "netd.toml: service 'echo': unknown key 'max-conections' "
            "(did you mean 'max-connections'?)",
        )

    def test_optionOfAnotherProtocol(self) -> None:
        """A protocol option in the table of a protocol that lacks it is an unknown key."""
        error = self.failure('[services.echo]\nmessage = "hi"\n')
        self.assertEqual(
            str(error),
            "netd.toml: service 'echo': unknown key 'message' (an option of greeting, not of echo)",
        )

    def test_unknownKeyWithoutCloseMatchListsKeys(self) -> None:
        """An unknown key with no close match lists every key the table takes."""
        error = self.failure("[services.linelogger]\nzzz = 1\n")
        self.assertIn("service 'linelogger': unknown key 'zzz' (known keys: protocol, ", str(error))
        self.assertIn("max-line-length, output", str(error))

    def test_unknownTopLevelKey(self) -> None:
        """An unknown top-level key or table is refused, with a suggestion."""
        error = self.failure("shutdown-timout = 3\n[services.echo]\n")
        self.assertEqual(
            str(error),
            "netd.toml: unknown key 'shutdown-timout' (did you mean 'shutdown-timeout'?)",
        )
        error = self.failure("[service.echo]\n")
        self.assertIn("unknown key 'service' (did you mean 'services'?)", str(error))

    def test_unknownDefaultsKey(self) -> None:
        """A key in [defaults] that is not a policy key is refused, naming the table."""
        error = self.failure('[defaults]\nlisten = "tcp:7"\n[services.echo]\n')
        self.assertTrue(str(error).startswith("netd.toml: [defaults]: unknown key 'listen'"))

    def test_badDefaultsValue(self) -> None:
        """A bad value in [defaults] names the table and the key."""
        error = self.failure("[defaults]\nidle-timeout = -5\n[services.echo]\n")
        self.assertEqual(
            str(error), "netd.toml: [defaults]: idle-timeout: expected a number >= 0, got -5"
        )

    def test_badDaemonSetting(self) -> None:
        """A bad top-level value names the key."""
        error = self.failure('log-format = "xml"\n[services.echo]\n')
        self.assertEqual(
            str(error), 'netd.toml: log-format: expected "text" or "json", got \'xml\''
        )
        error = self.failure('shutdown-timeout = "soon"\n[services.echo]\n')
        self.assertEqual(
            str(error), "netd.toml: shutdown-timeout: expected a number >= 0, got 'soon'"
        )

    def test_unknownProtocol(self) -> None:
        """An unknown protocol is refused, listing the valid names."""
        error = self.failure('[services.web]\nprotocol = "http"\n')
        self.assertIn("netd.toml: service 'web': protocol: unknown protocol 'http'", str(error))
        self.assertIn("choose one of: chargen, daytime, discard, echo", str(error))

    def test_tableNameNotAProtocol(self) -> None:
        """A table named after no protocol, without C{protocol}, says how to choose one."""
        error = self.failure("[services.web]\n")
        self.assertIn("service 'web': protocol: unknown protocol 'web'", str(error))
        self.assertIn("no protocol key, so the table name was taken", str(error))

    def test_badNetwork(self) -> None:
        """A network that is not a literal CIDR names the service and the list."""
        error = self.failure('[services.echo]\ndeny = ["example.com"]\n')
        self.assertTrue(str(error).startswith("netd.toml: service 'echo': deny: "), str(error))
        self.assertIn("example.com", str(error))
        error = self.failure('[defaults]\nallow = ["10.0.0.1/8"]\n[services.echo]\n')
        self.assertTrue(str(error).startswith("netd.toml: [defaults]: allow: "), str(error))

    def test_badProtocolOption(self) -> None:
        """A bad value for a protocol's own option names the service and the option."""
        error = self.failure("[services.linelogger]\nmax-line-length = 0\n")
        self.assertEqual(
            str(error),
            "netd.toml: service 'linelogger': max-line-length: expected a positive integer, got 0",
        )
        error = self.failure("[services.greeting]\nmessage = 5\n")
        self.assertEqual(str(error), "netd.toml: service 'greeting': message: expected text, got 5")

    def test_badListen(self) -> None:
        """A malformed listener or a listen value of the wrong type names the service and key."""
        error = self.failure('[services.echo]\nlisten = ["tcp:99999"]\n')
        self.assertIn("service 'echo': listen: bad listen endpoint 'tcp:99999'", str(error))
        error = self.failure("[services.echo]\nlisten = [7]\n")
        self.assertEqual(
            str(error), "netd.toml: service 'echo': listen: expected an endpoint string, got 7"
        )
        error = self.failure("[services.echo]\nlisten = []\n")
        self.assertIn("service 'echo': listen: expected a non-empty list", str(error))

    def test_transportMismatch(self) -> None:
        """A UDP listener for a TCP-only protocol names the service and the listener."""
        error = self.failure('[services.greeting]\nlisten = "udp:10017"\n')
        self.assertEqual(
            str(error),
            "netd.toml: service 'greeting': listen: greeting is TCP-only: "
            "it cannot serve the UDP listener udp:10017",
        )

    def test_chargenOverUdpRefused(self) -> None:
        """chargen over UDP without allow-amplification is refused, saying how to allow it."""
        error = self.failure('[services.chargen]\nlisten = "udp:10019"\n')
        self.assertIn("netd.toml: service 'chargen': listen: chargen over UDP", str(error))
        self.assertIn("allow-amplification", str(error))

    def test_amplificationAllowedInDefaults(self) -> None:
        """allow-amplification in [defaults] is inherited like any policy key."""
        config = self.parse(
            '[defaults]\nallow-amplification = true\n[services.chargen]\nlisten = "udp:10019"\n'
        )
        self.assertTrue(config.services[0].policy.allowAmplification)

    def test_sharedAddressNamesBothServices(self) -> None:
        """Two services on one address is an error naming both."""
        error = self.failure(
            '[services.echo]\nlisten = "tcp:7000"\n'
            '[services.other]\nprotocol = "discard"\nlisten = "tcp:7000:interface=0.0.0.0"\n'
        )
        self.assertIn("service 'other': listen: ", str(error))
        self.assertIn("service 'echo'", str(error))
        self.assertEqual(error.service, "other")

    def test_noEnabledService(self) -> None:
        """A file that serves nothing, empty or all disabled, is an error."""
        for text in ["", "shutdown-timeout = 1\n", "[services.echo]\nenabled = false\n"]:
            error = self.failure(text)
            self.assertIn("no enabled service", str(error))

    def test_serviceMustBeATable(self) -> None:
        """A service that is not a table is refused, naming it."""
        error = self.failure("[services]\necho = 1\n")
        self.assertIn("netd.toml: service 'echo': expected a table", str(error))
        error = self.failure("services = 1\n")
        self.assertIn("netd.toml: services: expected a table", str(error))

    def test_syntaxErrorHasLineNumber(self) -> None:
        """A TOML syntax error is one line with the file name and line number."""
        error = self.failure("[services.echo]\n\nmax-connections = \n")
        self.assertTrue(str(error).startswith("netd.toml: line 3: Invalid value"), str(error))

    def test_syntaxErrorAtEndOfFile(self) -> None:
        """A syntax error at the very end says so, still on one line."""
        error = self.failure('[services.greeting]\nmessage = "unterminated')
        self.assertEqual(str(error), "netd.toml: Unterminated string at end of file")

    def test_duplicateService(self) -> None:
        """A service table declared twice is a one-line error with its line number."""
        error = self.failure("[services.echo]\n[services.time]\n[services.echo]\n")
        self.assertTrue(str(error).startswith("netd.toml: line 3: "), str(error))
        self.assertIn("('services', 'echo')", str(error))

    def test_missingFile(self) -> None:
        """A file that cannot be read is one line naming it and the reason."""
        path = self.mktemp()
        error = self.assertRaises(ConfigFileError, loadConfig, path, builtins())
        self.assertEqual(str(error), f"{path}: cannot read: No such file or directory")

    def test_fileSyntaxError(self) -> None:
        """A syntax error in a file on disk names that file and the line."""
        path = self.mktemp()
        with open(path, "w", encoding="utf-8") as f:
            f.write("[services.echo]\nlisten = [\n")
        error = self.assertRaises(ConfigFileError, loadConfig, path, builtins())
        self.assertTrue(str(error).startswith(f"{path}: "), str(error))
        self.assertEqual(len(str(error).splitlines()), 1)

    def test_notUtf8(self) -> None:
        """A file that is not UTF-8 is one line naming it."""
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(b'[services.greeting]\nmessage = "\xff"\n')
        error = self.assertRaises(ConfigFileError, loadConfig, path, builtins())
        self.assertTrue(str(error).startswith(f"{path}: "), str(error))
