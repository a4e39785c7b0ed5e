"""Tests for vmxlint.patch: apply, repair, and what cannot be applied."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import vmxlint.tree as vtree
from vmxlint.mail import read_mails
from vmxlint.patch import Applied, Problem, apply_patch
from vmxlint.tree import Tree
from vmxlint.tree import lines as tree_lines

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
INPUTS = FIXTURES / "inputs"
PATCHABLE = FIXTURES / "trees" / "patchable"
NESTED = "arch/x86/kvm/vmx/nested.c"
BASE = (PATCHABLE / NESTED).read_text()


@pytest.fixture
def tree() -> Tree:
    return Tree(PATCHABLE)


def diff_of(name: str, k: int = 0) -> str:
    return read_mails((INPUTS / name).read_bytes(), name)[k].diff


def codes(applied: Applied) -> list[str]:
    return [p.code for p in applied.problems]


def function(text: str, signature: str) -> str:
    """The body of the function whose definition starts with signature."""
    start = text.index(signature)
    return text[start:text.index("\n}\n", start)]


def without_pdptr_block(text: str) -> str:
    """The fixture with the rare path's PDPTR block removed, by hand."""
    lines = text.split("\n")
    start = next(k for k, ln in enumerate(lines) if "Copy the PDPTRs early" in ln) - 1
    return "\n".join(lines[:start] + lines[start + 8:])


def test_format_patch_applies(tree: Tree) -> None:
    applied = apply_patch(diff_of("format-patch.patch"), tree)
    assert applied.usable and applied.problems == []
    assert applied.pre == {NESTED: BASE}
    assert applied.files[NESTED] == without_pdptr_block(BASE)
    assert applied.removed_lines == {NESTED: set(range(24, 32))}
    assert applied.added_lines == {NESTED: set()}


def test_plain_diff_added_lines(tree: Tree) -> None:
    applied = apply_patch(diff_of("plain.diff"), tree)
    assert applied.problems == []
    post = applied.files[NESTED].split("\n")
    assert applied.added_lines[NESTED] == {18}
    assert post[17] == "\t\tvmcs_writel(GUEST_CS_BASE, vmcs12->guest_cs_base);"


def test_quoted_printable_mail_applies(tree: Tree) -> None:
    applied = apply_patch(diff_of("quoted-printable.eml"), tree)
    assert applied.problems == [] and applied.removed_lines[NESTED] == {39}
    assert applied.added_lines[NESTED] == {39, 40}


def test_archive_page_is_repaired_to_the_clean_result(tree: Tree) -> None:
    applied = apply_patch(diff_of("archive-page.txt"), tree)
    assert codes(applied) == ["VMX002"]
    problem = applied.problems[0]
    assert problem.path == NESTED and problem.line == 21
    assert "1 hunk(s) restored against the tree" in problem.message
    assert applied.usable
    assert applied.files[NESTED] == without_pdptr_block(BASE)


def test_archive_page_footer_is_not_part_of_the_hunk(tree: Tree) -> None:
    diff = diff_of("archive-page.txt") + "\n- Previous message\n Next: x\nLast update: today\n"
    applied = apply_patch(diff, tree)
    assert codes(applied) == ["VMX002"]
    assert applied.files[NESTED] == without_pdptr_block(BASE)


def test_hunk_that_does_not_apply(tree: Tree) -> None:
    applied = apply_patch(diff_of("does-not-apply.patch"), tree)
    assert not applied.usable
    assert codes(applied) == ["VMX003"]
    assert applied.problems[0].path == NESTED and applied.problems[0].line == 48
    assert applied.files == {}


@pytest.mark.parametrize("diff", ["", "   \n", "just some words\n", "--- \n+++ \n"])
def test_no_diff(diff: str, tree: Tree) -> None:
    applied = apply_patch(diff, tree)
    assert not applied.usable
    assert codes(applied) == ["VMX001"]


