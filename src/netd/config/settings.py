"""
Settings of the whole daemon rather than of one service: shutdown, logs, admin, workers.

Described with the same records as the policy keys (L{netd.config.policy.PolicyKey}) so
one loop coerces both, on the command line and in the config file's top level.
"""

from __future__ import annotations

from dataclasses import dataclass

from netd.coerce import nonNegativeInt, nonNegativeNumber
from netd.config.policy import PolicyKey
from netd.listen.endpoint import BadListen, parseListen

__all__ = ["DAEMON_KEYS", "MAX_WORKERS", "DaemonSettings", "adminEndpoint", "workerCount"]


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
