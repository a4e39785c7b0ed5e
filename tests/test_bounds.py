"""Documented bounds (VMX006) and costs an attacker cannot choose (DESIGN section 8)."""
from __future__ import annotations

import difflib
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from vmxlint import analysis, logic, mail
from vmxlint.analysis import analyse
from vmxlint.logic import Atom, conj, disj, neg
from vmxlint.mail import read_mails
from vmxlint.series import check
from vmxlint.tree import Tree

ROOT = Path(__file__).resolve().parent.parent
SHAPE = ROOT / "fixtures" / "trees" / "shape-modern"
NESTED = "arch/x86/kvm/vmx/nested.c"
BASE = (SHAPE / NESTED).read_text()
ANCHOR = "\tkvm_rip_write(vcpu, vmcs12->guest_rip);\n"


def with_code(code: str, before: str = ANCHOR) -> str:
    return BASE.replace(before, code + before, 1)


def mail_of(before: str, after: str) -> bytes:
    body = "".join(difflib.unified_diff(before.splitlines(True), after.splitlines(True),
                                        f"a/{NESTED}", f"b/{NESTED}"))
    return (f"From: A <a@example.org>\nSubject: [PATCH] x\n\nwhy\n---\n"
            f"diff --git a/{NESTED} b/{NESTED}\n{body}").encode()


def test_writes_per_field_over_the_bound_is_vmx006() -> None:
    writes = "".join(f"\tif (vmx->knob{k})\n\t\tvmcs_write32(GUEST_ES_LIMIT, {k});\n"
                     for k in range(100))
    found = analyse(Tree(SHAPE).with_overlay({NESTED: with_code(writes)})).findings
    budget = [f for f in found if f.code == "VMX006"]
    assert [(f.field, f.severity) for f in budget] == [("GUEST_ES_LIMIT", "error")]
    assert "101 writes (bound 64)" in budget[0].message
    assert not [f for f in found if f.field == "GUEST_ES_LIMIT" and f.code != "VMX006"]


def test_guard_atoms_over_the_bound_is_vmx006() -> None:
    exits = "".join(f"\tif (vmx->stop{k})\n\t\treturn 0;\n" for k in range(300))
    text = with_code(exits, "\tvmx_set_rflags(vcpu, vmcs12->guest_rflags);\n")
    found = analyse(Tree(SHAPE).with_overlay({NESTED: text})).findings
    budget = {f.field for f in found if f.code == "VMX006"}
    assert {"GUEST_RFLAGS", "GUEST_RIP"} <= budget
    assert all("conditions" in f.message for f in found if f.code == "VMX006")


def test_long_and_guard_is_analysed() -> None:
    cond = " &&\n\t    ".join(f"vmx->knob{k}" for k in range(60))
    code = f"\tif ({cond})\n\t\tvmcs_write32(GUEST_ES_LIMIT, 0);\n"
    found = analyse(Tree(SHAPE).with_overlay({NESTED: with_code(code)})).findings
    assert not [f for f in found if f.code == "VMX006"]


def test_guard_construction_is_linear(monkeypatch) -> None:
    calls = [0]
    original = Atom.__eq__

    def counting(self, other):
        calls[0] += 1
        return original(self, other)

    monkeypatch.setattr(Atom, "__eq__", counting)
    n = 2000
    guard = logic.TRUE
    for k in range(n):
        guard = conj(guard, Atom(f"c:a{k}"))
    either = logic.FALSE
    for k in range(n):
        either = disj(either, neg(Atom(f"c:b{k}")))
    assert len(guard.args) == n and len(either.args) == n
    assert calls[0] < 4 * n          # a rescan per term would be n * n / 2


def test_real_trees_stay_within_every_bound(kernel_tree: Path) -> None:
    found = analyse(Tree.open(kernel_tree)).findings
    assert [f for f in found if f.code == "VMX006"] == []


def test_input_over_the_size_bound_is_not_read() -> None:
    data = b"x" * (mail.MAX_INPUT + 1)
    mails = read_mails(data, "big.mbox")
    assert len(mails) == 1 and mails[0].problem and mails[0].diff == ""
    result = check(mails, Tree(SHAPE))
    assert [(f.code, f.severity) for f in result.findings] == [("VMX006", "error")]
    assert "big.mbox" in result.findings[0].message


