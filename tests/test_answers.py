"""The solver's answers kept on disk (vmxlint.answers): the same answers as the solver,
and a check that asks only what the audit of its tree asked makes no BDD."""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from test_backends import _formulas
from test_incremental import _mail
from vmxlint import analysis, answers, cache, checks
from vmxlint.analysis import analyse
from vmxlint.answers import Book, BookedSolver
from vmxlint.checks import _clean_means_evmcs
from vmxlint.logic import TRUE, Atom, Solver, disj
from vmxlint.mail import read_mails
from vmxlint.series import check
from vmxlint.tree import NESTED_C, Tree

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
AXIOMS = [disj(Atom("l0.ept"), Atom("vmcs12.dirty"))]
KEEP = ["evmcs.active", "evmcs.clean.GUEST_GRP1", "l0.ept", "vmcs12.dirty"]


@pytest.fixture
def own_cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("VMXLINT_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("VMXLINT_NO_CACHE", raising=False)
    monkeypatch.setattr(answers, "_BOOKS", [])
    return tmp_path


def _solver() -> Solver:
    return Solver(AXIOMS, per_atom=_clean_means_evmcs)


def _refuse() -> Solver:
    raise AssertionError("a solver was made for an answer the book holds")


def _ask(s, queries) -> list:
    out = []
    for kind, a, b in queries:
        if kind == 0:
            out.append(s.satisfiable(a, b))
        elif kind == 1:
            out.append(s.implies_some((a,), (b,)))
        else:
            out.append(s.prime_implicant(a, KEEP, prefer=["l0.ept"]))
    return out


_queries = st.lists(st.tuples(st.integers(0, 2), _formulas(), _formulas()), min_size=1,
                    max_size=6)


def test_the_book_answers_as_the_solver(own_cache: Path):
    """Asked through a book, the solver answers what it answers alone; a new process
    with the same book gets the same answers without a solver."""
    @settings(max_examples=60, deadline=None)
    @given(_queries)
    def asked(queries) -> None:
        key = cache.key("test book", repr(queries))
        want = _ask(_solver(), queries)
        assert _ask(BookedSolver(_solver, Book(key)), queries) == want
        answers.save_books()
        answers._BOOKS.clear()                  # a new process
        assert _ask(BookedSolver(_refuse, Book(key)), queries) == want

    asked()


def test_a_damaged_book_is_a_miss(own_cache: Path):
    key = cache.key("test book", "damaged")
    queries = [(0, Atom("l0.ept"), Atom("evmcs.active")), (2, Atom("vmcs12.dirty"), TRUE)]
    want = _ask(BookedSolver(_solver, Book(key)), queries)
    answers.save_books()
    entry = cache.entry_path(own_cache, key)
    entry.write_bytes(entry.read_bytes().replace(b"true", b"tru"))
    made: list[int] = []

    def counted() -> Solver:
        made.append(1)
        return _solver()

    answers._BOOKS.clear()
    assert _ask(BookedSolver(counted, Book(key)), queries) == want
    assert made == [1]


def test_a_book_keeps_what_recent_processes_asked(own_cache: Path, monkeypatch):
    monkeypatch.setattr(answers, "BOOK_KEPT", 3)
    key = cache.key("test book", "bounded")
    atoms = [Atom(f"a{i}") for i in range(5)]
    first = BookedSolver(_solver, Book(key))
    for a in atoms:
        first.satisfiable(a)
    answers.save_books()
    assert len(cache.get(key, dict)) == 3       # the last three asked
    answers._BOOKS.clear()
    second = BookedSolver(_solver, Book(key))
    second.satisfiable(atoms[2])                # read from the book: asked again, kept
    second.satisfiable(Atom("b"))               # new: the entry is written again
    answers.save_books()
    kept = cache.get(key, dict)
    assert len(kept) == 3
    answers._BOOKS.clear()
    third = BookedSolver(_refuse, Book(key))
    assert third.satisfiable(atoms[2]) and third.satisfiable(Atom("b"))


def test_a_process_that_adds_little_leaves_the_entry(own_cache: Path):
    key = cache.key("test book", "little")
    first = BookedSolver(_solver, Book(key))
    for i in range(8):
        first.satisfiable(Atom(f"a{i}"))
    answers.save_books()
    before = cache.entry_path(own_cache, key).read_bytes()
    answers._BOOKS.clear()
    second = BookedSolver(_solver, Book(key))
    second.satisfiable(Atom("a1"))
    second.satisfiable(Atom("new"))             # one new answer of nine: not worth a write
    assert not second._book.pending()
    answers.save_books()
    assert cache.entry_path(own_cache, key).read_bytes() == before


def _value_edit(text: str) -> str:
    old = "vmcs_write32(GUEST_SYSENTER_CS, vmcs12->guest_sysenter_cs);"
    assert old in text
    return text.replace(old, "vmcs_write32(GUEST_SYSENTER_CS, vmcs12->guest_sysenter_cs | 1);")


def test_a_check_that_asks_what_the_audit_asked_makes_no_solver(own_cache: Path,
                                                                monkeypatch):
    """b4's case: the tree analysed, a patch that changes a written value and no guard.
    The field is checked again with the audit's queries, answered from the book; the
    findings are those of a check without any cache."""
    tree = Tree.open(FIXTURES / "trees" / "shape-modern")
    text = tree.read(NESTED_C)
    mails = read_mails(_mail(text, _value_edit(text), 0).encode(), "one")
    made, asked = _checked_in_a_new_process(tree, mails, monkeypatch)
    assert asked >= 3, "the field was not checked again with the solver's help"
    assert made == [], "the check made a solver"


def test_a_check_that_asks_something_new_makes_the_solver(own_cache: Path, monkeypatch):
    """A patch that changes a guard asks what the book does not hold: the solver is made
    and answers."""
    tree = Tree.open(FIXTURES / "trees" / "shape-modern")
    text = tree.read(NESTED_C)
    old = "\tvmcs_write32(GUEST_SYSENTER_CS, vmcs12->guest_sysenter_cs);\n"
    new = text.replace(old, "\tif (vmx->nested.nested_run_pending)\n\t" + old)
    mails = read_mails(_mail(text, new, 0).encode(), "one")
    made, _ = _checked_in_a_new_process(tree, mails, monkeypatch)
    assert made == [1]


def _new_process() -> None:
    """What a new process has: no image prepared, no solver, no book read."""
    analysis._PREPARED.clear()
    analysis._SHARED.clear()
    answers._BOOKS.clear()


def _checked_in_a_new_process(tree: Tree, mails, monkeypatch) -> tuple[list[int], int]:
    """Audit TREE, then check MAILS as a new process would (the book and the analysis
    from the cache): the solvers made and the queries asked.  The findings must be
    those of a check without any cache, made afterwards (it would leave its images in
    the process)."""
    _new_process()                              # nothing of the tests before
    analyse(tree)                               # the audit
    answers.save_books()
    _new_process()
    made: list[int] = []
    asked: list[int] = []
    real, ask = checks.model_solver, BookedSolver._ask

    def counted(model) -> Solver:
        made.append(1)
        return real(model)

    def counted_ask(self, *args):
        asked.append(1)
        return ask(self, *args)

    monkeypatch.setattr(checks, "model_solver", counted)
    monkeypatch.setattr(BookedSolver, "_ask", counted_ask)
    got = check(mails, tree, include_existing=True)
    solvers, queries = list(made), len(asked)   # before the check without cache
    _new_process()
    monkeypatch.setenv("VMXLINT_NO_CACHE", "1")
    want = check(mails, tree, include_existing=True, incremental=False)
    assert got.findings == want.findings and got.notes == want.notes
    assert any(f.field == "GUEST_SYSENTER_CS" and f.status == "new" for f in got.findings)
    return solvers, queries


def test_a_query_asked_again_needs_no_key(own_cache: Path, monkeypatch):
    """Within a process a query asked again (by formulas equal in structure, not the same
    objects) is answered from memory: its key, a digest of each formula, is made once."""
    keys: list[tuple] = []
    real = answers.digest

    def counted(*parts: str) -> str:
        keys.append(parts)
        return real(*parts)

    monkeypatch.setattr(answers, "digest", counted)
    booked = BookedSolver(_solver, Book(cache.key("test book", "memory")))
    for _ in range(3):
        guard = disj(Atom("l0.ept"), Atom("evmcs.active"))      # a new object each time
        assert booked.satisfiable(guard, Atom("vmcs12.dirty"))
        assert booked.implies_some((Atom("l0.ept"),), (guard,))
        cube = booked.prime_implicant(guard, KEEP)
        cube["mutated"] = True                  # the caller's own copy
    assert len(keys) == 3
    assert "mutated" not in booked.prime_implicant(guard, KEEP)
