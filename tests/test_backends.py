"""The two BDD backends (CUDD through dd.cudd, dd's pure Python) give the same findings,
counterexamples included."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from vmxlint.analysis import analyse
from vmxlint.logic import ExprError, bdd_class, parse_expr
from vmxlint.tree import Tree

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
TREES = sorted(p for p in (FIXTURES / "rules").iterdir() if p.is_dir()) + [
    FIXTURES / "trees" / "shape-modern", FIXTURES / "trees" / "shape-4.20"]


def _findings(tree: Path, backend: str, monkeypatch) -> list[dict]:
    monkeypatch.setenv("VMXLINT_NO_CACHE", "1")
    monkeypatch.setenv("VMXLINT_BDD", backend)
    return [f.to_dict() for f in analyse(Tree.open(tree)).findings]


def test_import_without_hides_an_optional_dependency_once(tmp_path, monkeypatch) -> None:
    """`vmxlint.optional.import_without`: the library sees the dependency missing, then
    it can be imported again; one imported before stays seen."""
    import importlib

    from vmxlint.optional import import_without

    (tmp_path / "opt_lib.py").write_text(
        "try:\n    import opt_dep\nexcept ImportError:\n    opt_dep = None\n")
    (tmp_path / "opt_dep.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("opt_lib", "opt_dep"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    assert import_without("opt_lib", "opt_dep").opt_dep is None
    assert "opt_dep" not in sys.modules
    dep = importlib.import_module("opt_dep")                # importable again
    monkeypatch.delitem(sys.modules, "opt_lib")
    assert import_without("opt_lib", "opt_dep").opt_dep is dep


def test_dd_is_imported_without_networkx() -> None:
    """dd imports networkx, when it is installed, for a graph export vmxlint does not
    use (0.3 s and 20 MB); networkx stays importable."""
    probe = ("import sys\nfrom vmxlint.logic import bdd_class\nbdd_class()\n"
             "print('networkx' in sys.modules)\nimport networkx\n")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parent.parent, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False"]


def test_the_pure_python_backend_can_be_forced(monkeypatch) -> None:
    monkeypatch.setenv("VMXLINT_BDD", "python")
    assert bdd_class().__module__ == "dd.autoref"


@pytest.mark.parametrize("tree", TREES, ids=lambda p: p.name)
def test_same_findings_with_either_backend(tree: Path, monkeypatch) -> None:
    pytest.importorskip("dd.cudd")
    assert _findings(tree, "cudd", monkeypatch) == _findings(tree, "python", monkeypatch)


@pytest.mark.kernel
def test_same_findings_on_a_real_tree(kernel_tree: Path, monkeypatch) -> None:
    pytest.importorskip("dd.cudd")
    assert _findings(kernel_tree, "cudd", monkeypatch) == \
        _findings(kernel_tree, "python", monkeypatch)


ATOMS = ["vmcs12.dirty", "evmcs.active", "evmcs.clean.GUEST_GRP1", "evmcs.clean.GUEST_GRP2",
         "l0.ept", "l2.pae_paging"]


def _formulas():
    from hypothesis import strategies as st

    from vmxlint.logic import Atom, conj, disj, neg

    leaf = st.sampled_from(ATOMS).map(Atom)
    return st.recursive(leaf, lambda kids: st.one_of(
        kids.map(neg), st.lists(kids, min_size=2, max_size=3).map(lambda a: conj(*a)),
        st.lists(kids, min_size=2, max_size=3).map(lambda a: disj(*a))), max_leaves=8)


def test_a_solver_answers_as_a_fresh_one_whatever_it_was_asked_before() -> None:
    """A solver keeps its answers, and adds an atom's axioms when a query first mentions
    it: what it answers after other queries is what a new solver answers."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from vmxlint.checks import _clean_means_evmcs
    from vmxlint.logic import Atom, Solver

    axioms = [Atom("l0.ept").__or__(Atom("vmcs12.dirty"))]

    @settings(max_examples=80, deadline=None)
    @given(st.lists(st.tuples(st.booleans(), _formulas(), _formulas()), min_size=1,
                    max_size=8))
    def asked(queries) -> None:
        shared = Solver(axioms, per_atom=_clean_means_evmcs)
        for _ in range(2):          # the second time, from the kept answers
            for implication, a, b in queries:
                fresh = Solver(axioms, per_atom=_clean_means_evmcs)
                if implication:
                    assert shared.implies(a, b) == fresh.implies(a, b)
                else:
                    assert shared.satisfiable(a) == fresh.satisfiable(a)

    asked()


@pytest.mark.parametrize("text", ["(", "a and", "not", "(a or b", "a b", ")"])
def test_a_condition_cut_short_is_an_expr_error(text: str):
    """A condition that ends where an operand is due is refused with the model's error
    (the parser's token stream once ran dry into a StopIteration instead)."""
    with pytest.raises(ExprError):
        parse_expr(text)
