"""
The contract between netd and the protocols it serves.

A protocol is found through Twisted's plugin system (L{twisted.plugin.getPlugins}), so a
third-party package adds one by shipping a module in its own C{twisted/plugins/} directory
holding an object that provides both L{twisted.plugin.IPlugin} and L{INetdProtocol}.
L{netd.plugin.ProtocolPlugin} is the ready-made implementation; the built-in services use
it too, through exactly the same discovery path.
"""

from __future__ import annotations

from zope.interface import Attribute, Interface

__all__ = ["INetdProtocol", "STREAM", "DATAGRAM"]

STREAM = "stream"
DATAGRAM = "datagram"


class INetdProtocol(Interface):
    """
    A network protocol netd can serve: its identity, what it runs over, its own options,
    and how to build what answers the network.
    """

    name = Attribute("C{str}: the C{--proto} name, unique among all installed protocols.")
    description = Attribute("C{str}: one line for C{netd --list} and C{--help}.")
    transports = Attribute(
        "C{frozenset} of L{STREAM} and/or L{DATAGRAM}: what the protocol can be served over."
    )
    options = Attribute(
        "C{Sequence} of L{netd.plugin.Option}: the protocol's own settings, each with a "
        "default, a coercion and a help line."
    )
    amplifies = Attribute(
        "C{bool}: whether a UDP reply can outweigh its request without bound (chargen); "
        "such a protocol serves UDP only when the policy allows amplification."
    )
    defaultPort = Attribute(
        "C{int}: the unprivileged port used on 127.0.0.1 when no listener is given."
    )

    def build(context):  # type: ignore[no-untyped-def]
        """
        Build what serves one configured service.

        Called once per service (not per listener), so state shared between a service's
        TCP and UDP listeners (an output file, say) lives in the result.

        @param context: the service's L{netd.plugin.ServiceContext}: its name, settings
            (coerced, defaults filled in), clock, and where to attach child services.
        @return: a L{netd.plugin.Served}.
        """
