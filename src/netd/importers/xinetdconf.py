"""
xinetd's configuration language, read as xinetd reads it (C{parse.c}, C{parsesup.c},
C{includedir.c} of xinetd 2.3.15): entries and their assignments, in file order, with
C{include} and C{includedir} followed.

    service NAME          defaults          include FILE       includedir DIR
    {                     {
        ATTR = VALUE ...      ATTR = VALUE ...
        ATTR += VALUE ...
    }                     }

A line whose first non-blank character is C{#} is a comment (a C{#} later in a line is
not: it is part of a value, as in xinetd).  Values are split at blanks; the operator
needs a blank before it.  Meaning is left to L{netd.importers.xinetd}; this module only
knows the shape, and a file of the wrong shape is an L{ImportFailure} naming the line.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field

from netd.importers.model import ImportFailure, Note, Origin

__all__ = ["Assignment", "Entry", "parseXinetd"]

#: How deep includes may nest before the files are taken to include each other.
MAX_DEPTH = 16


@dataclass(frozen=True)
class Assignment:
    """C{name op values}, as written at C{origin}; C{op} is C{=}, C{+=} or C{-=}."""

    name: str
    op: str
    values: tuple[str, ...]
    origin: Origin


@dataclass
class Entry:
    """A C{service NAME} or C{defaults} block."""

    kind: str
    name: str
    origin: Origin
    assignments: list[Assignment] = field(default_factory=list)


@dataclass
class _Reader:
    entries: list[Entry] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    def file(self, path: str, depth: int, includedBy: Origin | None = None) -> None:
        if depth > MAX_DEPTH:
            raise ImportFailure(f"includes nest deeper than {MAX_DEPTH}: a loop?", includedBy)
        try:
            with open(path, encoding="utf-8", errors="surrogateescape") as stream:
                lines = stream.read().splitlines()
        except OSError as e:
            raise ImportFailure(f"cannot read: {e.strerror or e}", includedBy, path) from None
        self.files.append(path)
        self._parse(path, lines, depth)

    def _parse(self, path: str, lines: list[str], depth: int) -> None:
        numbered = (
            (number, text)
            for number, text in enumerate(lines, 1)
            if text.strip() and not text.lstrip().startswith("#")
        )
        for number, text in numbered:
            origin = Origin(path, number)
            words = text.split()
            keyword = words[0]
            if keyword in ("include", "includedir"):
                if len(words) < 2:
                    raise ImportFailure(f"{keyword} without a file name", origin)
                target = words[1]
                if keyword == "include":
                    self.file(target, depth + 1, origin)
                else:
                    self.directory(target, depth + 1, origin)
                continue
            if keyword == "service" and len(words) >= 2:
                entry = Entry("service", words[1], origin)
            elif keyword == "defaults":
                entry = Entry("defaults", "defaults", origin)
            elif keyword == "service":
                raise ImportFailure("service without a name", origin)
            else:
                raise ImportFailure(
                    f"expected 'service NAME', 'defaults', 'include' or 'includedir', "
                    f"got {keyword!r}",
                    origin,
                )
            self._block(entry, numbered, path)
            self.entries.append(entry)

    def _block(self, entry: Entry, lines: Iterator[tuple[int, str]], path: str) -> None:
        """The C{{ ... }} after an entry's first line (C{lines}: the file's, shared)."""
        opening = next(lines, None)
        if opening is None or opening[1].strip() != "{":
            where = Origin(path, opening[0]) if opening else entry.origin
            raise ImportFailure(f"{entry.kind} {entry.name}: expected a line with only '{{'", where)
        for number, text in lines:
            if text.strip() == "}":
                return
            entry.assignments.append(_assignment(text, Origin(path, number)))
        raise ImportFailure(f"{entry.kind} {entry.name}: no closing '}}'", entry.origin)

    def directory(self, path: str, depth: int, includedBy: Origin) -> None:
        """
        Every regular file of C{path} in C-locale order, except names with a C{.} or
        ending in C{~} (editor backups, package manager leftovers), as xinetd does.
        Like xinetd, an unreadable directory or file is reported and skipped.
        """
        try:
            names = sorted(os.listdir(path), key=os.fsencode)
        except OSError as e:
            self.notes.append(
                Note(includedBy, None, "includedir", f"cannot read {path}: {e.strerror or e}")
            )
            return
        for name in names:
            if "." in name or name.endswith("~"):
                continue
            full = os.path.join(path, name)
            try:
                regular = stat.S_ISREG(os.stat(full).st_mode)
            except OSError:
                regular = False
            if not regular:
                self.notes.append(
                    Note(includedBy, None, "includedir", f"{full} is not a regular file: skipped")
                )
                continue
            self.file(full, depth, includedBy)


def _assignment(text: str, origin: Origin) -> Assignment:
    """
    C{name OP value ...}.  As in xinetd, the name ends at a blank or C{=}, and the
    operator must follow a blank: C{name=value} is refused, not guessed at.
    """
    match = _ASSIGNMENT.match(text.strip())
    if match is None:
        raise ImportFailure(f"expected 'attribute = value', got {text.strip()!r}", origin)
    return Assignment(match["name"], match["op"], tuple(match["values"].split()), origin)


_ASSIGNMENT = re.compile(r"^(?P<name>[^\s=]+)\s+(?P<op>\+=|-=|=)(?P<values>.*)$")


def parseXinetd(path: str) -> tuple[list[Entry], list[Note], list[str]]:
    """
    The entries of C{path} and of everything it includes, in the order xinetd reads them,
    the notes about what could not be included, and the files read.

    @raise ImportFailure: for an unreadable top-level or included file, or a line that is
        not xinetd's syntax.
    """
    reader = _Reader()
    reader.file(path, 0)
    return reader.entries, reader.notes, reader.files
