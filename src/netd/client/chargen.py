"""
Checking RFC 864's character generator pattern, byte for byte.

The pattern is derived here from the RFC, not imported from netd's server: a verifier
sharing the server's code would share its bugs.  Line M{i} (0-94) is the 72 printable
ASCII characters starting at the M{i}th of the 95, then CRLF; the stream repeats the 95
lines forever.  A server may start at any line, so the first byte says where the
stream is in the cycle and every later byte is checked for continuity from there.
"""

from __future__ import annotations

__all__ = ["CYCLE", "LINE_LENGTH", "ChargenError", "ChargenVerifier", "verifyDatagram"]

_PRINTABLE = bytes(range(0x20, 0x7F))
_WIDTH = 72
#: A line's length on the wire: 72 characters and CRLF.
LINE_LENGTH = _WIDTH + 2
#: One full cycle of the pattern: 95 lines, 7030 bytes.
CYCLE = b"".join(
    (_PRINTABLE * 2)[start : start + _WIDTH] + b"\r\n" for start in range(len(_PRINTABLE))
)
#: Two cycles, so that any slice up to a cycle long starting anywhere in one is a slice.
_RING = CYCLE * 2


class ChargenError(ValueError):
    """The stream departs from the pattern; the message says where and how."""


class ChargenVerifier:
    """
    Check a chargen stream fed in chunks of any size, cut anywhere.

    @ivar received: bytes checked so far.
    @ivar startLine: the pattern line the stream started at (0-94), once known.
    """

    def __init__(self) -> None:
        self.received = 0
        self.startLine: int | None = None
        self._position = 0  # where in CYCLE the next byte belongs

    def feed(self, data: bytes) -> None:
        """
        Check the next C{data}.

        @raise ChargenError: at the first byte that breaks the pattern.
        """
        if not data:
            return
        if self.startLine is None:
            if data[0] not in _PRINTABLE:
                raise ChargenError(
                    f"byte 0 is {bytes(data[:1])!r}: the stream does not start at a line"
                )
            self.startLine = data[0] - _PRINTABLE[0]
            self._position = self.startLine * LINE_LENGTH
        done = 0
        while done < len(data):
            piece = data[done : done + len(CYCLE)]
            expected = _RING[self._position : self._position + len(piece)]
            if piece != expected:
                self._fail(piece, expected, done)
            done += len(piece)
            self._position = (self._position + len(piece)) % len(CYCLE)
        self.received += len(data)

    def _fail(self, piece: bytes, expected: bytes, done: int) -> None:
        index = next(i for i, (a, b) in enumerate(zip(piece, expected, strict=True)) if a != b)
        offset = self.received + done + index
        line, column = divmod(offset, LINE_LENGTH)
        want, got = expected[index : index + 1], piece[index : index + 1]
        if want in (b"\r", b"\n"):
            why = "a missing CRLF (line too long)"
        elif got in (b"\r", b"\n"):
            why = "a line cut short"
        elif column == 0:
            why = "a line skipped or repeated"
        else:
            why = "a corrupted byte"
        raise ChargenError(
            f"pattern broken at byte {offset} (line {line + 1} of the stream, column "
            f"{column + 1}): expected {want!r}, got {got!r}: {why}"
        )

    @property
    def lines(self) -> int:
        """Whole lines checked so far."""
        return self.received // LINE_LENGTH


def verifyDatagram(data: bytes) -> int:
    """
    Check one chargen datagram: RFC 864 over UDP sends whole lines, continuous within the
    datagram (each datagram may start anywhere).  Returns the number of lines.

    @raise ChargenError: for an empty datagram, a partial line, or a broken pattern.
    """
    if not data or len(data) % LINE_LENGTH:
        raise ChargenError(f"a datagram of {len(data)} bytes is not whole {LINE_LENGTH}-byte lines")
    verifier = ChargenVerifier()
    verifier.feed(data)
    return verifier.lines
