"""Rule fixtures: one synthetic tree per analysis rule, its expectations marked inline.

Each ``fixtures/rules/VMXnnn-slug/`` holds an ``arch/x86/kvm/vmx/nested.c`` whose C comments
mark the line after them: ``/* ruleid: VMXnnn */`` where the rule must report,
``/* ok: VMXnnn */`` on a deliberate near miss, and ``todoruleid:``/``todook:`` for known gaps,
which are listed but never fail (semgrep's markers, bugbear's harness).
"""
from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import cast

import pytest

from vmxlint.analysis import analyse
from vmxlint.checks import CHECKS, Context, run_checks
from vmxlint.tree import NESTED_C, Tree

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "rules"
FIXTURES = ROOT / "fixtures" / "rules"
MARKER = re.compile(r"/\*\s*(ruleid|ok|todoruleid|todook):\s*(\w+)\s*\*/")
KINDS = ("ruleid", "ok", "todoruleid", "todook")
PATCH_RULES = {"VMX001", "VMX002", "VMX003"}   # covered by the patch tests
NOT_A_CHECK = {"VMX004", "VMX006"}             # reported by vmxlint.analysis itself


def _markers(path: Path, code: str) -> dict[str, set[tuple[str, int]]]:
    """(code, line) of the line after each marker, by marker kind."""
    out: dict[str, set[tuple[str, int]]] = {k: set() for k in KINDS}
    for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        for kind, marked in MARKER.findall(text):
            assert marked == code, f"{path}:{number}: marker for {marked} in {code}'s fixture"
            out[kind].add((marked, number + 1))
    return out


def _readable_counterexample(f) -> None:
    """Every counterexample a reviewer reads: at most 6 conditions, none repeated, on one
    line under 200 characters."""
    assert len(f.message) < 200 and "\n" not in f.message, f.message
    cex = dict(f.details).get("counterexample")
    if cex is None:
        return
    assert len(cex) <= 6, f.message
    shown = f.message.split(" when ", 1)[1].split(" && ") if " when " in f.message else []
    assert len(shown) == len(set(shown)), f.message


def _analysis_rules() -> dict[str, str]:
    """Rule code -> file stem of every rule the tree analysis reports."""
    out = {}
    for file in sorted(RULES.glob("VMX*.toml")):
        code = tomllib.loads(file.read_text(encoding="utf-8"))["code"]
        assert file.stem.startswith(code + "-"), file
        if code not in PATCH_RULES:
            out[code] = file.stem
    return out


@pytest.mark.parametrize("fixture", sorted(p for p in FIXTURES.iterdir() if p.is_dir()),
                         ids=lambda p: p.name)
def test_rule_fixture(fixture: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VMXLINT_NO_CACHE", "1")
    code = fixture.name.split("-", 1)[0]
    marks = _markers(fixture / NESTED_C, code)
    assert marks["ruleid"], "a rule fixture needs at least one ruleid: marker"
    assert marks["ok"], "a rule fixture needs at least one ok: marker"
    findings = analyse(Tree.open(fixture)).findings
    for f in findings:
        _readable_counterexample(f)
    found = {(f.code, f.line) for f in findings if f.code == code}
    for kind in ("todoruleid", "todook"):
        for _, line in sorted(marks[kind]):
            state = "reported" if (code, line) in found else "not reported"
            print(f"{fixture.name}:{line}: {kind} ({state})")
    todo = marks["todoruleid"] | marks["todook"]
    assert sorted(found - todo) == sorted(marks["ruleid"])


def test_every_analysis_rule_has_a_fixture_and_a_check() -> None:
    rules = _analysis_rules()
    # run_checks imports the check modules, which register themselves in CHECKS.
    assert list(run_checks(cast(Context, None), codes=())) == []
    fixtures = {p.name for p in FIXTURES.iterdir() if p.is_dir()}
    assert fixtures == set(rules.values())
    assert set(CHECKS) == set(rules) - NOT_A_CHECK
    assert NOT_A_CHECK <= set(rules)
