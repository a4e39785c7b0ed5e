"""Common prefixes and suffixes found a block at a time agree with the plain definitions."""
from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vmxlint import textdiff

TEXT = st.text(alphabet="ab\n", max_size=14)


def _reference_same_lines(a: str, b: str) -> tuple[int, int]:
    """Lines compared one by one from the start, then from the end."""
    x, y = a.split("\n"), b.split("\n")
    n = min(len(x), len(y))
    p = 0
    while p < n and x[p] == y[p]:
        p += 1
    s = 0
    while s < n - p and x[-1 - s] == y[-1 - s]:
        s += 1
    return p, s


def _prefix(a: str, b: str) -> int:
    return len(os.path.commonprefix([a, b]))


@pytest.mark.parametrize("block", [1, 2, 3, 4096])     # small: short texts cross blocks
@given(a=TEXT, b=TEXT, cut=st.tuples(st.integers(0, 14), st.integers(0, 14)))
def test_they_agree_with_the_definitions(block: int, a: str, b: str,
                                         cut: tuple[int, int]) -> None:
    kept, textdiff._BLOCK = textdiff._BLOCK, block
    try:
        for y in (b, a, a[:cut[0]] + b + a[cut[1]:]):       # unrelated, equal, an edit of a
            assert textdiff.common_prefix(a, y) == _prefix(a, y)
            assert textdiff.common_suffix(a, y) == _prefix(a[::-1], y[::-1])
            assert textdiff.same_lines.__wrapped__(a, y) == _reference_same_lines(a, y)
    finally:
        textdiff._BLOCK = kept


def test_a_long_edit_far_from_both_ends() -> None:
    a = "".join(f"line {k}\n" for k in range(5000))
    b = a.replace("line 2500\n", "line 2500 changed\nand one more\n")
    assert textdiff.same_lines(a, b) == (2500, 2500)
    assert textdiff.same_lines(a, b) == _reference_same_lines(a, b)
