"""
The per-service policy keys: one table that both the command line and the config file read.

The command line and the config file both build a L{Policy} from the same table of keys
(L{POLICY_KEYS}): one name, one coercion, one help line per setting, so the two front
ends cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from netd.admission.access import AccessRules, BadRule
from netd.admission.policy import Policy
from netd.coerce import boolean, nonNegativeInt, nonNegativeNumber, positiveInt, text, yesNo

if TYPE_CHECKING:
    from netd.listen.tls import ClientAuthorities

__all__ = ["POLICY_KEYS", "PolicyError", "PolicyKey", "buildPolicy"]


def ipv6Prefix(value: object) -> int:
    number = nonNegativeInt(value)
    if not 1 <= number <= 128:
        raise ValueError(f"expected a prefix length from 1 to 128, got {value!r}")
    return number


def tlsClientCA(value: object) -> ClientAuthorities:
    """
    A PEM file of CA certificates, read now (so a reload re-reads it) and checked: a
    missing file or one without a valid certificate is an error naming it.
    """
    from netd.listen.tls import loadClientAuthorities

    return loadClientAuthorities(value)


def networks(value: object) -> tuple[str, ...]:
    """A list of CIDR strings; checked by L{AccessRules.parse} when the policy is built."""
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"expected a list of networks, got {value!r}")
    return tuple(value)


@dataclass(frozen=True)
class PolicyKey:
    """One setting: its config key and command-line option name, its coercion, its help."""

    name: str
    attribute: str
    coerce: Callable[[Any], Any]
    help: str
    flag: bool = False
    repeatable: bool = False


POLICY_KEYS: tuple[PolicyKey, ...] = (
    PolicyKey(
        "allow",
        "allow",
        networks,
        "networks allowed (CIDR or address); if any are given, only these",
        repeatable=True,
    ),
    PolicyKey(
        "deny",
        "deny",
        networks,
        "networks refused (CIDR or address); the most specific rule wins, deny on a tie",
        repeatable=True,
    ),
    PolicyKey(
        "max-connections",
        "maxConnections",
        nonNegativeInt,
        "concurrent connections for the service (0: no limit)",
    ),
    PolicyKey(
        "max-per-source",
        "maxPerSource",
        nonNegativeInt,
        "concurrent connections per source address (0: no limit)",
    ),
    PolicyKey(
        "ipv6-prefix",
        "ipv6Prefix",
        ipv6Prefix,
        "IPv6 sources are counted per network of this many bits",
    ),
    PolicyKey(
        "rate", "rate", nonNegativeNumber, "new connections per second per source (0: no limit)"
    ),
    PolicyKey(
        "burst",
        "burst",
        positiveInt,
        "new connections a source may open at once before --rate applies",
    ),
    PolicyKey(
        "idle-timeout",
        "idleTimeout",
        nonNegativeNumber,
        "close a connection silent both ways this many seconds (0: never)",
    ),
    PolicyKey(
        "max-lifetime",
        "maxLifetime",
        nonNegativeNumber,
        "close any connection after this many seconds (0: never)",
    ),
    PolicyKey(
        "refused-banner",
        "refusedBanner",
        text,
        "text sent to a refused TCP client before closing",
    ),
    PolicyKey(
        "udp-rate",
        "udpRate",
        nonNegativeNumber,
        "datagrams answered per second per source (0: no limit)",
    ),
    PolicyKey(
        "udp-burst",
        "udpBurst",
        positiveInt,
        "datagrams a source may send at once before --udp-rate applies",
    ),
    PolicyKey(
        "allow-amplification",
        "allowAmplification",
        boolean,
        "serve UDP for protocols whose replies outweigh requests (chargen)",
        flag=True,
    ),
    PolicyKey(
        "trusted-proxies",
        "trustedProxies",
        networks,
        "peers whose PROXY header a haproxy: listener believes (default: loopback)",
        repeatable=True,
    ),
    PolicyKey(
        "answer-service-ports",
        "answerServicePorts",
        boolean,
        "answer datagrams from this daemon's own UDP service ports",
        flag=True,
    ),
    PolicyKey(
        "log-connections",
        "logConnections",
        yesNo,
        "log one line per finished connection: yes (default) or no",
    ),
    PolicyKey(
        "tls-client-ca",
        "tlsClientCA",
        tlsClientCA,
        "ssl: listeners require a client certificate issued by a CA of this PEM file",
    ),
)

_BY_NAME = {key.name: key for key in POLICY_KEYS}


def buildPolicy(values: Mapping[str, Any], base: Policy | None = None) -> Policy:
    """
    A L{Policy} from C{values} (key name -> raw value), on top of C{base}.

    @raise KeyError: for a name that is not a policy key (callers check first).
    @raise ValueError: naming the key, for a bad value or a bad network.
    """
    base = base or Policy()
    changes: dict[str, Any] = {}
    allow, deny = list(base.access.describe()["allow"]), list(base.access.describe()["deny"])
    for name, raw in values.items():
        key = _BY_NAME[name]
        try:
            value = key.coerce(raw)
        except ValueError as e:
            raise PolicyError(name, str(e)) from None
        if name == "allow":
            allow = list(value)
        elif name == "deny":
            deny = list(value)
        elif name == "trusted-proxies":
            try:
                changes[key.attribute] = AccessRules.parse(list(value), ())
            except BadRule as e:
                raise PolicyError(name, str(e).partition(": ")[2] or str(e)) from None
        else:
            changes[key.attribute] = value
    try:
        changes["access"] = AccessRules.parse(allow, deny)
    except BadRule as e:
        problem = str(e)
        which, _, rest = problem.partition(": ")
        raise PolicyError(
            which if which in ("allow", "deny") else "allow", rest or problem
        ) from None
    return replace(base, **changes)


class PolicyError(ValueError):
    """A bad policy value; C{key} names the setting."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem
