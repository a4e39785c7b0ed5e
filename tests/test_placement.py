"""Patch placement (DESIGN section 2 "patch"): what is applied, what is refused as VMX003."""
from __future__ import annotations

import difflib
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vmxlint.series import check
from vmxlint.mail import read_mails
from vmxlint.patch import apply_patch
from vmxlint.tree import Tree

ROOT = Path(__file__).resolve().parent.parent
PATCHABLE = ROOT / "fixtures" / "trees" / "patchable"
NESTED = "arch/x86/kvm/vmx/nested.c"
BASE = (PATCHABLE / NESTED).read_text()
LINES = BASE.splitlines(True)


def mem_tree(files: dict[str, str]) -> Tree:
    """A tree held in memory only."""
    return Tree(None, overlay=files)


def udiff(before: str, after: str, old: str = NESTED, new: str | None = None,
          context: int = 3) -> str:
    new = new or old
    body = "".join(difflib.unified_diff(before.splitlines(True), after.splitlines(True),
                                        f"a/{old}", f"b/{new}", n=context))
    return f"diff --git a/{old} b/{new}\n{body}"


def codes(applied) -> list[str]:
    return [p.code for p in applied.problems]


def replace_line(text: str, needle: str, new: str) -> str:
    assert needle in text
    return text.replace(needle, new, 1)


# -- already applied ---------------------------------------------------------------

def test_already_applied_deletion_is_refused() -> None:
    post = replace_line(BASE, "\tvmcs_writel(GUEST_RFLAGS, vmcs12->guest_rflags);\n", "")
    applied = apply_patch(udiff(BASE, post), mem_tree({NESTED: post}))
    assert codes(applied) == ["VMX003"] and not applied.usable
    assert "already" in applied.problems[0].message
    assert applied.files == {}


def test_already_applied_addition_is_refused() -> None:
    extra = "\tvmcs_write16(GUEST_ES_SELECTOR, vmcs12->guest_es_selector);\n"
    post = replace_line(BASE, "\tvmcs_writel(GUEST_RFLAGS, vmcs12->guest_rflags);\n",
                        "\tvmcs_writel(GUEST_RFLAGS, vmcs12->guest_rflags);\n" + extra)
    applied = apply_patch(udiff(BASE, post), mem_tree({NESTED: post}))
    assert codes(applied) == ["VMX003"] and not applied.usable
    assert "already" in applied.problems[0].message


def test_duplicated_line_addition_already_applied() -> None:
    line = "\tvmcs_writel(GUEST_RFLAGS, vmcs12->guest_rflags);\n"
    post = replace_line(BASE, line, line + line)
    applied = apply_patch(udiff(BASE, post), mem_tree({NESTED: post}))
    assert not applied.usable and "already" in applied.problems[0].message


# -- additions whose context is gone ---------------------------------------------------

def test_addition_whose_context_is_gone_is_refused() -> None:
    anchor = "\tvmcs_writel(GUEST_RFLAGS, vmcs12->guest_rflags);\n"
    post = replace_line(BASE, anchor, anchor + "\tvmcs_write64(GUEST_IA32_DEBUGCTL, 0);\n")
    # The tree lost the context after the addition point.
    tree_text = replace_line(BASE, "\tif (enable_ept && is_pae_paging(vcpu)) {\n",
                             "\tif (enable_ept) {\n")
    applied = apply_patch(udiff(BASE, post), mem_tree({NESTED: tree_text}))
    assert codes(applied) == ["VMX003"] and not applied.usable and applied.files == {}


def test_addition_with_whitespace_damage_is_repaired() -> None:
    anchor = "\tvmcs_writel(GUEST_RFLAGS, vmcs12->guest_rflags);\n"
    post = replace_line(BASE, anchor, anchor + "\tvmcs_write64(GUEST_IA32_DEBUGCTL, 0);\n")
    damaged = udiff(BASE, post).replace("\n \tif (enable_ept && is", "\n  if (enable_ept && is")
    applied = apply_patch(damaged, mem_tree({NESTED: BASE}))
    assert codes(applied) == ["VMX002"] and applied.files[NESTED] == post


def test_removal_fuzz_names_the_differing_context_line() -> None:
    old = "\tvmcs_writel(GUEST_RFLAGS, vmcs12->guest_rflags);\n"
    post = replace_line(BASE, old, "")
    tree_text = replace_line(BASE, "\treturn 0;\n", "\treturn 1;\n")
    applied = apply_patch(udiff(BASE, post, context=9), mem_tree({NESTED: tree_text}))
    assert codes(applied) == ["VMX002"] and applied.usable
    assert "return 1;" in applied.problems[0].message
    assert applied.files[NESTED] == replace_line(tree_text, old, "")


# -- partial application --------------------------------------------------------------

def test_one_unplaceable_hunk_refuses_the_whole_patch() -> None:
    post = replace_line(BASE, "vmcs12->guest_es_limit", "vmcs12->guest_es_limit + 0")
    post = replace_line(post, "\treturn 0;\n", "\treturn -1;\n")
    tree_text = replace_line(BASE, "\treturn 0;\n", "\treturn 2;\n")
    applied = apply_patch(udiff(BASE, post, context=1), mem_tree({NESTED: tree_text}))
    assert "VMX003" in codes(applied) and not applied.usable
    assert applied.files == {} and applied.added_lines == {}


def test_one_unplaceable_file_refuses_the_whole_patch() -> None:
    other = "arch/x86/kvm/vmx/other.c"
    post = replace_line(BASE, "vmcs12->guest_es_limit", "vmcs12->guest_es_limit + 0")
    diff = udiff(BASE, post) + udiff("int a;\n", "int b;\n", old=other)
    applied = apply_patch(diff, mem_tree({NESTED: BASE, other: "int c;\n"}))
    assert "VMX003" in codes(applied) and not applied.usable and applied.files == {}


def test_ambiguous_pure_addition_is_refused() -> None:
    # "b c" stands at lines 2 and 42; the stated line 22 is as far from both.
    text = "a\nb\nc\n" + "x\n" * 37 + "a\nb\nc\n"
    diff = ("--- a/f.c\n+++ b/f.c\n@@ -22,2 +22,3 @@\n b\n+new\n c\n")
    applied = apply_patch(diff, mem_tree({"f.c": text}))
    assert codes(applied) == ["VMX003"] and not applied.usable


# -- what is not part of the diff -------------------------------------------------------

def test_base_commit_trailer_is_not_part_of_the_diff() -> None:
    post = replace_line(BASE, "vmcs12->guest_es_limit", "vmcs12->guest_es_limit + 0")
    raw = ("From: A <a@example.org>\nSubject: [PATCH] x\n\nmsg\n---\n" + udiff(BASE, post)
           + "\nbase-commit: 0123456789abcdef0123456789abcdef01234567\n"
           "prerequisite-patch-id: 89abcdef0123456789abcdef0123456789abcdef\n-- \n2.43.0\n")
    applied = apply_patch(read_mails(raw.encode())[0].diff, mem_tree({NESTED: BASE}))
    assert applied.problems == [] and applied.files[NESTED] == post


def test_text_after_the_last_hunk_is_not_part_of_the_diff() -> None:
    post = replace_line(BASE, "vmcs12->guest_es_limit", "vmcs12->guest_es_limit + 0")
    diff = udiff(BASE, post) + "\nThanks,\nSomeone\n"
    applied = apply_patch(diff, mem_tree({NESTED: BASE}))
    assert applied.problems == [] and applied.files[NESTED] == post


# -- paths --------------------------------------------------------------------------------

def test_paths_are_normalised_as_git_does() -> None:
    post = replace_line(BASE, "vmcs12->guest_es_limit", "vmcs12->guest_es_limit + 0")
    diff = udiff(BASE, post).replace("a/arch/x86/kvm/vmx/nested.c", "a/arch/x86/kvm/vmx//nested.c")
    diff = diff.replace("b/arch/x86/kvm/vmx/nested.c", "b/./arch/x86//kvm/vmx/nested.c")
    applied = apply_patch(diff, mem_tree({NESTED: BASE}))
    assert applied.usable and list(applied.files) == [NESTED] and applied.problems == []


def test_copy_keeps_both_files() -> None:
    src, dst = "arch/x86/kvm/vmx/a.c", "arch/x86/kvm/vmx/b.c"
    diff = (f"diff --git a/{src} b/{dst}\nsimilarity index 80%\ncopy from {src}\n"
            f"copy to {dst}\n--- a/{src}\n+++ b/{dst}\n@@ -1,3 +1,3 @@\n x\n-y\n+z\n w\n")
    applied = apply_patch(diff, mem_tree({src: "x\ny\nw\n"}))
    assert applied.usable and applied.problems == []
    assert applied.files == {dst: "x\nz\nw\n"}
    assert mem_tree({src: "x\ny\nw\n"}).with_overlay(applied.files).read(src) == "x\ny\nw\n"


