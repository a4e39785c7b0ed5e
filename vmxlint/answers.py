"""The solver's answers kept on disk: a check of a new patch asks the BDDs only what the
analysis of its tree did not ask.

A check of one patch runs in a process of its own.  A patch that changes a value and no
guard re-checks the fields it writes with the very queries the audit of the tree asked:
answered from the book the audit left in the cache, the check neither imports the BDD
library nor makes a BDD (dd's import and CUDD's first tables, 12-20 ms of a 0.2-s check).

A query's key is a digest of its kind and of its formulas' structure (``logic.structure``:
operators and atom names, what the solver reads).  Nothing else decides the answer: the
solver's answers do not depend on the queries asked before (``checks.model_solver``), and
the book's cache key holds the code and the rules, hence the axioms.  An entry of another
shape is a miss: the solver answers, and the book is written again.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Iterable, Union

from vmxlint import cache
from vmxlint.logic import Formula, Solver, digest, structure
from vmxlint.memo import kept

__all__ = ("Book", "BookedSolver", "save_books")

# An answer: satisfiable and implies_some say yes or no, prime_implicant gives a cube of
# atoms or None.
Answer = Union[bool, None, dict[str, bool]]

BOOK_KEPT = 4096        # answers an entry keeps (an audit of 6.12 asks some 250)
ANSWERS_KEPT = 1 << 16  # answers a process keeps in memory (as ``Solver`` does)
_MISSING = object()


class Book:
    """The answers kept under one cache key: read at the first query of the process,
    written at its end when the process added a good part of them (a check that asks a
    few new questions leaves the audit's entry alone)."""

    def __init__(self, key: str) -> None:
        self.key = key
        self._answers: dict[str, Answer] | None = None
        self._loaded = 0
        self._added = 0
        self._used: dict[str, None] = {}    # asked by this process, in order

    def lookup(self, k: str) -> object:
        """The answer kept under K, or ``_MISSING``."""
        if self._answers is None:
            self._answers = cache.get(self.key, dict[str, Answer]) or {}
            self._loaded = len(self._answers)
            _remember(self)
        hit = self._answers.get(k, _MISSING)
        if hit is not _MISSING:
            self._used[k] = None
        return hit

    def add(self, k: str, answer: Answer) -> None:
        assert self._answers is not None, "add follows a lookup"
        kept(self._answers, k, answer, ANSWERS_KEPT)
        kept(self._used, k, None, ANSWERS_KEPT)
        self._added += 1

    def pending(self) -> bool:
        """Whether the entry is worth writing: none was read, or this process added at
        least a quarter of what it read."""
        return self._added > 0 and (self._loaded == 0 or 4 * self._added >= self._loaded)

    def entry(self) -> dict[str, Answer]:
        """What to write: the answers this process did not ask first, then those it
        asked, the last ``BOOK_KEPT`` of them (what recent processes asked is kept)."""
        answers = self._answers or {}
        order = [k for k in answers if k not in self._used] + \
            [k for k in self._used if k in answers]
        return {k: answers[k] for k in order[-BOOK_KEPT:]}

    def saved(self) -> None:
        self._loaded, self._added = len(self._answers or {}), 0


class BookedSolver:
    """A solver whose queries are answered from a ``Book`` first; the solver itself
    (``make()``) is made at the first query the book cannot answer.  A query asked again
    in the process is answered from memory, by its formulas (which compare by structure),
    without its key: a guard-changing patch asks 830 queries of which 250 differ, and a
    key costs a digest of each formula the process has not digested yet."""

    def __init__(self, make: Callable[[], Solver], book: Book) -> None:
        self._make = make
        self._book = book
        self._asked: dict[tuple, Answer] = {}

    @functools.cached_property
    def solver(self) -> Solver:
        return self._make()

    def satisfiable(self, *fs: Formula) -> bool:
        return self._ask(("s", fs), lambda: ("s", *map(structure, fs)),
                         lambda: self.solver.satisfiable(*fs))

    def implies(self, a: Formula, b: Formula) -> bool:
        return self.implies_some((a,), (b,))

    def implies_some(self, premises: tuple[Formula, ...], alternatives: tuple[Formula, ...]
                     ) -> bool:
        return self._ask(("i", premises, alternatives),
                         lambda: ("i", str(len(premises)), *map(structure, premises),
                                  *map(structure, alternatives)),
                         lambda: self.solver.implies_some(premises, alternatives))

    def prime_implicant(self, f: Formula, keep: Iterable[str],
                        prefer: Iterable[str] = ()) -> dict[str, bool] | None:
        keep, prefer = sorted(set(keep)), sorted(set(prefer))   # read as sets
        cube = self._ask(("p", f, tuple(keep), tuple(prefer)),
                         lambda: ("p", structure(f), str(len(keep)), *keep, *prefer),
                         lambda: self.solver.prime_implicant(f, keep, prefer))
        return dict(cube) if cube is not None else None     # the caller's own

    def _ask(self, query: tuple, parts: Callable[[], tuple[str, ...]],
             compute: Callable[[], Answer]) -> Any:
        hit = self._asked.get(query, _MISSING)
        if hit is _MISSING:
            k = digest(*parts())
            hit = self._book.lookup(k)
            if hit is _MISSING:
                hit = compute()
                self._book.add(k, hit)
            kept(self._asked, query, hit, ANSWERS_KEPT)
        return hit


# The books of this process (one per model and thread, ``analysis``), written at its end.
_BOOKS: list[Book] = []
BOOKS = 8


def _remember(book: Book) -> None:
    cache.at_exit(save_books, pending=lambda: sum(b.pending() for b in _BOOKS))
    _BOOKS.append(book)
    del _BOOKS[:-BOOKS]


def save_books() -> None:
    """Write each book this process added a good part of."""
    for book in list(_BOOKS):
        if book.pending():
            cache.put(book.key, book.entry())
            book.saved()
