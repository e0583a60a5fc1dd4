"""
The bytes a client sends, so that every echoed byte can be checked.

The byte at stream offset M{x} of a TCP connection is C{PATTERN[(base + x) % PATLEN]}, the
same pattern C{loadgen.c} uses: C{PATLEN} is prime, so neither a power-of-two chunk nor a
message size lines up with its period, and a lost, duplicated or reordered byte shifts the
stream against the pattern and shows as a mismatch.  Each connection starts at its own
C{base}, so bytes from another connection do not match either.  A UDP datagram carries its
sequence number (8 bytes, little-endian, as C{loadgen.c} writes a C{uint64_t} on x86)
followed by the pattern from an offset derived from that number.
"""

from __future__ import annotations

__all__ = [
    "CHUNK",
    "PATLEN",
    "PATTERN",
    "SPAN",
    "datagram",
    "matches",
    "streamBase",
    "streamBytes",
]

PATLEN = 65521
CHUNK = 65536
# PATTERN holds PATLEN + SPAN bytes so that any read of up to SPAN bytes (asyncio and
# uvloop read at most 256 KiB at a time) is compared against one slice, without a copy loop.
SPAN = 4 * CHUNK


def _pattern() -> bytes:
    """C{loadgen.c}'s C{pat[]}: the top byte of C{i * 2654435761} modulo 2**32."""
    period = bytes(((i * 2654435761) & 0xFFFFFFFF) >> 24 for i in range(PATLEN))
    return (period * (SPAN // PATLEN + 2))[: PATLEN + SPAN]


PATTERN = _pattern()


def streamBase(index: int) -> int:
    """The pattern offset where connection number C{index} starts (as in C{loadgen.c})."""
    return index * 7919 % PATLEN


def streamBytes(offset: int, size: int) -> bytes:
    """The C{size} bytes of the pattern from stream offset C{offset}."""
    start = offset % PATLEN
    if size <= SPAN:
        return PATTERN[start : start + size]
    parts = []
    while size > 0:
        step = min(size, SPAN)
        parts.append(PATTERN[start : start + step])
        start, size = (start + step) % PATLEN, size - step
    return b"".join(parts)


def matches(offset: int, data: bytes) -> bool:
    """Whether C{data} is exactly the pattern from stream offset C{offset}."""
    size = len(data)
    start = offset % PATLEN
    if size <= SPAN:
        return data == PATTERN[start : start + size]
    view = memoryview(data)
    for at in range(0, size, SPAN):
        piece = view[at : at + SPAN]
        if piece != PATTERN[start : start + len(piece)]:
            return False
        start = (start + len(piece)) % PATLEN
    return True


def datagram(seq: int, size: int) -> bytes:
    """The C{size}-byte UDP datagram number C{seq} (C{size} >= 8)."""
    start = seq * 7919 % PATLEN
    return seq.to_bytes(8, "little") + PATTERN[start : start + size - 8]
