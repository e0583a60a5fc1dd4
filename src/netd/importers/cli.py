"""
The command line: C{netd import xinetd|inetd FILE [--services FILE] [-o OUT]}.

The TOML goes to stdout (or C{-o}), one line per note to stderr; a file that cannot be
converted is one line on stderr and exit status 1, a usage mistake exit status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Sequence
from typing import TextIO

from netd.importers.inetd import importInetd
from netd.importers.model import ImportedConfig, ImportFailure
from netd.importers.ports import PortTable
from netd.importers.writer import render
from netd.importers.xinetd import importXinetd

__all__ = ["buildParser", "main"]

FORMATS: dict[str, Callable[[str, PortTable], ImportedConfig]] = {
    "xinetd": importXinetd,
    "inetd": importInetd,
}


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage mistake as one line (argparse prints the usage too)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"netd import: {message} (see netd import --help)\n")


def buildParser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="netd import",
        description="Convert an xinetd or inetd configuration into a netd TOML file. "
        "What has no netd equivalent is listed on stderr, one line per attribute.",
    )
    parser.add_argument("format", choices=sorted(FORMATS), help="the configuration's format")
    parser.add_argument(
        "file", help="the file to convert (xinetd: usually /etc/xinetd.conf, includes followed)"
    )
    parser.add_argument(
        "--services",
        default="/etc/services",
        metavar="FILE",
        help="port numbers of service names netd's own table lacks (default: /etc/services)",
    )
    parser.add_argument("-o", "--output", metavar="FILE", help="write the TOML here, not stdout")
    return parser


def main(
    argv: Sequence[str] | None = None, stdout: TextIO | None = None, stderr: TextIO | None = None
) -> int:
    """Run C{netd import ARGV}; returns the exit status."""
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            args = buildParser().parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 2
    try:
        config = FORMATS[args.format](args.file, PortTable(args.services))
        text = render(config)
    except ImportFailure as e:
        stderr.write(f"netd import: {e}\n")
        return 1
    for note in config.sortedNotes():
        stderr.write(f"{note}\n")
    if not any(service.enabled for service in config.services):
        stderr.write(
            f"{config.path}: no service is enabled: netd --config refuses such a file "
            "until one has enabled = true\n"
        )
    if args.output is None:
        stdout.write(text)
        return 0
    try:
        with open(args.output, "w", encoding="utf-8") as stream:
            stream.write(text)
    except OSError as e:
        stderr.write(f"netd import: {args.output}: cannot write: {e.strerror or e}\n")
        return 1
    return 0
