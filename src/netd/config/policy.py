"""
What a service allows and how much: access rules and limits, as one immutable value.

The command line and the config file both build a L{Policy} from the same table of keys
(L{POLICY_KEYS}): one name, one coercion, one help line per setting, so the two front
ends cannot drift apart.  C{0} switches a numeric limit off.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from netd.admission.access import AccessRules, BadRule

if TYPE_CHECKING:
    from netd.listen.tls import ClientAuthorities

__all__ = [
    "POLICY_KEYS",
    "DAEMON_KEYS",
    "DaemonSettings",
    "Policy",
    "PolicyError",
    "PolicyKey",
    "buildPolicy",
    "nonNegativeInt",
    "nonNegativeNumber",
]


def nonNegativeInt(value: object) -> int:
    """An integer >= 0 (0 switches the limit off)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a whole number >= 0, got {value!r}")
    try:
        number = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError, OverflowError):  # OverflowError: int(inf)
        raise ValueError(f"expected a whole number >= 0, got {value!r}") from None
    if number < 0 or (isinstance(value, float) and number != value):
        raise ValueError(f"expected a whole number >= 0, got {value!r}")
    return number


def nonNegativeNumber(value: object) -> float:
    """A finite number >= 0 (seconds, or a rate per second; 0 switches it off)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a number >= 0, got {value!r}")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"expected a number >= 0, got {value!r}") from None
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"expected a number >= 0, got {value!r}")
    return number


def ipv6Prefix(value: object) -> int:
    number = nonNegativeInt(value)
    if not 1 <= number <= 128:
        raise ValueError(f"expected a prefix length from 1 to 128, got {value!r}")
    return number


def atLeastOne(value: object) -> int:
    number = nonNegativeInt(value)
    if number < 1:
        raise ValueError(f"expected a whole number >= 1, got {value!r}")
    return number


def boolean(value: object) -> bool:
    """C{true}/C{false} in a config file; on the command line the flag's presence."""
    if isinstance(value, bool):
        return value
    raise ValueError(f"expected true or false, got {value!r}")


