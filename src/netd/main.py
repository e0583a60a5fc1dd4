"""
The C{netd} console script: C{twistd -n netd ...} without having to type twistd.

It runs twistd's own runner in the foreground, so logging, signal handling (SIGTERM,
SIGUSR1 log reopening) and privilege dropping behave exactly as under twistd.  The
reactor is installed while netd's options are parsed, before twistd imports one.
"""

from __future__ import annotations

import sys

__all__ = ["main", "twistdArguments"]


def twistdArguments(argv: list[str]) -> list[str]:
    """
    The twistd command line for C{netd ARGS}: foreground, no pid file (a foreground
    process is supervised by its caller, and a stale C{twistd.pid} in the current
    directory would block the next start).
    """
    return ["twistd", "--nodaemon", "--pidfile=", "netd", *argv]


def main(argv: list[str] | None = None) -> None:
    """Run netd in the foreground with C{argv} (default: the process arguments)."""
    from twisted.scripts.twistd import run

    sys.argv = twistdArguments(sys.argv[1:] if argv is None else argv)
    run()
