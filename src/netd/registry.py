"""
The installed protocols, found through Twisted's plugin system.

Modelled on L{twisted.application.reactors}: records in an object, a lookup that fails
with an error naming the valid choices.  Built-in and third-party protocols arrive by the
same path (L{twisted.plugin.getPlugins}), so there is no list of built-ins to keep in sync.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from twisted.plugin import getPlugins

from netd.interfaces import INetdProtocol

__all__ = ["DuplicateProtocol", "Registry", "UnknownProtocol"]


class UnknownProtocol(KeyError):
    """No installed protocol has the name asked for."""

    def __init__(self, name: str, known: Iterable[str]) -> None:
        self.name = name
        self.known = sorted(known)
        super().__init__(name)

    def __str__(self) -> str:
        return f"unknown protocol {self.name!r}; choose one of: {', '.join(self.known)}"


class DuplicateProtocol(ValueError):
    """Two installed plugins claim the same protocol name."""


class Registry:
    """
    An immutable set of protocols by name.

    @raise DuplicateProtocol: from the constructor, when two protocols share a name;
        silently picking one would make which code serves a port depend on the order
        plugins happen to be scanned.
    """

    def __init__(self, protocols: Iterable[INetdProtocol]) -> None:
        byName: dict[str, INetdProtocol] = {}
        for protocol in protocols:
            if protocol.name in byName:
                raise DuplicateProtocol(
                    f"two plugins claim the protocol name {protocol.name!r}: "
                    f"{_origin(byName[protocol.name])} and {_origin(protocol)}"
                )
            byName[protocol.name] = protocol
        self._byName = dict(sorted(byName.items()))

    @classmethod
    def discover(cls) -> Registry:
        """Every protocol installed as a Twisted plugin on C{sys.path}."""
        return cls(getPlugins(INetdProtocol))

    def lookup(self, name: str) -> INetdProtocol:
        """
        @raise UnknownProtocol: listing the valid names.
        """
        try:
            return self._byName[name]
        except KeyError:
            raise UnknownProtocol(name, self._byName) from None

    def names(self) -> list[str]:
        return list(self._byName)

    def __iter__(self) -> Iterator[INetdProtocol]:
        return iter(self._byName.values())

    def __len__(self) -> int:
        return len(self._byName)


def _origin(protocol: INetdProtocol) -> str:
    """Where a protocol comes from, for the duplicate error: its builder or its class."""
    return str(getattr(protocol, "builder", None) or type(protocol).__module__)
