"""Process memos: dictionaries kept for the run, emptied when they reach a bound (an
image asks again what the one before asked; refilling after a clear costs one image);
regular expressions compiled when first used."""
from __future__ import annotations

import re
from typing import Any, TypeVar

V = TypeVar("V")

__all__ = ("LazyPattern", "kept")


def kept(memo: dict, key: Any, value: V, limit: int) -> V:
    """VALUE, stored in MEMO under KEY; MEMO is emptied first when it holds LIMIT
    entries."""
    if len(memo) >= limit:
        memo.clear()
    memo[key] = value
    return value


class LazyPattern:
    """A regular expression compiled at its first use.

    Most of the module-level patterns serve inputs and passes a run may not meet (a check
    of one patch left 51 of 76 unused), and Python compiles a pattern in Python: 3-5 ms
    of every run went to patterns it never used.  The first use compiles it and keeps
    the compiled pattern's methods in the instance, so later uses cost what a compiled
    pattern's do.  The methods and attributes of ``re.Pattern`` are offered; a function
    of the ``re`` module wants the compiled pattern itself (``compiled``)."""

    _METHODS = ("match", "fullmatch", "search", "finditer", "findall", "sub", "subn",
                "split")

    def __init__(self, pattern: str, flags: int = 0) -> None:
        self._source = (pattern, flags)
        self._compiled: re.Pattern[str] | None = None

    @property
    def compiled(self) -> re.Pattern[str]:
        if self._compiled is None:
            self._compiled = re.compile(*self._source)
            for method in self._METHODS:    # found in the instance from now on
                setattr(self, method, getattr(self._compiled, method))
        return self._compiled

    def __getattr__(self, name: str) -> Any:
        # Called for what the instance does not hold yet: the methods before the first
        # use, ``pattern``, ``groups`` and the like always.
        if name.startswith("_"):            # copy, pickle, and this class's own
            raise AttributeError(name)
        return getattr(self.compiled, name)