def test_rename_with_hunks_moves_the_file() -> None:
    src, dst = "arch/x86/kvm/vmx/a.c", "arch/x86/kvm/vmx/b.c"
    diff = (f"diff --git a/{src} b/{dst}\nsimilarity index 80%\nrename from {src}\n"
            f"rename to {dst}\n--- a/{src}\n+++ b/{dst}\n@@ -1,3 +1,3 @@\n x\n-y\n+z\n w\n")
    applied = apply_patch(diff, mem_tree({src: "x\ny\nw\n"}))
    assert applied.usable and applied.files == {src: None, dst: "x\nz\nw\n"}


# -- series ----------------------------------------------------------------------------------

def _mail(n: int, total: int, diff: str) -> str:
    return (f"From mboxrd@z Thu Jan  1 00:00:00 1970\nFrom: A <a@example.org>\n"
            f"Subject: [PATCH {n}/{total}] step {n}\nMessage-ID: <p{n}@example.org>\n\n"
            f"step\n---\n{diff}\n")


def test_series_stops_at_the_first_patch_that_does_not_apply() -> None:
    one = replace_line(BASE, "vmcs12->guest_es_limit", "vmcs12->guest_es_limit + 0")
    bad = udiff(BASE, replace_line(BASE, "\treturn 0;\n", "\treturn 3;\n")).replace(
        "\treturn 0;", "\treturn 9;")
    three = replace_line(one, "\tvmcs_writel(GUEST_RFLAGS, vmcs12->guest_rflags);\n", "")
    mbox = _mail(1, 3, udiff(BASE, one)) + _mail(2, 3, bad) + _mail(3, 3, udiff(one, three))
    result = check(read_mails(mbox.encode()), Tree(PATCHABLE))
    by_index: dict[str, list] = {}
    for f in result.findings:
        by_index.setdefault(f.patch.index, []).append(f)
    assert [f.code for f in by_index["2/3"]] == ["VMX003"]
    assert [f.code for f in by_index["3/3"]] == ["VMX003"]
    assert "earlier patch" in by_index["3/3"][0].message
    assert by_index["3/3"][0].severity == "error"


# -- properties --------------------------------------------------------------------------------

_edits = st.lists(st.tuples(st.integers(0, len(LINES) - 1), st.sampled_from(["del", "add"])),
                  min_size=1, max_size=4, unique_by=lambda e: e[0])


def _edit(edits: list[tuple[int, str]]) -> str:
    out = list(LINES)
    for k, kind in sorted(edits, reverse=True):
        if kind == "del":
            del out[k]
        else:
            out.insert(k, f"\tvmcs_write32(GUEST_ES_AR_BYTES, {k});\n")
    return "".join(out)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_edits)
def test_property_applies_exactly_and_is_refused_once_applied(edits) -> None:
    post = _edit(edits)
    diff = udiff(BASE, post)
    if post == BASE:
        return
    applied = apply_patch(diff, mem_tree({NESTED: BASE}))
    assert applied.usable and applied.files[NESTED] == post
    again = apply_patch(diff, mem_tree({NESTED: post}))
    assert not again.usable and "VMX003" in codes(again) and again.files == {}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_edits, st.integers(0, len(LINES) - 1), st.text("xyz;{}", min_size=1, max_size=5))
def test_property_never_half_applied(edits, spoil_at, junk) -> None:
    post = _edit(edits)
    if post == BASE:
        return
    tree_lines = list(LINES)
    tree_lines[spoil_at] = junk + "\n"
    tree_text = "".join(tree_lines)
    applied = apply_patch(udiff(BASE, post, context=1), mem_tree({NESTED: tree_text}))
    if applied.usable:
        assert NESTED in applied.files
        result = applied.files[NESTED]
        # Every change of the patch is in the result: nothing was left out.
        for tag, line in _changes(BASE, post):
            assert (line in result) if tag == "+" else True
    else:
        assert applied.files == {} and {"VMX003", "VMX001"} & set(codes(applied))


def _changes(before: str, after: str) -> list[tuple[str, str]]:
    out = []
    for line in difflib.unified_diff(before.splitlines(True), after.splitlines(True), n=0):
        if line[:1] in "+-" and not line.startswith(("+++", "---")):
            out.append((line[0], line[1:]))
    return out