def test_series_applies_cumulatively(tree: Tree) -> None:
    mails = read_mails((INPUTS / "series.mbox").read_bytes(), "series.mbox")
    assert apply_patch(mails[0].diff, tree).problems[0].code == "VMX001"   # cover letter
    view = tree
    for mail in mails[1:]:
        applied = apply_patch(mail.diff, view)
        assert applied.usable and applied.problems == [], mail.subject
        view = view.with_overlay(applied.files)
    final = view.read(NESTED)
    assert "GUEST_PDPTR" not in function(final, "static void prepare_vmcs02_rare(")
    assert "vmcs_writel(GUEST_RIP, vmcs12->guest_rip);" in final
    assert tree.read(NESTED) == BASE


def test_series_patch_alone_does_not_apply(tree: Tree) -> None:
    second = read_mails((INPUTS / "series.mbox").read_bytes())[2]
    applied = apply_patch(second.diff, tree)
    assert codes(applied) == ["VMX003"] and not applied.usable


def test_offset_hunk_applies_without_repair(tree: Tree) -> None:
    diff = diff_of("format-patch.patch").replace("@@ -21,14 +21,6 @@", "@@ -31,14 +31,6 @@")
    applied = apply_patch(diff, tree)
    assert applied.problems == []
    assert applied.files[NESTED] == without_pdptr_block(BASE)


def test_nearest_exact_match_wins() -> None:
    # The block occurs twice, exactly; the stated line picks the later one, as patch does.
    block = ["\tfoo(a);", "\tbar(b);", "\tbaz(c);"]
    lines = block + [f"\tfiller({k});" for k in range(10)] + block
    view = Tree(None).with_overlay({"f.c": "\n".join(lines) + "\n"})
    diff = "--- a/f.c\n+++ b/f.c\n@@ -12,3 +12,2 @@\n \tfoo(a);\n-\tbar(b);\n \tbaz(c);\n"
    applied = apply_patch(diff, view)
    assert applied.problems == []
    assert applied.removed_lines["f.c"] == {15}


def test_wrong_hunk_counts_are_recounted(tree: Tree) -> None:
    diff = diff_of("format-patch.patch").replace("@@ -21,14 +21,6 @@", "@@ -21,9 +21,1 @@")
    applied = apply_patch(diff, tree)
    assert codes(applied) == ["VMX002"]
    assert applied.files[NESTED] == without_pdptr_block(BASE)


def test_truncated_hunk_still_applies(tree: Tree) -> None:
    diff = "\n".join(diff_of("format-patch.patch").split("\n")[:-3]) + "\n"
    applied = apply_patch(diff, tree)
    assert codes(applied) == ["VMX002"]
    assert applied.files[NESTED] == without_pdptr_block(BASE)


def test_damaged_ambiguous_hunk_is_unusable(tree: Tree) -> None:
    # Both PDPTR blocks are within reach of line 40 and neither is at it.
    diff = ("--- a/{0}\n+++ b/{0}\n@@ -40,3 +40,2 @@\n"
            "vmcs_write64(GUEST_PDPTR0, vmcs12->guest_pdptr0);\n"
            "- vmcs_write64(GUEST_PDPTR1, vmcs12->guest_pdptr1);\n"
            "vmcs_write64(GUEST_PDPTR2, vmcs12->guest_pdptr2);\n").format(NESTED)
    applied = apply_patch(diff, tree)
    assert not applied.usable
    assert codes(applied) == ["VMX001"]
    assert "2 places" in applied.problems[0].message


def test_damaged_hunk_at_its_stated_line_wins_a_near_tie(tree: Tree) -> None:
    diff = ("--- a/{0}\n+++ b/{0}\n@@ -54,3 +54,2 @@\n"
            "vmcs_write64(GUEST_PDPTR0, vmcs12->guest_pdptr0);\n"
            "- vmcs_write64(GUEST_PDPTR1, vmcs12->guest_pdptr1);\n"
            "vmcs_write64(GUEST_PDPTR2, vmcs12->guest_pdptr2);\n").format(NESTED)
    applied = apply_patch(diff, tree)
    assert codes(applied) == ["VMX002"]
    assert applied.removed_lines[NESTED] == {55}


def test_damaged_hunk_stated_line_breaks_a_far_tie() -> None:
    block = ["\tfoo(a);", "\tbar(b);", "\tbaz(c);"]
    lines = block + [f"\tfiller({k});" for k in range(300)] + block
    view = Tree(None).with_overlay({"f.c": "\n".join(lines) + "\n"})
    diff = "--- a/f.c\n+++ b/f.c\n@@ -300,3 +300,2 @@\nfoo(a);\n- bar(b);\nbaz(c);\n"
    applied = apply_patch(diff, view)
    assert codes(applied) == ["VMX002"]
    assert applied.removed_lines["f.c"] == {305}


