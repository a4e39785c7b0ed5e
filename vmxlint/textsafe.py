"""Escape control characters from untrusted input before it reaches a terminal (DESIGN §8).

``escape_text`` shows every C0 control (but tab, and newline when asked), DEL, every
C1 control and the Unicode bidirectional overrides as a visible ``\\xNN`` / ``\\uNNNN``
escape, so ESC and OSC sequences, a bare CR or a bidi override from a patch cannot
move the cursor, rewrite a line, set a title or reorder what a reviewer reads.
"""
from __future__ import annotations

import re

# C0 but tab/newline (handled by `keep`), DEL, C1, bidi embeddings/overrides/isolates.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _show(m: re.Match[str]) -> str:
    c = ord(m.group())
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def escape_text(s: str, keep: str = "\t") -> str:
    """`s` with control characters escaped; characters in `keep` (default: tab) stay."""
    return _CONTROL.sub(lambda m: m.group() if m.group() in keep else _show(m), s)


def has_control(s: str, keep: str = "\t") -> bool:
    """True when `escape_text(s, keep)` would change `s`."""
    return any(m.group() not in keep for m in _CONTROL.finditer(s))
