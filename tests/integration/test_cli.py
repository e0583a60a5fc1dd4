"""
The command line as a user meets it: reactors, the netd script, --list, and every kind of
bad input ending in one line on stderr with a non-zero status.
"""

from __future__ import annotations

import os
import socket
import sys
import textwrap

from twisted.trial.unittest import SynchronousTestCase

from tests.integration.daemon import NETD, TWISTD, Daemon, run

LOOP = "tcp:0:interface=127.0.0.1"


class BadInputTests(SynchronousTestCase):
    def assertOneLineError(self, argv: list[str], *fragments: str) -> None:
        result = run(argv)
        self.assertNotEqual(result.returncode, 0)
        self.assertNotIn("Traceback", result.stderr + result.stdout)
        lines = result.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, result.stderr)
        for fragment in fragments:
            self.assertIn(fragment, lines[0])

    def test_unknownProtocol(self) -> None:
        """An unknown protocol is one line listing the valid names."""
        self.assertOneLineError(
            NETD + ["--proto", "ehco"], "unknown protocol 'ehco'", "echo, greeting"
        )
        self.assertOneLineError(
            TWISTD + ["-n", "netd", "--proto", "ehco"], "unknown protocol 'ehco'"
        )

    def test_malformedEndpointAndBadPort(self) -> None:
        """A malformed endpoint or an out-of-range port is one line."""
        self.assertOneLineError(NETD + ["--proto", "echo", "--listen", "tpc:7"], "tpc:7")
        self.assertOneLineError(
            NETD + ["--proto", "echo", "--listen", "tcp:70000"], "not in 0-65535"
        )

    def test_udpOfTcpOnlyService(self) -> None:
        """UDP asked of a TCP-only service is one line."""
        self.assertOneLineError(NETD + ["--proto", "greeting", "--listen", "udp:0"], "TCP-only")

    def test_udpChargenNeedsExplicitConsent(self) -> None:
        """Chargen over UDP, a reflection amplifier, is refused unless explicitly allowed."""
        self.assertOneLineError(
            NETD + ["--proto", "chargen", "--listen", "udp:0"], "allow-amplification"
        )

    def test_badConfigFile(self) -> None:
        """A bad config file is one line naming the file, the service and the key, before anything listens."""
        path = self.mktemp()
        with open(path, "w") as f:
            f.write('[services.echo]\nlisten = ["tcp:0"]\nmax-connections = "lots"\n')
        self.assertOneLineError(
            NETD + ["--config", path], path, "service 'echo'", "max-connections"
        )
        self.assertOneLineError(
            NETD + ["--config", path, "--proto", "echo"], "cannot be combined with --config"
        )
        self.assertOneLineError(NETD + ["--config", path + ".missing"], "cannot read")

    def test_portInUse(self) -> None:
        """A port already in use is one line naming the service and the endpoint."""
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1]
            self.assertOneLineError(
                NETD + ["--proto", "echo", "--listen", f"tcp:{port}:interface=127.0.0.1"],
                "echo: cannot listen on",
                "Address already in use",
            )

    def test_unknownAndUnavailableReactor(self) -> None:
        """An unknown reactor, or one this platform lacks, is one line."""
        self.assertOneLineError(
            NETD + ["--proto", "echo", "--reactor", "turbo"], "unknown reactor 'turbo'"
        )
        if sys.platform.startswith("linux"):
            self.assertOneLineError(
                NETD + ["--proto", "echo", "--reactor", "kqueue"], "kqueue reactor is not available"
            )

    def test_conflictingReactor(self) -> None:
        """twistd -r wins; a different --reactor is refused clearly."""
        self.assertOneLineError(
            TWISTD
            + ["-r", "poll", "-n", "--pidfile=", "netd", "--proto", "echo", "--reactor", "select"],
            "--reactor select conflicts with the poll reactor",
        )