def test_well_formed_hunk_missing_from_tree_is_vmx003(tree: Tree) -> None:
    diff = "--- a/{0}\n+++ b/{0}\n@@ -1,1 +1,1 @@\n-no such line\n+another\n".format(NESTED)
    assert codes(apply_patch(diff, tree)) == ["VMX003"]


def test_damaged_hunk_missing_from_tree_is_vmx001(tree: Tree) -> None:
    diff = "--- a/{0}\n+++ b/{0}\n@@ -1,2 +1,1 @@\nno such line\n-or this\n".format(NESTED)
    assert codes(apply_patch(diff, tree)) == ["VMX001"]


def test_file_not_in_tree(tree: Tree) -> None:
    diff = "--- a/missing.c\n+++ b/missing.c\n@@ -1 +1 @@\n-a\n+b\n"
    applied = apply_patch(diff, tree)
    assert codes(applied) == ["VMX003"] and not applied.usable


def test_new_file(tree: Tree) -> None:
    diff = ("diff --git a/new.h b/new.h\nnew file mode 100644\nindex 0000000..1111111\n"
            "--- /dev/null\n+++ b/new.h\n@@ -0,0 +1,2 @@\n+#define A 1\n+#define B 2\n")
    applied = apply_patch(diff, tree)
    assert applied.problems == []
    assert applied.files == {"new.h": "#define A 1\n#define B 2\n"}
    assert applied.pre == {"new.h": None}
    assert applied.added_lines == {"new.h": {1, 2}}


def test_new_file_that_exists(tree: Tree) -> None:
    diff = "--- /dev/null\n+++ b/{0}\n@@ -0,0 +1 @@\n+x\n".format(NESTED)
    assert codes(apply_patch(diff, tree)) == ["VMX003"]


def test_deleted_file() -> None:
    view = Tree(None).with_overlay({"old.h": "a\nb\n"})
    diff = ("diff --git a/old.h b/old.h\ndeleted file mode 100644\n"
            "--- a/old.h\n+++ /dev/null\n@@ -1,2 +0,0 @@\n-a\n-b\n")
    applied = apply_patch(diff, view)
    assert applied.problems == [] and applied.files == {"old.h": None}
    assert applied.removed_lines == {"old.h": {1, 2}}


def test_rename_without_hunks() -> None:
    view = Tree(None).with_overlay({"old.h": "a\n"})
    diff = ("diff --git a/old.h b/new.h\nsimilarity index 100%\n"
            "rename from old.h\nrename to new.h\n")
    applied = apply_patch(diff, view)
    assert applied.problems == []
    assert applied.files == {"old.h": None, "new.h": "a\n"}


@pytest.mark.parametrize("old, new", [("a/old.h", "b/new.h "), ("i/old.h", "w/new.h")],
                         ids=["trailing-blank", "mnemonic-prefixes"])
def test_damaged_diff_keeps_a_rename_whatever_its_header(old: str, new: str) -> None:
    """A diff read leniently (its hunk counts are wrong) keeps a rename whose ``diff
    --git`` line ends in a blank or uses other prefixes than a/ b/ (``git diff`` with
    ``diff.mnemonicPrefix``): the strict header of the index-line reader once shadowed
    the lenient one, and such a rename was dropped without a word."""
    view = Tree(None).with_overlay({"old.h": "x\n", "f.c": "a\nb\n"})
    diff = (f"diff --git {old} {new}\nsimilarity index 100%\n"
            "rename from old.h\nrename to new.h\n"
            "diff --git a/f.c b/f.c\n--- a/f.c\n+++ b/f.c\n@@ -1,5 +1,5 @@\n a\n-b\n+c\n")
    applied = apply_patch(diff, view)
    assert applied.files["old.h"] is None and applied.files["new.h"] == "x\n"
    assert applied.files["f.c"] == "a\nc\n"


