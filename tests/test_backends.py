"""The two BDD backends (CUDD through dd.cudd, dd's pure Python) give the same findings,
counterexamples included."""
from __future__ import annotations

from pathlib import Path

import pytest

from vmxlint.analysis import analyse
from vmxlint.logic import bdd_class
from vmxlint.tree import Tree

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
TREES = sorted(p for p in (FIXTURES / "rules").iterdir() if p.is_dir()) + [
    FIXTURES / "trees" / "shape-modern", FIXTURES / "trees" / "shape-4.20"]


def _findings(tree: Path, backend: str, monkeypatch) -> list[dict]:
    monkeypatch.setenv("VMXLINT_NO_CACHE", "1")
    monkeypatch.setenv("VMXLINT_BDD", backend)
    return [f.to_dict() for f in analyse(Tree.open(tree)).findings]


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