class ReactorTests(SynchronousTestCase):
    def test_autoChoiceIsLogged(self) -> None:
        """Without a choice, the platform's best reactor is used and logged by class name."""
        daemon = Daemon(["--proto", "echo", "--listen", LOOP])
        self.addCleanup(daemon.stop)
        expected = "EPollReactor" if sys.platform.startswith("linux") else "Reactor"
        self.assertIn(expected, daemon.logged("running on"))

    def test_twistdReactorFlagWins(self) -> None:
        """twistd -r poll serves with the poll reactor."""
        daemon = Daemon(
            ["--proto", "chargen", "--listen", LOOP],
            command=TWISTD + ["-r", "poll", "-n", "--pidfile=", "netd"],
        )
        self.addCleanup(daemon.stop)
        self.assertIn("PollReactor", daemon.logged("running on"))
        with socket.create_connection(daemon.address("chargen"), timeout=5) as sock:
            self.assertTrue(sock.recv(100))

    def test_reactorOption(self) -> None:
        """--reactor select and --reactor asyncio are installed before anything imports a reactor."""
        for name, cls in (("select", "SelectReactor"), ("asyncio", "AsyncioSelectorReactor")):
            daemon = Daemon(["--proto", "echo", "--listen", LOOP, "--reactor", name], command=NETD)
            self.addCleanup(daemon.stop)
            self.assertIn(cls, daemon.logged("running on"))
            with socket.create_connection(daemon.address("echo"), timeout=5) as sock:
                sock.sendall(b"hi")
                self.assertEqual(sock.recv(2), b"hi")


class ScriptTests(SynchronousTestCase):
    def test_netdScriptServesInForeground(self) -> None:
        """The netd script serves time over UDP in the foreground and stops on SIGTERM."""
        daemon = Daemon(["--proto", "time", "--listen", "udp:0:interface=127.0.0.1"], command=NETD)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(5)
            sock.sendto(b"", daemon.address("time", "UDP"))
            self.assertEqual(len(sock.recv(16)), 4)
        self.assertIn(daemon.stop(), (0, -15))

    def test_list(self) -> None:
        """netd --list shows every protocol with a one-line description."""
        result = run(NETD + ["--list"])
        self.assertEqual(result.returncode, 0)
        names = [line.split()[0] for line in result.stdout.splitlines()]
        self.assertEqual(
            names,
            ["chargen", "daytime", "discard", "echo", "greeting", "linelogger", "logger", "time"],
        )


PLUGIN = """
from netd.plugin import Option, ProtocolPlugin
hello = ProtocolPlugin(
    name="{name}",
    description="says hello, then closes",
    builder="hellopkg.build",
    defaultPort=10100,
    options=(Option("who", "world", str, "whom to greet"),),
)
"""

BUILDER = """
from twisted.internet.protocol import Protocol
from netd.plugin import Served, ServiceFactory

class Hello(Protocol):
    def connectionMade(self):
        self.transport.write(("hello " + self.factory.context.settings["who"] + "\\r\\n").encode())
        self.transport.loseConnection()

def build(context):
    return Served(stream=ServiceFactory(Hello, context))
"""


class ThirdPartyPluginTests(SynchronousTestCase):
    def makePackage(self, name: str = "hello") -> dict[str, str]:
        """A third-party package on PYTHONPATH shipping its own Twisted plugin."""
        root = self.mktemp()
        os.makedirs(os.path.join(root, "twisted", "plugins"))
        os.makedirs(os.path.join(root, "hellopkg"))
        with open(os.path.join(root, "twisted", "plugins", "hello_netd.py"), "w") as f:
            f.write(textwrap.dedent(PLUGIN.format(name=name)))
        with open(os.path.join(root, "hellopkg", "__init__.py"), "w") as f:
            f.write(textwrap.dedent(BUILDER))
        return dict(os.environ, PYTHONPATH=os.path.abspath(root))

    def test_pluginIsListedAndServes(self) -> None:
        """A protocol plugin found on sys.path appears in netd --list and serves, with its own option."""
        env = self.makePackage()
        listed = run(NETD + ["--list"], env=env)
        self.assertIn("says hello, then closes", listed.stdout)
        daemon = Daemon(
            ["--proto", "hello", "--listen", LOOP, "--who", "netd"], command=NETD, env=env
        )
        self.addCleanup(daemon.stop)
        with socket.create_connection(daemon.address("hello"), timeout=5) as sock:
            self.assertEqual(sock.recv(100), b"hello netd\r\n")

    def test_duplicateNameIsAStartupError(self) -> None:
        """A plugin claiming a built-in's name stops startup with one line naming both."""
        env = self.makePackage(name="echo")
        result = run(NETD + ["--proto", "echo"], env=env)
        self.assertNotEqual(result.returncode, 0)
        self.assertNotIn("Traceback", result.stderr)
        self.assertIn("two plugins claim the protocol name 'echo'", result.stderr)
