"""
What netd serves, independent of where it was asked for: the command line builds the
same L{ServiceConfig}s a config file does, so both are validated by the same code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from netd.endpoint import ListenSpec, parseListen
from netd.interfaces import DATAGRAM, STREAM, INetdProtocol

__all__ = [
    "ConfigError",
    "ServiceConfig",
    "checkListeners",
    "defaultListen",
    "resolveSettings",
]


class ConfigError(ValueError):
    """
    A service description netd cannot serve.

    @ivar problem: what is wrong, in one line.
    @ivar key: the option or config key at fault, if one is.
    """

    def __init__(self, problem: str, key: str | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.key = key

    def __str__(self) -> str:
        return self.problem if self.key is None else f"{self.key}: {self.problem}"


@dataclass(frozen=True)
class ServiceConfig:
    """
    One service: a protocol, where it listens, and its settings.

    @ivar settings: the protocol's options, coerced, every default filled in.
    """

    name: str
    protocol: INetdProtocol
    listen: tuple[ListenSpec, ...]
    settings: Mapping[str, Any] = field(default_factory=dict)


def resolveSettings(protocol: INetdProtocol, given: Mapping[str, Any]) -> dict[str, Any]:
    """
    Coerce C{given} with the protocol's own L{netd.plugin.Option}s and fill in defaults.

    @raise ConfigError: for an option the protocol does not have, or a bad value.
    """
    declared = {option.name: option for option in protocol.options}
    for key in given:
        if key not in declared:
            choices = ", ".join(sorted(declared)) or "none"
            raise ConfigError(f"not an option of {protocol.name} (its options: {choices})", key)
    settings: dict[str, Any] = {}
    for name, option in declared.items():
        if name in given:
            try:
                settings[name] = option.coerce(given[name])
            except ValueError as e:
                raise ConfigError(str(e), name) from None
        else:
            settings[name] = option.default
    return settings


def checkListeners(protocol: INetdProtocol, listen: Sequence[ListenSpec]) -> None:
    """
    @raise ConfigError: when a listener needs a transport the protocol lacks.
    """
    for spec in listen:
        if spec.kind not in protocol.transports:
            served = "TCP-only" if protocol.transports == {STREAM} else "UDP-only"
            kind = "UDP" if spec.kind == DATAGRAM else "stream"
            raise ConfigError(
                f"{protocol.name} is {served}: it cannot serve the {kind} listener {spec.description}"
            )


def defaultListen(protocol: INetdProtocol) -> tuple[ListenSpec, ...]:
    """
    Loopback only, unprivileged, stream only: the quickstart works as a normal user and
    exposes nothing (and reflects nothing over UDP) by accident.
    """
    return (parseListen(f"tcp:{protocol.defaultPort}:interface=127.0.0.1"),)
