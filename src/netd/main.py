"""
The C{netd} console script.

C{netd ARGS} runs the daemon: twistd's own runner in the foreground, so logging, signal
handling (SIGTERM, SIGUSR1 log reopening) and privilege dropping behave exactly as under
twistd; the reactor is installed while netd's options are parsed, before twistd imports
one.  C{netd client ...} and C{netd bench ...} are the client and the load generator;
C{netd import xinetd|inetd FILE} converts an old inetd configuration.
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
    """Run C{netd} with C{argv} (default: the process arguments)."""
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "client":
        from netd.client import main as client

        sys.exit(client(args[1:]))
    if args and args[0] == "bench":
        from netd.bench import main as bench

        sys.exit(bench(args[1:]))
    if args and args[0] == "import":
        from netd.importers.cli import main as importer

        sys.exit(importer(args[1:]))
    from twisted.scripts.twistd import run

    sys.argv = twistdArguments(args)
    run()
