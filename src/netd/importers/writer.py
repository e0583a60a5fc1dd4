"""
The imported configuration as a TOML file for C{twistd -n netd --config}.

Values are serialised by C{tomli_w} (the writer companion of the standard library's
C{tomllib}, which only reads): quoting and escaping of arbitrary strings from old
configuration files is exactly what not to write by hand.  This module only adds what
TOML writers do not: the order of keys, and comments quoting each service's source lines.
"""

from __future__ import annotations

from typing import Any

import tomli_w

from netd.config.policy import POLICY_KEYS
from netd.importers.model import ImportedConfig, ImportedService

__all__ = ["KEY_ORDER", "render"]

#: The order keys are written in: what the service is, where it listens, whether it is
#: on, how its program runs (issue 9's keys), then the policy keys in netd's own order.
KEY_ORDER = (
    "protocol",
    "exec",
    "forward",
    "send-proxy",
    "listen",
    "enabled",
    "wait",
    "user",
    "group",
    "env",
    "pass-env",
    "chdir",
    "umask",
    "nice",
    "rlimits",
    "stderr",
    *(key.name for key in POLICY_KEYS),
)


def render(config: ImportedConfig) -> str:
    """The whole file: a header, then one table (or commented-out table) per service."""
    chunks = [
        f"# netd configuration converted by `netd import {config.kind} {_printable(config.path)}`.\n"
        "# Review it, then: twistd -n netd --config THIS-FILE\n"
    ]
    chunks.extend(_service(service) for service in config.services)
    return "\n".join(chunks)


def _service(service: ImportedService) -> str:
    comments = "".join(f"# from {_printable(line)}\n" for line in service.source)
    body = tomli_w.dumps({"services": {service.name: _ordered(service.keys)}})
    if service.commentedOut is not None:
        quoted = "".join(f"# {line}\n" if line else "#\n" for line in body.splitlines())
        return f"{comments}# Not served: {service.commentedOut}.\n{quoted}"
    return comments + body


def _ordered(keys: dict[str, Any]) -> dict[str, Any]:
    rank = {name: position for position, name in enumerate(KEY_ORDER)}
    return dict(sorted(keys.items(), key=lambda item: rank.get(item[0], len(rank))))


def _printable(text: str) -> str:
    """
    C{text} fit for a TOML comment, which may hold no control character: an old file's
    line is quoted as it was, with anything else escaped as C{repr} does.
    """
    return "".join(c if c.isprintable() or c == "\t" else repr(c)[1:-1] for c in text)
