"""Process memos: dictionaries kept for the run, emptied when they reach a bound (an
image asks again what the one before asked; refilling after a clear costs one image)."""
from __future__ import annotations

from typing import Any, TypeVar

V = TypeVar("V")

__all__ = ("kept",)


def kept(memo: dict, key: Any, value: V, limit: int) -> V:
    """VALUE, stored in MEMO under KEY; MEMO is emptied first when it holds LIMIT
    entries."""
    if len(memo) >= limit:
        memo.clear()
    memo[key] = value
    return value
