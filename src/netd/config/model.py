"""
What netd serves, independent of where it was asked for: the command line builds the
same L{ServiceConfig}s a config file does, so both are validated by the same code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from netd.admission.policy import Policy
from netd.config.settings import DaemonSettings
from netd.interfaces import DATAGRAM, STREAM, INetdProtocol
from netd.listen.endpoint import ListenSpec, parseListen

__all__ = [
    "ConfigError",
    "DaemonConfig",
    "ServiceConfig",
    "checkAddresses",
    "checkAmplification",
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
    policy: Policy = field(default_factory=Policy)


@dataclass(frozen=True)
class DaemonConfig:
    """
    Everything netd serves, from the command line or a config file.

    @ivar path: the config file it came from, if any (what SIGHUP re-reads).
    """

    services: tuple[ServiceConfig, ...]
    settings: DaemonSettings = field(default_factory=DaemonSettings)
    path: str | None = None


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


def checkAmplification(
    protocol: INetdProtocol, listen: Sequence[ListenSpec], policy: Policy
) -> None:
    """
    @raise ConfigError: for a UDP listener of an amplifying protocol (chargen) that the
        policy did not explicitly allow: such a service reflects a small spoofed request
        as a large reply at a victim (US-CERT TA14-017A measured chargen at x358).
    """
    if getattr(protocol, "amplifies", False) and not policy.allowAmplification:
        for spec in listen:
            if spec.kind == DATAGRAM:
                raise ConfigError(
                    f"{protocol.name} over UDP amplifies reflection attacks; "
                    f"set allow-amplification to serve {spec.description}",
                    "listen",
                )


def checkAddresses(services: Sequence[ServiceConfig]) -> None:
    """
    @raise ConfigError: when two services would bind the same address (port 0 aside).
    """
    seen: dict[tuple[str, ...], str] = {}
    for service in services:
        for spec in service.listen:
            key = spec.bindKey()
            if key is None:
                continue
            if key in seen:
                raise ConfigError(
                    f"{spec.description} is also a listener of service {seen[key]!r}", "listen"
                )
            seen[key] = service.name


def defaultListen(protocol: INetdProtocol) -> tuple[ListenSpec, ...]:
    """
    Loopback only, unprivileged, stream only: the quickstart works as a normal user and
    exposes nothing (and reflects nothing over UDP) by accident.
    """
    return (parseListen(f"tcp:{protocol.defaultPort}:interface=127.0.0.1"),)
