"""
Errors that end the daemon with one line for the user, never a traceback.
"""

from __future__ import annotations

from typing import TextIO

from twisted.logger import Logger

__all__ = ["StartupError", "reportStartupError"]

log = Logger()


class StartupError(SystemExit, Exception):
    """
    A startup failure the user can fix (a busy port, an unwritable file): exit status 1.

    A C{SystemExit}, so Python exits without a traceback; also an C{Exception}, so
    twistd's clean-up around startup (removing its pid file) still runs first.

    @ivar message: the one line shown to the user.
    """

    def __init__(self, message: str) -> None:
        super().__init__(1)
        self.message = message

    def __str__(self) -> str:
        return self.message


def reportStartupError(error: StartupError, stderr: TextIO | None) -> None:
    """
    Tell the user why startup stopped: in the log (for the log file or journal) and on
    the process's real stderr, which twistd has by now redirected into the log.
    """
    log.critical("{message}", message=error.message)
    if stderr is not None:
        stderr.write(f"netd: {error.message}\n")
        stderr.flush()
