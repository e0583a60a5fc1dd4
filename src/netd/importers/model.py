"""
What an import produces, whatever the source format: services described by netd's own
config keys, the notes about what has no equivalent, and the one error that stops it.

The model holds netd's key names and values exactly as the config file spells them, so
the writer only formats and the converters are the one place that knows both worlds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from netd.listen.endpoint import parseListen

__all__ = ["ImportFailure", "ImportedConfig", "ImportedService", "Note", "Origin", "isNumber"]


def isNumber(text: str) -> bool:
    """
    Whether C{text} is written in ASCII digits only (C{str.isdigit} also accepts
    C{"²"}, which C{int} then refuses).
    """
    return text.isascii() and text.isdigit()


@dataclass(frozen=True, order=True)
class Origin:
    """Where something was read: a file and a line number (1-based)."""

    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(frozen=True)
class Note:
    """
    One line on stderr: an attribute netd has no equivalent for, or a change of meaning
    the user should know about.  C{FILE:LINE: service 'NAME': ATTRIBUTE: MESSAGE}, so an
    editor jumps to the line and a grep finds every note about one service.

    @ivar scope: C{service 'NAME'}, C{defaults}, or C{None} for a file-level note (an
        include).
    """

    origin: Origin
    scope: str | None
    attribute: str
    message: str

    def __str__(self) -> str:
        where = f"{self.scope}: " if self.scope is not None else ""
        return f"{self.origin}: {where}{self.attribute}: {self.message}"


class ImportFailure(Exception):
    """
    A file that cannot be converted (unreadable, garbled): one line for the user, naming
    the file and, when known, the line.
    """

    def __init__(self, problem: str, origin: Origin | None = None, path: str | None = None):
        where = str(origin) if origin is not None else path
        super().__init__(f"{where}: {problem}" if where else problem)


@dataclass
class ImportedService:
    """
    One C{[services.NAME]} table.

    @ivar keys: netd's keys in the order they are written (C{protocol} or C{exec} first,
        then C{listen}, then the rest), with TOML-ready values.
    @ivar source: the original lines, quoted in a comment above the table.
    @ivar commentedOut: why the table is written as a comment rather than as TOML
        (it would make the file unservable, e.g. UDP chargen), or C{None}.
    """

    name: str
    origin: Origin
    keys: dict[str, Any] = field(default_factory=dict)
    source: list[str] = field(default_factory=list)
    commentedOut: str | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.keys.get("enabled", True)) and self.commentedOut is None

    @property
    def internal(self) -> bool:
        """Served by one of netd's own protocols (no program, no forward)."""
        return "protocol" in self.keys


@dataclass
class ImportedConfig:
    """Everything one import produced, in source order."""

    path: str
    kind: str
    services: list[ImportedService] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    #: The files read, in the order they were read (includes in place).
    files: list[str] = field(default_factory=list)

    def sortedNotes(self) -> list[Note]:
        """The notes in reading order: by file as read, then by line."""
        order = {path: position for position, path in enumerate(self.files)}
        return sorted(self.notes, key=lambda n: (order.get(n.origin.path, -1), n.origin.line))

    def note(self, origin: Origin, service: str | None, attribute: str, message: str) -> None:
        """
        Add a note about C{service} (C{None}: the C{defaults} block), once per source line
        and attribute: a C{defaults} line inherited by ten services is one note.
        """
        scope = f"service {service!r}" if service is not None else "defaults"
        if any(n.origin == origin and n.attribute == attribute for n in self.notes):
            return
        self.notes.append(Note(origin, scope, attribute, message))

    def settle(self) -> None:
        """
        Give every table a unique name and every enabled listener one owner, as xinetd
        does for ids: a later duplicate that changes nothing is left out, one that
        differs is renamed, and one that would bind an address already served is
        disabled (netd refuses a file where two services claim one address).
        """
        kept: dict[str, ImportedService] = {}
        bound: dict[tuple[str, ...], str] = {}
        for table in list(self.services):
            earlier = kept.get(table.name)
            if earlier is not None and earlier.keys == table.keys:
                self.services.remove(table)
                self.note(
                    table.origin, table.name, "id", f"same service as {earlier.origin}: left out"
                )
                continue
            if earlier is not None:
                table.name = _freeName(table.name, kept)
                self.note(table.origin, table.name, "id",
                          f"the name is also used at {earlier.origin}: this one is {table.name!r}")  # fmt: skip
            kept[table.name] = table
            if table.enabled:
                self._claim(table, bound)

    def _claim(self, table: ImportedService, bound: dict[tuple[str, ...], str]) -> None:
        """Bind C{table}'s listeners, or disable it if another table has one already."""
        keys = [parseListen(listen).bindKey() for listen in table.keys["listen"]]
        for listen, key in zip(table.keys["listen"], keys, strict=True):
            owner = bound.get(key) if key is not None else None
            if owner is not None:
                table.keys["enabled"] = False
                self.note(table.origin, table.name, "listen",
                          f"{listen} is already served by {owner!r}: written disabled")  # fmt: skip
                return
        for key in keys:
            if key is not None:
                bound[key] = table.name


def _freeName(name: str, taken: dict[str, Any]) -> str:
    """C{name-2}, C{name-3}...: the first not in C{taken}."""
    number = 2
    while f"{name}-{number}" in taken:
        number += 1
    return f"{name}-{number}"
