"""Older kernels read as well as 6.x: the same code in the 4.20-5.x shape gives the same
findings (synthetic twins under fixtures/trees/shape-*), and rules that predate a kernel
feature stay quiet on code without it."""
from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from vmxlint.analysis import analyse
from vmxlint.mail import read_mails
from vmxlint.series import check
from vmxlint.tree import NESTED_C, Tree

TREES = Path(__file__).resolve().parent.parent / "fixtures" / "trees"
SHAPES = ("shape-modern", "shape-4.20")


@pytest.fixture(autouse=True)
def _no_cache(monkeypatch):
    monkeypatch.setenv("VMXLINT_NO_CACHE", "1")


def _found(tree: Tree) -> set[tuple[str, str | None]]:
    return {(f.code, f.field) for f in analyse(tree).findings if f.severity != "info"}


def _patched(shape: str, old: str, new: str) -> list:
    before = (TREES / shape / NESTED_C).read_text()
    assert old in before
    after = before.replace(old, new, 1)
    body = "".join(difflib.unified_diff(before.splitlines(True), after.splitlines(True),
                                        f"a/{NESTED_C}", f"b/{NESTED_C}"))
    mail = ("From: T <t@example.org>\nSubject: [PATCH] shape edit\n\n---\n"
            f"diff --git a/{NESTED_C} b/{NESTED_C}\n{body}")
    return read_mails(mail.encode(), "shape")


def test_both_shapes_give_the_same_findings():
    modern, old = (_found(Tree.open(TREES / s)) for s in SHAPES)
    assert modern == old == {("VMX202", "TSC_OFFSET")}


def test_success_exit_found_from_the_code():
    """The 4.20 root returns 0 on success and 1 / -1 on failure: no VMX201 flood."""
    findings = analyse(Tree.open(TREES / "shape-4.20")).findings
    assert not [f for f in findings if f.code == "VMX201"]


@pytest.mark.parametrize("shape", SHAPES)
def test_deleted_event_reset_is_missing_on_both(shape: str):
    mails = _patched(shape, "\t} else {\n\t\tvmcs_write32(VM_ENTRY_INTR_INFO_FIELD, 0);\n\t}",
                     "\t}")
    new = [f for f in check(mails, Tree.open(TREES / shape)).findings if f.status == "new"]
    assert [(f.code, f.field) for f in new] == [("VMX201", "VM_ENTRY_INTR_INFO_FIELD")]
    assert "!vmx->nested.nested_run_pending" in new[0].message
    assert len(dict(new[0].details)["counterexample"]) <= 6


def test_controls_shadow_rule_needs_the_shadow():
    """4.20 writes controls raw because it has no controls shadow: no VMX403 there, and
    the same raw write in the modern shape bypasses the shadow."""
    assert not [f for f in analyse(Tree.open(TREES / "shape-4.20")).findings
                if f.code == "VMX403"]
    mails = _patched("shape-modern", "\tpin_controls_set(vmx, exec_control);",
                     "\tvmcs_write32(PIN_BASED_VM_EXEC_CONTROL, exec_control);")
    new = {(f.code, f.field) for f in check(mails, Tree.open(TREES / "shape-modern")).findings
           if f.status == "new"}
    assert ("VMX403", "PIN_BASED_VM_EXEC_CONTROL") in new


@pytest.mark.parametrize("shape", SHAPES)
def test_cache_clear_deleted_in_either_spelling(shape: str):
    clear = {"shape-modern": "\tvmx_segment_cache_clear(vmx);\n",
             "shape-4.20": "\tvmx->segment_cache.bitmask = 0;\n"}[shape]
    result = check(_patched(shape, clear, ""), Tree.open(TREES / shape))
    new = {(f.code, f.field) for f in result.findings if f.status == "new"}
    assert new == {("VMX403", "GUEST_ES_SELECTOR"), ("VMX403", "GUEST_ES_LIMIT")}


def test_older_root_name_is_analysed():
    mails = _patched("shape-modern", "nested_vmx_enter_non_root_mode(", "enter_vmx_non_root_mode(")
    result = check(mails, Tree.open(TREES / "shape-modern"), include_existing=True)
    assert ("VMX202", "TSC_OFFSET") in {(f.code, f.field) for f in result.findings}
    assert not [f for f in result.findings if f.code == "VMX004"]