def banner(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected text, got {value!r}")
    return value


def tlsClientCA(value: object) -> ClientAuthorities:
    """
    A PEM file of CA certificates, read now (so a reload re-reads it) and checked: a
    missing file or one without a valid certificate is an error naming it.
    """
    from netd.listen.tls import loadClientAuthorities

    return loadClientAuthorities(value)


def yesNo(value: object) -> bool:
    """A switch given as a value: C{true}/C{false} in a file, C{yes}/C{no} on the command line."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("yes", "true", "on", "1"):
        return True
    if text in ("no", "false", "off", "0"):
        return False
    raise ValueError(f"expected yes or no, got {value!r}")


def networks(value: object) -> tuple[str, ...]:
    """A list of CIDR strings; checked by L{AccessRules.parse} when the policy is built."""
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"expected a list of networks, got {value!r}")
    return tuple(value)


@dataclass(frozen=True)
class Policy:
    """
    One service's access rules and limits.  Defaults are safe for a public address and
    generous for real clients; every numeric limit is off at C{0}.

    @ivar maxConnections: concurrent connections for the whole service.
    @ivar maxPerSource: concurrent connections per source (an IPv4 address, or an IPv6
        network of C{ipv6Prefix} bits: one IPv6 client usually owns a whole /64).
    @ivar rate: new connections per second per source (a token bucket of C{burst}).
    @ivar idleTimeout: seconds without a byte either way before a connection is closed.
    @ivar maxLifetime: seconds any connection may last (for streaming services).
    @ivar refusedBanner: text sent to a refused TCP client before the close, if any.
    @ivar udpRate: datagrams answered per second per source (a bucket of C{udpBurst}).
    @ivar allowAmplification: serve UDP for a protocol whose reply outweighs any request
        (chargen); off, because such a service is a reflection amplifier.
    @ivar answerServicePorts: answer datagrams whose source port is one of this daemon's
        own UDP service ports; off, because that is how two servers loop (CVE-2024-2169).
    @ivar trustedProxies: the peers whose PROXY header a C{haproxy:} listener believes
        (loopback by default); anyone else could claim any client address.
    @ivar logConnections: log one line per finished connection (xinetd's
        C{log_on_success DURATION TRAFFIC}); off for a service whose connection rate
        makes the log the bottleneck (the counters and metrics stay).
    @ivar tlsClientCA: for C{ssl:} listeners, the CAs one of which must have issued the
        client's certificate; C{None}: no client certificate is asked for.
    """

    access: AccessRules = field(default_factory=lambda: AccessRules.parse((), ()))
    maxConnections: int = 1000
    maxPerSource: int = 64
    ipv6Prefix: int = 64
    rate: float = 50.0
    burst: int = 100
    idleTimeout: float = 300.0
    maxLifetime: float = 0.0
    refusedBanner: str | None = None
    udpRate: float = 100.0
    udpBurst: int = 200
    allowAmplification: bool = False
    answerServicePorts: bool = False
    trustedProxies: AccessRules = field(
        default_factory=lambda: AccessRules.parse(["127.0.0.0/8", "::1"], ())
    )
    tlsClientCA: ClientAuthorities | None = None
    logConnections: bool = True


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
        atLeastOne,
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
        banner,
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
        atLeastOne,
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


@dataclass(frozen=True)
class DaemonSettings:
    """
    Settings of the whole daemon rather than of one service.

    @ivar shutdownTimeout: seconds open connections get to finish after SIGTERM.
    @ivar udpReplyBudget: datagrams answered per second by all services together
        (0: no limit): a ceiling on what the daemon can reflect, whatever the sources.
    @ivar logFormat: C{"text"} (twistd's) or C{"json"} (one object per line).
    @ivar admin: the admin HTTP endpoint (health, metrics, status), or C{None} for none.
    @ivar workers: processes serving every listener (L{netd.workers}); 1 serves in
        this process, as netd always did.
    """

    shutdownTimeout: float = 5.0
    udpReplyBudget: float = 10000.0
    logFormat: str = "text"
    admin: str | None = None
    workers: int = 1


def adminEndpoint(value: object) -> str:
    """
    The admin HTTP listener: a stream endpoint string, or a bare port.  Loopback unless
    told otherwise: C{9100} and C{tcp:9100} both mean C{tcp:9100:interface=127.0.0.1};
    an explicit C{interface=} is taken as asked.
    """
    from netd.listen.endpoint import BadListen, parseListen

    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise ValueError(f"expected an endpoint, got {value!r}")
    description = f"tcp:{value}" if value.isdigit() else value
    kind, _, rest = description.partition(":")
    if kind in ("tcp", "tcp6") and "interface=" not in rest:
        description += ":interface=" + ("127.0.0.1" if kind == "tcp" else "\\:\\:1")
    try:
        spec = parseListen(description)
    except BadListen as e:
        raise ValueError(str(e)) from None
    if spec.kind != "stream":
        raise ValueError(f"the admin endpoint must be a stream endpoint, not {value!r}")
    return spec.description


#: The most worker processes netd starts: a typo (C{--workers 200}) must not fork-bomb.
MAX_WORKERS = 64


def workerCount(value: object) -> int:
    """A number of worker processes, from 1 to L{MAX_WORKERS}."""
    problem = f"expected a whole number from 1 to {MAX_WORKERS}, got {value!r}"
    try:
        number = nonNegativeInt(value)
    except ValueError:
        raise ValueError(problem) from None
    if not 1 <= number <= MAX_WORKERS:
        raise ValueError(problem)
    return number


def _logFormat(value: object) -> str:
    """C{"text"} or C{"json"}: the two formats L{DaemonSettings.logFormat} knows."""
    if value not in ("text", "json") or not isinstance(value, str):
        raise ValueError(f'expected "text" or "json", got {value!r}')
    return value


#: The top-level keys: settings of the whole daemon (L{DaemonSettings}), described with
#: the same records as the policy keys so one loop coerces both.
DAEMON_KEYS: tuple[PolicyKey, ...] = (
    PolicyKey(
        "shutdown-timeout",
        "shutdownTimeout",
        nonNegativeNumber,
        "seconds open connections get to finish after SIGTERM",
    ),
    PolicyKey(
        "udp-reply-budget",
        "udpReplyBudget",
        nonNegativeNumber,
        "datagrams answered per second by all services together (0: no limit)",
    ),
    PolicyKey(
        "log-format",
        "logFormat",
        _logFormat,
        'log lines as "text" (twistd\'s) or "json" (one object per line)',
    ),
    PolicyKey(
        "admin",
        "admin",
        adminEndpoint,
        "serve /healthz, /metrics, /services on this endpoint (a port means 127.0.0.1:port)",
    ),
    PolicyKey(
        "workers",
        "workers",
        workerCount,
        "processes sharing every listener, supervised by this one (1: serve in this process)",
    ),
)