def test_no_newline_at_end_of_file() -> None:
    view = Tree(None).with_overlay({"f.c": "a\nb\n"})
    diff = "--- a/f.c\n+++ b/f.c\n@@ -1,2 +1,2 @@\n a\n-b\n+c\n\\ No newline at end of file\n"
    applied = apply_patch(diff, view)
    assert applied.problems == [] and applied.files["f.c"] == "a\nc"


def test_non_git_prefix_is_stripped(tree: Tree) -> None:
    diff = diff_of("plain.diff").replace("a/arch", "linux.orig/arch")
    diff = diff.replace("b/arch", "linux/arch")
    applied = apply_patch(diff, tree)
    assert applied.problems == [] and NESTED in applied.files


@pytest.mark.parametrize("path", ["/etc/passwd", "../outside.c", "a/b/../../../x"])
def test_unsafe_paths_are_not_read(path: str, tree: Tree) -> None:
    diff = f"--- {path}\n+++ {path}\n@@ -1 +1 @@\n-root\n+toor\n"
    applied = apply_patch(diff, tree)
    assert not applied.usable and codes(applied) == ["VMX001"]


def test_problem_is_one_line(tree: Tree) -> None:
    applied = apply_patch("--- a/x\n+++ b/x\n@@ garbage\n-a\n", tree)
    assert applied.problems and all(isinstance(p, Problem) for p in applied.problems)
    assert all("\n" not in p.message for p in applied.problems)


def test_tree_is_never_written(tree: Tree) -> None:
    before = hashlib.sha256((PATCHABLE / NESTED).read_bytes()).hexdigest()
    for name in ("format-patch.patch", "archive-page.txt", "plain.diff"):
        apply_patch(diff_of(name), tree)
    assert hashlib.sha256((PATCHABLE / NESTED).read_bytes()).hexdigest() == before


@pytest.mark.kernel
def test_seed_repairs_and_applies(kernel_tree: Path, seed_path: Path) -> None:
    [mail] = read_mails(seed_path.read_bytes(), seed_path.name)
    tree = Tree(kernel_tree)
    applied = apply_patch(mail.diff, tree)
    assert applied.usable
    assert codes(applied) == ["VMX002"]
    assert applied.problems[0].path == NESTED and applied.problems[0].line != 2623
    pre, post = applied.pre[NESTED], applied.files[NESTED]
    rare_pre = function(pre, "static void prepare_vmcs02_rare(")
    rare_post = function(post, "static void prepare_vmcs02_rare(")
    late_pre = function(pre, "static int prepare_vmcs02(")
    late_post = function(post, "static int prepare_vmcs02(")
    for n in range(4):
        write = f"vmcs_write64(GUEST_PDPTR{n}, "
        assert write in rare_pre and write not in rare_post
        assert late_post.count(write) == late_pre.count(write) == 1
    assert len(applied.removed_lines[NESTED]) == 11 and applied.added_lines[NESTED] == set()
    # Everything outside the removed block is the tree's own text, tabs included.
    assert len(pre.split("\n")) - len(post.split("\n")) == 11
    assert "\t\tif (kvm_mpx_supported() && vmx->nested.nested_run_pending &&" in rare_post


_LINE = st.text(alphabet="ab \t\r\x0c}", max_size=4)


@settings(max_examples=300)
@given(st.lists(st.tuples(_LINE, st.booleans()), max_size=8))
def test_a_made_text_is_split_as_it_was_made(parts) -> None:
    """The post-image's text keeps the lines it was joined from for the next patch of a
    series: they are what splitting the text gives, and the text is the lines joined
    with a newline after each but the last where one lacks it."""
    from vmxlint import patch as P

    bare = [text for text, _ in parts]
    lines = [text + "\n" if ended else text for text, ended in parts]
    text = P._join(list(lines), list(bare))
    assert text == "".join(ln if ln.endswith("\n") or k == len(lines) - 1 else ln + "\n"
                           for k, ln in enumerate(lines))
    made = P._MADE.get(text)
    assert made is None or (made == lines and P._split_lines(text) == (lines, bare))
    P._MADE.pop(text, None)
    assert made is None or P._split_lines(text) == (lines, bare)
    # The lines every later stage reads are the ones the text was made from.
    assert tree_lines(text) == text.split("\n")
    assert made is None or tree_lines(text) is tree_lines(text) is not vtree._split(text)
