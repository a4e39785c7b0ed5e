"""Where two texts agree: their common prefix and suffix, found a block at a time.

The stages that take work over from the image analysed before (the split of a file into
definitions, the map of lines between two images) ask where an edit starts and where it
ends.  Comparing slices of a few kilobytes at a time leaves the character-by-character
work to C: a 235 KB file costs some sixty comparisons, not a Python loop over its lines.
"""
from __future__ import annotations

import functools

_BLOCK = 4096


def common_prefix(a: str, b: str) -> int:
    """The length of the longest common prefix of a and b."""
    n = min(len(a), len(b))
    lo = 0
    while lo + _BLOCK <= n and a.startswith(b[lo:lo + _BLOCK], lo):
        lo += _BLOCK
    hi = min(lo + _BLOCK, n)
    while lo < hi:          # a[:lo] == b[:lo]; the first difference is before hi
        mid = (lo + hi + 1) // 2
        if a.startswith(b[lo:mid], lo):
            lo = mid
        else:
            hi = mid - 1
    return lo


def common_suffix(a: str, b: str) -> int:
    """The length of the longest common suffix of a and b."""
    la, lb = len(a), len(b)
    n = min(la, lb)
    lo = 0
    while lo + _BLOCK <= n and a.endswith(b[lb - lo - _BLOCK:lb - lo], 0, la - lo):
        lo += _BLOCK
    hi = min(lo + _BLOCK, n)
    while lo < hi:          # the last lo characters agree; the first difference is within hi
        mid = (lo + hi + 1) // 2
        if a.endswith(b[lb - mid:lb - lo], 0, la - lo):
            lo = mid
        else:
            hi = mid - 1
    return lo


_counted: dict[int, tuple[str, int]] = {}


def newlines(text: str) -> int:
    """How many newlines TEXT holds, kept for the last few texts (by identity: an image's
    text is asked again and again, by every stage that maps its lines)."""
    held = _counted.get(id(text))
    if held is None or held[0] is not text:
        if len(_counted) >= 8:
            _counted.pop(next(iter(_counted), -1), None)     # (another thread)
        held = _counted[id(text)] = (text, text.count("\n"))
    return held[1]


@functools.lru_cache(maxsize=8)     # an image and its neighbour are compared by several stages
def same_lines(a: str, b: str) -> tuple[int, int]:
    """(p, s): how many lines a and b share at their start, and then at their end, as
    comparing their lines ("\\n" ends one) one by one from each end finds them; the
    lines counted at the end do not overlap those at the start in either text."""
    if a == b:
        return newlines(a) + 1, 0
    pos = common_prefix(a, b)
    p = a.count("\n", 0, pos)
    # A text that ends inside the common prefix shares its last line when the other text
    # ends that line there too.
    if (pos == len(a) and b[pos] == "\n") or (pos == len(b) and a[pos] == "\n"):
        p += 1
    n = min(newlines(a), newlines(b)) + 1
    q = common_suffix(a, b)
    la, lb = len(a), len(b)
    s = a.count("\n", la - q)
    # The line at the suffix's start is shared when it starts a line in both texts: one
    # text starts there, the other has a newline before it.
    if (la == q and b[lb - q - 1] == "\n") or (lb == q and a[la - q - 1] == "\n"):
        s += 1
    return p, min(s, n - p)
