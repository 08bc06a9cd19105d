"""Errors a person reads: one line each, saying what is wrong and where."""

from __future__ import annotations

import codecs


def one_line(problem: object) -> str:
    """A message (or an exception's) with its line breaks and runs of spaces folded into single
    spaces; an exception with no message gives its type's name."""
    text = " ".join(str(problem).split())
    return text or type(problem).__name__


def decode_utf8(raw: bytes, where: str, error: type[Exception]) -> str:
    """``raw`` as UTF-8 text, a leading byte-order mark dropped.

    A byte that is not UTF-8 raises ``error`` naming ``where``, the line and the byte offset, so
    the bad byte can be found and the file re-saved as UTF-8.
    """
    skip = len(codecs.BOM_UTF8) if raw.startswith(codecs.BOM_UTF8) else 0
    try:
        return (raw[skip:] if skip else raw).decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = exc.start + skip
        line = raw.count(b"\n", 0, offset) + 1
        raise error(
            f"{where} is not UTF-8 text: byte 0x{raw[offset]:02x} at line {line} (byte offset "
            f"{offset}) cannot be decoded; re-save the file as UTF-8"
        ) from None
