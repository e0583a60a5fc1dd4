"""
Protocol discovery through Twisted's plugin system, and the plugin contract.
"""

from __future__ import annotations

from twisted.plugin import IPlugin
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from netd.interfaces import INetdProtocol
from netd.plugin import Option, ProtocolPlugin
from netd.registry import DuplicateProtocol, Registry, UnknownProtocol
from tests.support import builtins

CLASSIC = ["chargen", "daytime", "discard", "echo", "greeting", "linelogger", "logger", "time"]


class RegistryTests(SynchronousTestCase):
    def test_builtinsAreFoundAsPlugins(self) -> None:
        """Every built-in service is found through getPlugins, like a third-party one."""
        self.assertEqual(builtins().names(), CLASSIC)

    def test_builtinsProvideTheContract(self) -> None:
        """Each built-in provides IPlugin and INetdProtocol and has a one-line description."""
        for protocol in builtins():
            verifyObject(INetdProtocol, protocol)
            verifyObject(IPlugin, protocol)
            self.assertNotIn("\n", protocol.description)
            self.assertGreaterEqual(protocol.defaultPort, 1024)

    def test_unknownNameListsTheValidOnes(self) -> None:
        """Looking up an unknown protocol fails with the valid names in the message."""
        error = self.assertRaises(UnknownProtocol, builtins().lookup, "ehco")
        self.assertIn("'ehco'", str(error))
        self.assertIn("chargen, daytime, discard, echo", str(error))

    def test_twoPluginsOneNameIsAnError(self) -> None:
        """Two plugins claiming one protocol name are refused, naming both."""
        a = ProtocolPlugin(name="x", description="a", builder="pkg.a.build", defaultPort=10000)
        b = ProtocolPlugin(name="x", description="b", builder="other.b.build", defaultPort=10001)
        error = self.assertRaises(DuplicateProtocol, Registry, [a, b])
        self.assertIn("pkg.a.build", str(error))
        self.assertIn("other.b.build", str(error))

    def test_pluginValidatesTransports(self) -> None:
        """A plugin declaring a transport netd does not know is rejected when declared."""
        self.assertRaises(
            ValueError,
            ProtocolPlugin,
            name="x",
            description="x",
            builder="x.build",
            defaultPort=1,
            transports=frozenset({"carrier-pigeon"}),
        )

    def test_pluginOptionsAreDeclared(self) -> None:
        """Protocol options carry a default, a coercion and help."""
        [option] = [o for o in builtins().lookup("greeting").options]
        self.assertIsInstance(option, Option)
        self.assertEqual(option.name, "message")
