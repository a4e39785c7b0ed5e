"""The braces of a C text outside comments and literals: how deep they go below zero, and
how many stay open at the end.

A scan is a sequence of regex matches, each starting where the one before ended, and
the matches from a place on depend only on the text from there.  So the next image of a
series is scanned from the last scan: the matches that end before the last line the two
texts share at their start are taken over (a match looks ahead at most to the end of the
line it ends on, and of the lines a backslash continues it on: a quote that starts no
literal is told only there), the edited part is scanned, and once that scan ends a match
where the last scan ended one, within the text the two share at their end, the rest is
the last scan's, shifted.
"""
from __future__ import annotations

import bisect
import re
import threading
from typing import NamedTuple

from vmxlint.textdiff import common_prefix, common_suffix

# Each match is a run of characters that start nothing, then one comment, literal or
# brace (only a brace is captured), else the one '/' or quote that starts none, else the
# end of the text: the scanner never tries a match at a character that cannot start one,
# which is most of a C file.  A comment runs to the first "*/" or to the end.
SCAN = re.compile(r'[^/"\'{}]*+(?:/\*.*?\*/|/\*.*|//[^\n]*|"(?:\\.|[^"\\\n])*"|'
                  r"'(?:\\.|[^'\\\n])*'|([{}])|[/\"']|\Z)", re.S)


class Depths(NamedTuple):
    lowest: int     # the lowest depth the braces reach, 0 when none closes what is not open
    final: int      # the depth at the end of the text


class _Scan(NamedTuple):
    text: str
    ends: list[int]     # where each match ends (the empty match at the end left out)
    depth: list[int]    # the depth after each match


_last: list[_Scan] = []     # the last scan made, in this process
_lock = threading.Lock()


def depths(text: str) -> Depths:
    """The lowest and the final depth of the braces of TEXT (from the last scan when
    there is one: the same answer)."""
    with _lock:
        last = _last[0] if _last else None
    scan = _scan(text, 0, [], []) if last is None else _from(last, text)
    with _lock:
        _last[:] = [scan]
    return Depths(min(0, min(scan.depth, default=0)), scan.depth[-1] if scan.depth else 0)


def _scan(text: str, pos: int, ends: list[int], depth: list[int],
          old: _Scan | None = None, tail: int = 0) -> _Scan:
    """Scan TEXT from POS on, after the matches ENDS/DEPTH; with OLD, stop at the first
    match that ends, at or after TAIL, where OLD's match ended at the same place counted
    from the end, and take OLD's matches after it."""
    d = depth[-1] if depth else 0
    shift = len(text) - len(old.text) if old is not None else 0
    for m in SCAN.finditer(text, pos):
        end = m.end()
        if end == m.start():
            break           # the empty match at the end of the text
        brace = m.group(1)
        if brace:
            d += 1 if brace == "{" else -1
        ends.append(end)
        depth.append(d)
        if old is not None and end >= tail:
            k = bisect.bisect_left(old.ends, end - shift)
            if k < len(old.ends) and old.ends[k] == end - shift:
                rise = d - old.depth[k]
                ends.extend(e + shift for e in old.ends[k + 1:])
                depth.extend(x + rise for x in old.depth[k + 1:])
                break
    return _Scan(text, ends, depth)


def _from(old: _Scan, text: str) -> _Scan:
    """The scan of TEXT, made from OLD's where the two texts agree."""
    a = old.text
    if a == text:
        return old
    start = a.rfind("\n", 0, common_prefix(a, text))
    while start > 0 and a[start - 1] == "\\":     # a literal goes on past that newline
        start = a.rfind("\n", 0, start)
    keep = bisect.bisect_right(old.ends, start) if start >= 0 else 0
    pos = old.ends[keep - 1] if keep else 0
    tail = len(text) - common_suffix(a, text)
    return _scan(text, pos, old.ends[:keep], old.depth[:keep], old, tail)
