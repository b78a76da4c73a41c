"""The text a PDF written by fpdf2 shows: its content streams' strings, through the font's
ToUnicode map (Identity-H: two bytes a glyph). Enough to read back a receipt."""

from __future__ import annotations

import re
import zlib

_STREAM = re.compile(rb"stream\r?\n(.*?)\r?\nendstream", re.S)
_BFCHAR = re.compile(rb"<([0-9A-Fa-f]{4})>\s*<([0-9A-Fa-f]{4,8})>")
_ESCAPES = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"b": b"\b", b"f": b"\f", b"(": b"(", b")": b")", b"\\": b"\\"}


def _streams(pdf: bytes) -> list[bytes]:
    out = []
    for raw in _STREAM.findall(pdf):
        try:
            out.append(zlib.decompress(raw))
        except zlib.error:
            out.append(raw)
    return out


def _literals(content: bytes) -> list[bytes]:
    """The literal strings ``( ... )`` shown by Tj, escapes resolved."""
    found, i = [], 0
    while (start := content.find(b"(", i)) != -1:
        depth, j, buf = 1, start + 1, bytearray()
        while j < len(content) and depth:
            ch = content[j:j + 1]
            if ch == b"\\":
                nxt = content[j + 1:j + 2]
                if nxt.isdigit():
                    octal = re.match(rb"[0-7]{1,3}", content[j + 1:j + 4]).group()
                    buf.append(int(octal, 8))
                    j += 1 + len(octal)
                    continue
                buf += _ESCAPES.get(nxt, nxt)
                j += 2
                continue
            depth += ch == b"("
            depth -= ch == b")"
            if depth:
                buf += ch
            j += 1
        found.append(bytes(buf))
        i = j
    return found


def pdf_text(pdf: bytes) -> str:
    streams = _streams(pdf)
    cmap = {int(a, 16): chr(int(b, 16)) for s in streams if b"begincmap" in s for a, b in _BFCHAR.findall(s)}
    lines = []
    for s in streams:
        if b" Tj" not in s:
            continue
        for literal in _literals(s):
            codes = [int.from_bytes(literal[k:k + 2], "big") for k in range(0, len(literal) - 1, 2)]
            lines.append("".join(cmap.get(c, "?") for c in codes))
    return "\n".join(lines)
