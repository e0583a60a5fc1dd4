"""
Coercers: turn a command-line string or a config file value into a setting, or refuse it.

Every front end (the command line, the config file, protocol options of any plugin)
reads values through these, so one kind of value is accepted and refused the same way
everywhere, with one message fit for the user.  Each raises L{ValueError} with that
message; the caller adds which key or option it was.  A leaf: imports nothing of netd.
"""

from __future__ import annotations

import math
import re

__all__ = [
    "boolean",
    "byteSize",
    "nonNegativeInt",
    "nonNegativeNumber",
    "positiveInt",
    "text",
    "yesNo",
]


def _wholeNumber(value: object, minimum: int, expected: str) -> int:
    """C{value} as an integer >= C{minimum}: not a bool, not a float with a fraction."""
    problem = f"expected {expected}, got {value!r}"
    if isinstance(value, bool):
        raise ValueError(problem)
    try:
        number = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError, OverflowError):  # OverflowError: int(inf)
        raise ValueError(problem) from None
    if number < minimum or (isinstance(value, float) and number != value):
        raise ValueError(problem)
    return number


def nonNegativeInt(value: object) -> int:
    """An integer >= 0 (0 switches a limit off)."""
    return _wholeNumber(value, 0, "a whole number >= 0")


def positiveInt(value: object) -> int:
    """An integer greater than zero (a size, a count that cannot be off)."""
    return _wholeNumber(value, 1, "a positive integer")


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


def boolean(value: object) -> bool:
    """C{true}/C{false} in a config file; on the command line the flag's presence."""
    if isinstance(value, bool):
        return value
    raise ValueError(f"expected true or false, got {value!r}")


_YES = frozenset({"yes", "true", "on", "1"})
_NO = frozenset({"no", "false", "off", "0"})


def yesNo(value: object) -> bool:
    """
    A switch given as a value: a config file's C{true}/C{false}, or C{yes}/C{no} (also
    C{true}, C{on}, C{1}...) on the command line, where such options take a value.  A
    number in a config file is refused: C{1} there is more likely a typo than a switch.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _YES:
            return True
        if word in _NO:
            return False
    raise ValueError(f"expected yes or no, got {value!r}")


def text(value: object) -> str:
    """Text as given, refusing a config value of another type."""
    if not isinstance(value, str):
        raise ValueError(f"expected text, got {value!r}")
    return value


_SIZE = re.compile(r"(\d+)\s*([KMG]?)(?:i?B)?", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def byteSize(value: object) -> int:
    """
    A size in bytes greater than zero: a number, or text with an optional K, M or G
    suffix (powers of 1024: C{16M}, C{512KiB}).
    """
    number = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and (match := _SIZE.fullmatch(value.strip())):
        number = int(match.group(1)) * _UNITS[match.group(2).lower()]
    if number is None or number <= 0:
        raise ValueError(f"expected a size in bytes > 0 (suffix K, M or G allowed), got {value!r}")
    return number
