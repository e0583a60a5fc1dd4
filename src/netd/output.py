"""
The line logger's JSON-lines file.

Each record is one C{json.dumps(ensure_ascii=True)} line: a client's bytes can never
forge a record boundary (newlines are escaped) nor reach a terminal as an escape sequence
(control and non-ASCII characters are written as C{\\uXXXX}).  Each line goes out in one
C{write(2)} on an C{O_APPEND} descriptor, so a line is whole or absent after a crash.
"""

from __future__ import annotations

import json
import os
from typing import Any

from twisted.application.service import Service
from twisted.logger import Logger

__all__ = ["JsonLinesFile", "jsonLine"]


def jsonLine(record: dict[str, Any]) -> bytes:
    """One record as an ASCII JSON line."""
    return json.dumps(record, ensure_ascii=True, separators=(",", ":")).encode("ascii") + b"\n"


class JsonLinesFile(Service):
    """
    Append records to C{path} while the service runs.

    A write error is logged and the record dropped; it never stops the daemon.
    """

    log = Logger()

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None

    def startService(self) -> None:
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        super().startService()

    def stopService(self) -> None:
        super().stopService()
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def write(self, record: dict[str, Any]) -> None:
        if self._fd is None:
            self.log.error("{path} is not open; record dropped", path=self.path)
            return
        try:
            os.write(self._fd, jsonLine(record))
        except OSError as e:
            self.log.error("cannot write to {path}: {error}", path=self.path, error=e.strerror)