def test_ten_thousand_messages_split_and_bounded() -> None:
    mbox = "".join(f"From mboxrd@z Thu Jan  1 00:00:00 1970\nFrom: a@b\n"
                   f"Subject: [PATCH {k}/10000] x\n\nbody\n" for k in range(1, 10001))
    mails = read_mails(mbox.encode())
    assert len(mails) == 10000 and mails[-1].index == "10000/10000"
    result = check(mails, Tree(SHAPE))
    budget = [f for f in result.findings if f.code == "VMX006"]
    assert len(budget) == 1 and budget[0].severity == "error"
    assert budget[0].patch.index == f"{analysis.MAX_PATCHES + 1}/10000"


def test_deep_mime_is_no_internal_error() -> None:
    head = "From: a@b\nSubject: deep\nMIME-Version: 1.0\n"
    opening = "".join(f'Content-Type: multipart/mixed; boundary="b{k}"\n\n--b{k}\n'
                      for k in range(1200))
    closing = "".join(f"--b{k}--\n" for k in reversed(range(1200)))
    data = (head + opening + "Content-Type: text/plain\n\nhello\n" + closing).encode()
    mails = read_mails(data)
    result = check(mails, Tree(SHAPE))
    assert [f.code for f in result.findings] == ["VMX001"]


# -- properties ----------------------------------------------------------------------------

_atoms = st.sampled_from([Atom(f"c:x{k}") for k in range(6)])
_formulas = st.recursive(
    st.one_of(_atoms, st.just(logic.TRUE), st.just(logic.FALSE)),
    lambda sub: st.one_of(sub.map(neg), st.lists(sub, max_size=4).map(lambda fs: conj(*fs)),
                          st.lists(sub, max_size=4).map(lambda fs: disj(*fs))),
    max_leaves=20)


def _value(f, env: dict[str, bool]) -> bool:
    if isinstance(f, logic.Const):
        return f.value
    if isinstance(f, Atom):
        return env[f.name]
    if isinstance(f, logic.Not):
        return not _value(f.arg, env)
    values = [_value(a, env) for a in f.args]
    return all(values) if isinstance(f, logic.And) else any(values)


@settings(max_examples=200, deadline=None)
@given(st.lists(_formulas, max_size=5), st.lists(st.booleans(), min_size=6, max_size=6))
def test_property_linear_conj_keeps_the_meaning(fs, bits) -> None:
    env = {f"c:x{k}": b for k, b in enumerate(bits)}
    assert _value(conj(*fs), env) == all(_value(f, env) for f in fs)
    assert _value(disj(*fs), env) == any(_value(f, env) for f in fs)


@settings(max_examples=100, deadline=None)
@given(_formulas)
def test_property_terms_count_atom_occurrences(f) -> None:
    def naive(g) -> int:
        if isinstance(g, Atom):
            return 1
        if isinstance(g, logic.Not):
            return naive(g.arg)
        return sum(naive(a) for a in getattr(g, "args", ()))
    assert analysis._terms(f) == naive(f)


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 3000))
def test_property_input_bound(size) -> None:
    bound = 1500
    old = mail.MAX_INPUT
    mail.MAX_INPUT = bound
    try:
        mails = read_mails(b"x" * size, "in")
    finally:
        mail.MAX_INPUT = old
    assert bool(mails[0].problem) == (size > bound)


def test_a_guard_is_judged_against_the_bounds_of_the_moment(monkeypatch) -> None:
    """Whether a guard is over a bound is kept on the guard (a series' images share
    most guards), and asked again under other bounds."""
    guard = conj(*(disj(Atom(f"a{i}"), neg(Atom(f"b{i}"))) for i in range(40)))
    assert analysis._too_big(guard) is None and "_big" in guard.__dict__
    assert analysis._too_big(guard) is None
    monkeypatch.setattr(analysis, "MAX_GUARD_TERMS", 50)
    assert analysis._too_big(guard) == "a guard of 80 terms (bound 50)"
    monkeypatch.setattr(analysis, "MAX_GUARD_TERMS", 20_000)
    monkeypatch.setattr(analysis, "MAX_GUARD_ATOMS", 60)
    assert analysis._too_big(guard) == "a guard over 80 conditions (bound 60)"
    assert analysis._too_big(logic.TRUE) is None
