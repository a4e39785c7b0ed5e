"""Incremental analysis gives exactly what a full analysis gives (issue 8, DESIGN §7).

An image reuses the findings of its neighbour's unchanged fields, at the new lines; the
findings must be the same as checking every field again, on the real Debian trees, on
every fixture tree and on every test patch.
"""
from __future__ import annotations

import os
import re
import time
from pathlib import Path

import msgspec.structs as structs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from test_hygiene import HANG_GUARD
from test_real_trees import LEGITIMATE, PLANTED, _patch
from vmxlint import analysis
from vmxlint.analysis import analyse
from vmxlint.findings import Evidence, Finding
from vmxlint.incremental import LineMap, Neighbour, relocate
from vmxlint.logic import Atom, Solver, conj, disj, neg
from vmxlint.mail import read_mails
from vmxlint.series import check
from vmxlint.tree import NESTED_C, Tree

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
TREES = sorted(p.parents[len(Path(NESTED_C).parts) - 1]
               for p in FIXTURES.glob("**/" + NESTED_C))
PATCHES = sorted(p for d in ("inputs", "hostile") for p in (FIXTURES / d).iterdir()
                 if p.suffix in (".patch", ".mbox", ".eml", ".diff", ".txt")
                 and p.name != "expected.txt")


@pytest.fixture(autouse=True)
def _no_cache(monkeypatch):
    # The cache would hand the second way the first way's result.
    monkeypatch.setenv("VMXLINT_NO_CACHE", "1")


@pytest.fixture
def checked(monkeypatch) -> list[str]:
    """The fields that were checked again (not reused), in order."""
    from vmxlint import checks

    seen: list[str] = []
    real = checks.run_checks

    def counting(ctx, codes=None):
        seen.append(next(iter(ctx.also), None) or next(
            (s.field for s in ctx.path.sites if s.field), "?"))
        return real(ctx, codes)

    monkeypatch.setattr(checks, "run_checks", counting)
    return seen


def _both_ways(mails, tree: Tree) -> list[Finding]:
    fast = check(mails, tree, include_existing=True)
    full = check(mails, tree, include_existing=True, incremental=False)
    assert fast.findings == full.findings
    assert fast.usable == full.usable and fast.notes == full.notes
    return fast.findings


def _shifted(text: str) -> str:
    """The same code with lines inserted above and between functions (comments, blanks):
    every function moves, nothing in a function moves relative to its start."""
    text = "/* a comment that moves everything down */\n\n" + text
    return re.sub(r"^(static )", r"/* moved */\n\1", text, count=5, flags=re.M)


def _reuse_equals_full(tree: Tree, other: Tree) -> int:
    """Analyse ``tree`` reusing ``other``'s analysis; the same as without.  Returns how
    many fields were taken over."""
    base = analysis._analyse(other, None, [])
    fast = analysis._analyse(tree, None, [], Neighbour(base, other.read(NESTED_C)))
    full = analysis._analyse(tree, None, [])
    assert fast.findings == full.findings
    assert fast.digests == full.digests and fast.written == full.written
    return sum(1 for k, d in fast.digests.items() if base.digests.get(k) == d)


@pytest.mark.parametrize("tree_dir", TREES, ids=lambda p: p.relative_to(FIXTURES).as_posix())
def test_fixture_tree_reuses_a_shifted_copy_exactly(tree_dir: Path, checked: list[str]):
    tree = Tree.open(tree_dir)
    text = tree.read(NESTED_C)
    moved = tree.with_overlay({NESTED_C: _shifted(text)})
    reused = _reuse_equals_full(moved, tree)
    # Lines moved, nothing else: every field is reused, at its new lines.
    assert reused == len(analysis._analyse(tree, None, []).digests)


@pytest.mark.kernel
def test_real_tree_reuses_a_shifted_copy_exactly(kernel_tree: Path, checked: list[str]):
    tree = Tree.open(kernel_tree)
    moved = tree.with_overlay({NESTED_C: _shifted(tree.read(NESTED_C))})
    full = analysis._analyse(tree, None, [])
    checked.clear()
    base = analysis._analyse(tree, None, [])
    n = len(checked)
    fast = analysis._analyse(moved, None, [], Neighbour(base, tree.read(NESTED_C)))
    assert len(checked) == n, "a field was checked again although only lines moved"
    assert fast.findings != full.findings or not full.findings   # the lines did move
    assert fast.findings == analysis._analyse(moved, None, []).findings


@pytest.mark.kernel
@pytest.mark.parametrize("name", sorted(PLANTED) + sorted(LEGITIMATE))
def test_real_tree_patch_incremental_equals_full(kernel_tree: Path, name: str):
    edit = PLANTED[name][0] if name in PLANTED else LEGITIMATE[name]
    _both_ways(read_mails(_patch(kernel_tree, edit), name), Tree.open(kernel_tree))


@pytest.mark.kernel
def test_seed_incremental_equals_full(kernel_tree: Path, seed_path: Path):
    _both_ways(read_mails(seed_path.read_bytes(), seed_path.name), Tree.open(kernel_tree))


@pytest.mark.kernel
def test_a_patch_rechecks_only_the_fields_it_changes(kernel_612: Path, checked: list[str]):
    tree = Tree.open(kernel_612)
    edit = PLANTED["dropped-branch-write"][0]
    mails = read_mails(_patch(kernel_612, edit), "one")
    base = analyse(tree)
    checked.clear()
    after = tree.with_overlay({NESTED_C: edit(tree.read(NESTED_C))})
    analyse(after, base=Neighbour(base, tree.read(NESTED_C)))
    assert checked == ["PAGE_FAULT_ERROR_CODE_MATCH"]
    _both_ways(mails, tree)


def test_a_checked_patch_rechecks_only_the_fields_it_changes(checked: list[str]):
    """A check of one patch against an analysed tree (b4's case) takes the tree's fields
    that the patch leaves alone: the post-image is analysed from the pre-image."""
    tree = Tree.open(FIXTURES / "trees" / "shape-modern")
    text = tree.read(NESTED_C)
    new = _edit_body(text, "prepare_vmcs02", "\tvmcs_write32(GUEST_SYSENTER_CS, 7);\n")
    analyse(tree)
    checked.clear()
    check(read_mails(_mail(text, new, 0).encode(), "one"), tree)
    assert checked == ["GUEST_SYSENTER_CS"]


@pytest.mark.parametrize("patch", PATCHES, ids=lambda p: p.name)
def test_every_test_patch_incremental_equals_full(patch: Path):
    mails = read_mails(patch.read_bytes(), patch.name)
    for tree_dir in (FIXTURES / "trees" / "patchable", FIXTURES / "trees" / "shape-modern"):
        _both_ways(mails, Tree.open(tree_dir))


def test_series_reuses_the_previous_patch(checked: list[str]):
    """A series of patches: each image reuses the one before; same findings as full."""
    tree = Tree.open(FIXTURES / "trees" / "shape-modern")
    text = tree.read(NESTED_C)
    mails = []
    cur = text
    for k in range(4):
        new = cur.replace("{\n", "{\n\t/* step %d */\n" % k, 1)
        mails.append(_mail(cur, new, k))
        cur = new
    findings = _both_ways(read_mails("".join(mails).encode(), "series"), tree)
    assert all(f.status != "new" for f in findings)


def _mail(old: str, new: str, k: int) -> str:
    import difflib

    body = "".join(difflib.unified_diff(old.splitlines(True), new.splitlines(True),
                                        f"a/{NESTED_C}", f"b/{NESTED_C}"))
    return (f"From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\n"
            f"From: T <t@example.org>\nSubject: [PATCH {k + 1}/4] step {k}\n"
            f"Message-ID: <step-{k}@example.org>\n\nstep\n---\n"
            f"diff --git a/{NESTED_C} b/{NESTED_C}\n{body}-- \n2.43.0\n\n")


_SHAPE = (FIXTURES / "trees" / "shape-modern" / NESTED_C).read_text()
_LINES = _SHAPE.splitlines(True)


@settings(max_examples=40)
@given(st.lists(st.tuples(st.integers(0, len(_LINES)),
                          st.sampled_from(["\n", "\t/* note */\n", "// x\n"])), max_size=6))
def test_inserted_lines_reuse_exactly(edits):
    tree = Tree.open(FIXTURES / "trees" / "shape-modern")
    lines = list(_LINES)
    for at, text in sorted(edits, reverse=True):
        lines.insert(at, text)
    moved = tree.with_overlay({NESTED_C: "".join(lines)})
    _reuse_equals_full(moved, tree)


# -- relocation ---------------------------------------------------------------------------

SPANS = {"f": (10, 20), "g": (30, 40)}
OLD_TEXT = "".join(f"line {k}\n" for k in range(1, 61))


def _map(new_text: str, new_spans) -> LineMap:
    return LineMap(NESTED_C, OLD_TEXT, new_text, SPANS, new_spans)


# 100 lines inserted at the top, 900 more between f and g: f moves by 100, g by 1000.
NEW_TEXT = "x\n" * 100 + "".join(OLD_TEXT.splitlines(True)[:25]) + "y\n" * 900 + \
    "".join(OLD_TEXT.splitlines(True)[25:])
WHERE = _map(NEW_TEXT, {"f": (110, 120), "g": (1030, 1040)})


def _finding(message: str, line: int = 12, evidence_line: int = 33) -> Finding:
    return Finding(code="VMX101", name="n", severity="warning", message=message,
                   path=NESTED_C, line=line, function="f", field="X",
                   evidence=(Evidence(NESTED_C, evidence_line, "g", "covering write"),))


def test_line_map_keeps_prefix_suffix_and_unchanged_functions():
    assert [WHERE(n) for n in (12, 25, 33, 60)] == [112, None, 1033, 1060]
    edited = OLD_TEXT.replace("line 15\n", "line 15 changed\nline 15b\n")
    where = _map(edited, {"f": (10, 21), "g": (31, 41)})
    # f changed: its lines before the edit stay, after it they move with the suffix.
    assert [where(n) for n in (14, 15, 16, 33)] == [14, None, 17, 34]


def test_relocation_moves_line_evidence_and_places():
    [f] = relocate([_finding("X written in f() is covered (by g():33)")], WHERE)
    assert (f.line, f.evidence[0].line) == (112, 1033)
    assert f.message == "X written in f() is covered (by g():1033)"


def test_relocation_refuses_what_it_cannot_move_exactly():
    assert relocate([_finding("m", line=25)], WHERE) is None        # between functions
    assert relocate([_finding("by f():33")], WHERE) is None         # names another function
    long = "x" * 160 + " by g():33"
    assert relocate([_finding(long)], WHERE) is None     # longer: may need shortening
    one_more = _map("\n" + OLD_TEXT, {"f": (11, 21), "g": (31, 41)})
    assert relocate([_finding(long)], one_more)[0].message.endswith("g():34")
    assert relocate([_finding("by g():33 and g():3…")], WHERE) is None   # cut: 3 of 34?
    other = _finding("m").with_(evidence=(Evidence("arch/x86/kvm/vmx/vmx.c", 5, "h", "r"),))
    assert relocate([other], WHERE)[0].evidence[0].line == 5     # another file


# -- counterexamples do not depend on the order of earlier queries ------------------------

@settings(max_examples=60)
@given(st.permutations(["a", "b", "c", "d", "e"]), st.permutations(["a", "b", "c", "d", "e"]))
def test_prime_implicant_ignores_declaration_order(first, second):
    a, b, c, d, e = (Atom(n) for n in "abcde")
    f = conj(disj(a, b), disj(neg(c), d), disj(e, neg(a)))
    results = []
    for order in (first, second):
        s = Solver([disj(neg(Atom("d")), Atom("b"))])
        for name in order:          # declare the atoms in this order
            s.satisfiable(Atom(name))
        results.append(s.prime_implicant(f, {"a", "b", "c", "d", "e"}, prefer={"c"}))
    assert results[0] == results[1]


# -- whole images: an edit the analysis does not read ------------------------------------

def _unreached(tree: Tree) -> str:
    """A function of nested.c that the analysis of the tree does not read."""
    a = analysis._analyse(tree, None, [])
    return next(n for n in reversed(list(a.spans)) if n not in a.reached)


def _edit_body(text: str, name: str, line: str) -> str:
    m = re.search(r"^[^\n]*\b" + re.escape(name) + r"\([^;{]*\)\n\{\n", text, re.M)
    assert m, name
    return text[:m.end()] + line + text[m.end():]


@pytest.fixture
def prepared(monkeypatch) -> list[int]:
    """How many images were parsed and walked."""
    calls: list[int] = []
    real = analysis._prepare

    def counting(*args):
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(analysis, "_prepare", counting)
    analysis._PREPARED.clear()
    return calls


def _whole_image_reuse(tree: Tree, new_text: str, prepared: list[int]) -> None:
    base = analysis._analyse(tree, None, [])
    moved = tree.with_overlay({NESTED_C: new_text})
    n = len(prepared)
    fast = analyse(moved, base=Neighbour(base, tree.read(NESTED_C)))
    assert len(prepared) == n, "the image was walked although the analysis reads no edit"
    full = analysis._analyse(moved, None, [])
    assert fast.findings == full.findings and fast.lines == full.lines
    assert fast.digests == full.digests and fast.spans == full.spans


@pytest.mark.parametrize("tree_dir", [FIXTURES / "trees" / "shape-modern",
                                      FIXTURES / "trees" / "shape-4.20"], ids=lambda p: p.name)
def test_comment_in_a_walked_function_reuses_the_whole_image(tree_dir: Path, prepared):
    tree = Tree.open(tree_dir)
    text = tree.read(NESTED_C)
    new = _edit_body(text, "prepare_vmcs02", "\t/* why */\n\n")
    _whole_image_reuse(tree, "/* top */\n" + new, prepared)


@pytest.mark.kernel
def test_edit_of_an_unreached_function_reuses_the_whole_image(kernel_tree: Path, prepared):
    tree = Tree.open(kernel_tree)
    name = _unreached(tree)
    new = _edit_body(tree.read(NESTED_C), name, "\tbarrier();\n")
    _whole_image_reuse(tree, new, prepared)
    _both_ways(read_mails(_patch(kernel_tree, lambda t: _edit_body(t, name, "\tbarrier();\n")),
                          "unreached"), tree)


def test_code_edit_in_a_walked_function_is_analysed_again(prepared):
    tree = Tree.open(FIXTURES / "trees" / "shape-modern")
    base = analysis._analyse(tree, None, [])
    new = _edit_body(tree.read(NESTED_C), "prepare_vmcs02",
                     "\tvmcs_write16(GUEST_CS_SELECTOR, 0);\n")
    moved = tree.with_overlay({NESTED_C: new})
    n = len(prepared)
    fast = analyse(moved, base=Neighbour(base, tree.read(NESTED_C)))
    assert len(prepared) == n + 1
    assert fast.findings == analysis._analyse(moved, None, []).findings


def test_the_same_image_with_a_part_not_analysed_is_not_analysed_again(monkeypatch):
    """A series whose earlier patch left a function that does not parse (VMX004): the
    next patch's pre-image, the image just analysed, is taken as it is (it used to be
    parsed, walked and written to the cache again at every later patch)."""
    tree = Tree.open(FIXTURES / "trees" / "shape-modern")
    text = _edit_body(tree.read(NESTED_C), "prepare_vmcs02_rare", "\tif (x) a(); b(); else c();\n")
    broken = tree.with_overlay({NESTED_C: text})
    post = analysis._analyse(broken, None, [])
    assert any(f.code == "VMX004" for f in post.findings)
    calls: list[int] = []
    real = analysis._analyse
    monkeypatch.setattr(analysis, "_analyse", lambda *a, **k: calls.append(1) or real(*a, **k))
    pre = analyse(broken, base=Neighbour(post, text))
    assert not calls
    assert pre.findings == real(broken, None, []).findings and pre.also == []


def test_git_range_reuses_the_previous_commit_exactly(tmp_path, monkeypatch):
    """Each commit of a range starts from the one before; same findings as on its own."""
    from test_git import add_comment, commit_edit, drop_sysenter_cs, git, scratch_repo
    from vmxlint import series
    from vmxlint.gitrange import check_range

    repo = scratch_repo(FIXTURES / "trees" / "shape-modern", tmp_path)
    start = git(repo, "rev-parse", "HEAD").strip()
    commit_edit(repo, add_comment, "comment")
    commit_edit(repo, drop_sysenter_cs, "drop a write")
    commit_edit(repo, lambda t: t.replace("/* Builds", "/* Makes"), "reword")
    fast = check_range(Tree.open(repo), f"{start}..HEAD", include_existing=True)
    real = series.check

    def alone(mails, tree, include_existing=False, incremental=True, jobs=1, base=None):
        return real(mails, tree, include_existing, incremental=False)

    monkeypatch.setattr(series, "check", alone)
    full = check_range(Tree.open(repo), f"{start}..HEAD", include_existing=True)
    assert fast.findings == full.findings and len(fast.commits) == 3
    assert any(f.status == "new" for f in fast.findings)


def _step_series(tree: Tree, n: int, value: int = 0) -> bytes:
    cur = tree.read(NESTED_C)
    mails = []
    for k in range(n):
        new = cur.replace("{\n", "{\n\t/* step %d */\n" % k, 1) if k % 2 else _edit_body(
            cur, "prepare_vmcs02", f"\tvmcs_write32(GUEST_SYSENTER_CS, {value + k});\n")
        mails.append(_mail(cur, new, k))
        cur = new
    return "".join(mails).encode()


def test_jobs_give_the_same_findings():
    """-j N spreads a series over processes; the findings are those of one process."""
    tree = Tree.open(FIXTURES / "trees" / "shape-modern")
    mails = read_mails(_step_series(tree, 4), "series")
    one = check(mails, tree, include_existing=True)
    two = check(mails, tree, include_existing=True, jobs=2)
    assert one.findings == two.findings and one.usable == two.usable == 4
    assert any(f.status == "new" for f in one.findings)


def test_lanes_meet_and_start_from_a_neighbour(monkeypatch):
    """With -j, the lanes of a segment take its patches from both ends until they meet:
    every patch once, the back lane from the last one down; every lane starts from the
    image before the series (analysed once before the processes start), not from a full
    analysis of its first image, and goes on from the image it analysed last."""
    from vmxlint import jobs

    tree = Tree.open(FIXTURES / "trees" / "shape-modern")
    images = [tree] + [tree.with_overlay({NESTED_C: f"/* {k} */\n"}) for k in range(1, 8)]
    steps = [jobs.Step(images[k], images[k + 1]) for k in range(7)]
    text = [image.read(NESTED_C) for image in images]

    def spy(step, previous, incremental):
        # Runs in the lane's process: what it was given goes back as the step's pair.
        _both_lanes_begun(len(steps))
        return (os.getpid(), previous.text if previous is not None else None,
                step.after.read(NESTED_C)), None

    monkeypatch.setattr(jobs, "_step", spy)
    monkeypatch.setattr(jobs, "_backward", spy)
    seen = [pair[0] for pair in jobs.analyse_steps(steps, True, jobs=2)]
    assert [s[2] for s in seen] == text[1:]
    pids = [s[0] for s in seen]
    front = 7 - pids.count(os.getpid())         # this process is the back lane
    assert 1 <= front <= 6 and pids == [pids[0]] * front + [os.getpid()] * (7 - front)
    assert [s[1] for s in seen[:front]] == text[:front]     # each from the one before
    assert [s[1] for s in seen[front:]] == text[front + 1:7] + [text[0]]
    alone = [pair[0] for pair in jobs.analyse_steps(steps, False, jobs=3)]
    assert [s[1] for s in alone] == [None] * 7 and [s[2] for s in alone] == text[1:]


def _lane_steps(n: int = 5) -> list:
    from vmxlint import jobs

    tree = Tree.open(FIXTURES / "trees" / "shape-modern")
    images = [tree] + [tree.with_overlay({NESTED_C: f"/* {k} */\n"}) for k in range(1, n + 1)]
    return [jobs.Step(images[k], images[k + 1]) for k in range(n)]


def _both_lanes_begun(n: int) -> None:
    """Wait until both lanes of the first segment, whose steps end at N - 1, took a step:
    each lane calls this after its own first claim, so that both take part however the
    processes are scheduled (a lane may otherwise take every step alone)."""
    from vmxlint import jobs

    ends = jobs._PENDING.ends.ends
    for _ in range(HANG_GUARD * 100):
        if ends[0] > 0 and ends[1] < n - 1:
            break
        time.sleep(0.01)


def _no_child_left() -> bool:
    try:
        os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


@pytest.mark.parametrize("how", ["raises", "dies", "raises here"])
def test_a_failing_lane_fails_the_series_and_leaves_no_process(monkeypatch, capfd, how):
    """What a forked lane's process raises is raised by the series, once every process
    ended; a process that dies without its results (killed, out of memory) is an error,
    never a series with patches missing; what a lane printed is kept.  When this
    process's own lane fails, the forked lanes are stopped, not waited for to the end."""
    import mmap
    import sys

    from vmxlint import jobs

    steps = _lane_steps()
    finished = memoryview(mmap.mmap(-1, 8)).cast("q")

    def front(step, previous, incremental):
        print("lane warning", file=sys.stderr)
        if how == "dies":
            sys.stderr.flush()
            os._exit(9)
        if how == "raises":
            raise ValueError("lane failed")
        time.sleep(HANG_GUARD)          # stopped by this process, else the test hangs
        finished[0] = 1
        return (step.after.read(NESTED_C), None), None

    def back(step, previous, incremental):
        _both_lanes_begun(len(steps))
        if how == "raises here":
            raise ValueError("lane failed")
        return (step.after.read(NESTED_C), None), None

    monkeypatch.setattr(jobs, "_step", front)
    monkeypatch.setattr(jobs, "_backward", back)
    want = jobs.WorkerDied if how == "dies" else ValueError
    with pytest.raises(want, match="lane 0 ended without its results .exit status 9."
                       if how == "dies" else "lane failed"):
        jobs.analyse_steps(steps, True, jobs=2)
    assert "lane warning" in capfd.readouterr().err
    assert jobs._PENDING is None and _no_child_left() and finished[0] == 0


def test_the_front_lane_starts_before_the_series_is_applied(monkeypatch):
    """With -j, the first front lane is forked once the series has two steps: it takes
    the first while this process is still making the others (applying the patches), and
    makes the ones it takes next itself; every step's pair comes back once, in order."""
    import mmap

    from vmxlint import jobs

    steps = _lane_steps(6)
    flags = memoryview(mmap.mmap(-1, 16)).cast("q")     # [all made here, step 0 done]
    here = os.getpid()

    def made():
        yield from steps[:2]
        for _ in range(HANG_GUARD * 100):       # this process: until lane 0 did step 0
            if os.getpid() != here or flags[1]:
                break
            time.sleep(0.01)
        yield from steps[2:]
        if os.getpid() == here:
            flags[0] = 1

    def spy(step, previous, incremental):
        seen = (step.after.read(NESTED_C), os.getpid(), flags[0])
        if os.getpid() != here:
            flags[1] = 1
        return seen, None

    monkeypatch.setattr(jobs, "_step", spy)
    monkeypatch.setattr(jobs, "_backward", spy)
    pairs = jobs.analyse_steps(made(), True, jobs=2)
    assert [p[0][0] for p in pairs] == [s.after.read(NESTED_C) for s in steps]
    assert pairs[0][0][1] != here and pairs[0][0][2] == 0 and _no_child_left()


def test_a_series_that_fails_to_apply_stops_its_lanes(monkeypatch):
    """What applying the series raises once the front lane is forked is raised, and the
    lane's process is stopped, not waited for to the end."""
    import mmap

    from vmxlint import jobs

    steps = _lane_steps(4)
    here = os.getpid()
    finished = memoryview(mmap.mmap(-1, 8)).cast("q")

    def made():
        yield from steps[:2]
        if os.getpid() == here:
            raise ValueError("cannot apply")
        yield from steps[2:]

    def spy(step, previous, incremental):
        time.sleep(HANG_GUARD)          # stopped by this process, else the test hangs
        finished[0] = 1
        return None, None

    monkeypatch.setattr(jobs, "_step", spy)
    with pytest.raises(ValueError, match="cannot apply"):
        jobs.analyse_steps(made(), True, jobs=2)
    assert jobs._PENDING is None and _no_child_left() and finished[0] == 0


def test_made_steps_are_made_once_as_asked():
    from vmxlint import jobs

    pulled = []

    def source():
        for k in range(3):
            pulled.append(k)
            yield k

    made = jobs.Made(source())
    assert made.get(1) == 1 and pulled == [0, 1]
    assert made.get(5) is None and pulled == [0, 1, 2]
    assert made.get(0) == 0 and made.all() == [0, 1, 2] and pulled == [0, 1, 2]


def test_lanes_give_their_pairs_back_in_order(monkeypatch):
    """Three lanes (two segments): every step's pair once, in the series' order, and no
    process left behind."""
    from vmxlint import jobs

    steps = _lane_steps(9)

    def spy(step, previous, incremental):
        _both_lanes_begun(6)            # the first segment: steps 0-5
        return (step.after.read(NESTED_C), os.getpid()), None

    monkeypatch.setattr(jobs, "_step", spy)
    monkeypatch.setattr(jobs, "_backward", spy)
    pairs = jobs.analyse_steps(steps, True, jobs=3)
    assert [p[0][0] for p in pairs] == [s.after.read(NESTED_C) for s in steps]
    assert len({p[0][1] for p in pairs}) >= 2 and _no_child_left()


def test_only_the_first_patch_writes_its_trees(monkeypatch):
    """The trees parsed for a series' first patch go to the disk cache (a check of one
    patch: the tree's functions and the one it edits); those of the later patches, and
    of every lane, stay in the process (the functions the series edits)."""
    from vmxlint import jobs
    from vmxlint.cfront import astcache

    tree = Tree.open(FIXTURES / "trees" / "shape-modern")
    images = [tree] + [tree.with_overlay({NESTED_C: f"/* {k} */\n"}) for k in range(1, 5)]
    steps = [jobs.Step(images[k], images[k + 1]) for k in range(4)]

    def spy(step, previous, incremental):
        return (step.after.read(NESTED_C), astcache._local.__dict__.get("only", False)), None

    monkeypatch.setattr(jobs, "_step", spy)
    monkeypatch.setattr(jobs, "_backward", spy)
    assert [p[0][1] for p in jobs.analyse_steps(steps, True)] == [False, True, True, True]
    assert [p[0][1] for p in jobs.analyse_steps(steps, True, jobs=2)] == [True] * 4
    assert not astcache._local.__dict__.get("only", False)


def test_a_series_leaves_nothing_only_the_collector_frees(tmp_path, monkeypatch):
    """What a step leaves is frozen when it ends (``jobs._settle``): garbage in cycles
    would then be kept to the end.  A series makes none: its walk, splices, guards'
    conditions, trees encoded for the disk cache and decoded."""
    import gc

    from vmxlint.cfront import astcache, parse_unit

    astcache.flush()
    monkeypatch.delenv("VMXLINT_NO_CACHE")
    monkeypatch.setenv("VMXLINT_CACHE_DIR", str(tmp_path / "cache"))
    astcache.clear()
    tree = Tree.open(FIXTURES / "trees" / "shape-modern")
    for value in (100, 200):    # what a process makes once: imports, the cache's decoders
        check(read_mails(_step_series(tree, 5, value), "warm"), tree)
        astcache.flush()
        astcache.clear()
    mails = read_mails(_step_series(tree, 5), "series")
    before = astcache.Stats(**structs.asdict(astcache.stats))
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        check(mails, tree, include_existing=True)
        astcache.flush()
        node = parse_unit(tree.read(NESTED_C), NESTED_C).functions["prepare_vmcs02"].node
        astcache.decode(astcache.encode(node, NESTED_C, 1), NESTED_C, 1)
        gc.collect()
        left = [type(o).__name__ for o in gc.garbage]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    after = astcache.stats
    assert after.spliced > before.spliced and after.parsed > after.spliced
    assert left == []


def test_steps_are_frozen_and_thawed_at_the_end(monkeypatch):
    """Each step's survivors are frozen as it ends, everything thawed when the series is
    done, also when a step fails."""
    import gc

    from vmxlint import jobs

    tree = Tree.open(FIXTURES / "trees" / "shape-modern")
    steps = [jobs.Step(tree, tree.with_overlay({NESTED_C: f"/* {k} */\n"})) for k in range(3)]
    frozen: list[int] = []

    def spy(step, previous, incremental):
        frozen.append(gc.get_freeze_count())
        if len(frozen) == 5:
            raise RuntimeError("a step that fails")
        return None, None

    monkeypatch.setattr(jobs, "_step", spy)
    jobs.analyse_steps(steps, True)
    assert frozen[0] < frozen[1] <= frozen[2] and gc.get_freeze_count() == 0
    with pytest.raises(RuntimeError):
        jobs.analyse_steps(steps, True)
    assert gc.get_freeze_count() == 0


def test_trees_parsed_in_process_only_are_not_written(tmp_path, monkeypatch):
    from vmxlint import cache
    from vmxlint.cfront import astcache, parse_unit

    astcache.flush()                    # what earlier tests left pending goes first
    monkeypatch.delenv("VMXLINT_NO_CACHE")
    monkeypatch.setenv("VMXLINT_CACHE_DIR", str(tmp_path / "cache"))
    astcache.clear()
    text = Tree.open(FIXTURES / "trees" / "shape-modern").read(NESTED_C)

    def written() -> int:
        astcache.flush()
        return sum(astcache.FORMAT.encode() in p.read_bytes()
                   for p in cache.cache_dir().glob("*.json"))

    with astcache.in_process_only():
        kept = parse_unit(text, NESTED_C, lazy=True).functions["prepare_vmcs02"]
    assert written() == 0 and astcache.stats.parsed == 1
    again = parse_unit(text, NESTED_C, lazy=True).functions["prepare_vmcs02"]
    assert again.node is kept.node and astcache.stats.parsed == 1
    parse_unit(text, NESTED_C, lazy=True).functions["prepare_vmcs02_rare"]
    assert written() == 1


def test_jobs_option(tmp_path):
    import subprocess
    import sys

    patch = tmp_path / "s.mbox"
    patch.write_bytes(_step_series(Tree.open(FIXTURES / "trees" / "shape-modern"), 2))
    run = [sys.executable, "-m", "vmxlint", "check", "--tree",
           str(FIXTURES / "trees" / "shape-modern"), str(patch)]
    env = {"PYTHONPATH": str(ROOT), "VMXLINT_NO_CACHE": "1", "PATH": "/usr/bin:/bin"}
    outs = [subprocess.run(run + j, capture_output=True, text=True, env=env, timeout=600)
            for j in ([], ["-j", "2"], ["-j", "auto"])]
    assert outs[0].stdout and all(o.stdout == outs[0].stdout for o in outs)
    assert all(o.returncode == outs[0].returncode for o in outs)
    bad = subprocess.run(run + ["-j", "0"], capture_output=True, text=True, env=env,
                         timeout=600)
    assert bad.returncode == 2 and "positive number or 'auto'" in bad.stderr


def _naive_skeleton(text: str, spans, reached) -> str:
    """The definition: every line but those of unreached functions, whose preprocessor
    lines stay; comments and whitespace do not count."""
    from vmxlint.incremental import _COMMENT
    from vmxlint.logic import digest as _h

    lines = text.split("\n")
    drop = set()
    for name, (a, b) in spans.items():
        if name not in reached:
            drop.update(range(a - 1, b))
    kept = "\n".join(line for k, line in enumerate(lines)
                     if k not in drop or line.lstrip().startswith("#"))
    return _h(" ".join(spans), " ".join(_COMMENT.sub(" ", kept).split()))


_PIECES = st.sampled_from(["a", " ", "\t", "#", "\n", "\x0b", "\x0c", "\r", "\xa0", "\u2028",
                           "/*", "*/", "//", "x\n", "\x1c", "\x85"])


@settings(max_examples=300)
@given(st.lists(_PIECES, max_size=60), st.lists(st.tuples(st.integers(1, 30),
                                                          st.integers(0, 5)), max_size=4),
       st.sets(st.integers(0, 3)))
def test_skeleton_is_the_line_filter(parts, cuts, reached):
    from vmxlint.incremental import skeleton

    text = "".join(parts)
    n = text.count("\n") + 1
    spans = {f"f{k}": (min(a, n), min(a + w, n)) for k, (a, w) in enumerate(cuts)}
    names = {f"f{k}" for k in reached}
    assert skeleton(text, spans, names) == _naive_skeleton(text, spans, names)


@pytest.mark.parametrize("feed", ["\x0c", "\r", "\x1c", "\u2028"])
def test_line_ends_other_than_newline_do_not_move_what_is_read(feed):
    """Spans count lines ended by "\\n" only: characters str.splitlines() also ends a line
    at (a form feed, which kernel files hold) must not shift the function bodies read for
    their calls, so the functions the analysis reads stay the same."""
    tree = Tree.open(FIXTURES / "trees" / "shape-modern")
    text = tree.read(NESTED_C)
    fed = tree.with_overlay({NESTED_C: text.replace("\n", "\n" + (feed + "\n") * 4, 1)})
    before, after = analyse(tree), analyse(fed)
    assert after.reached == before.reached
    unit, path = analysis.entry_path(fed)
    assert "load_vmcs12_host_state" in analysis._called_names(fed.read(NESTED_C), unit,
                                                              path.functions)


def test_the_quick_test_before_the_skeletons():
    """edits_read_code answers True only for an edit of C tokens outside the bodies of
    functions the analysis did not read; everything else is left to the skeletons."""
    from vmxlint.incremental import edits_read_code

    old = "int x;\n\nvoid f(void)\n{\n\ta();\n}\n\nvoid g(void)\n{\n\tb();\n}\n"
    spans = {"f": (3, 6), "g": (8, 11)}

    def read(new: str, reached=("f",)) -> bool:
        return edits_read_code(old, new, spans, reached)

    assert read(old.replace("\ta();", "\ta(); /* why */")) is False
    assert read(old.replace("\ta();", "\ta();\n\n// more\n")) is False
    assert read(old.replace("\ta();", "\ta(1);")) is True
    assert read(old.replace("\ta();", "\ta();\n\tc();")) is True
    assert read(old.replace("\tb();", "\tb(1);")) is False          # g is not read
    assert read(old.replace("\tb();", "\tb(1);"), reached=("f", "g")) is True
    assert read(old.replace("int x;", "long x;")) is True             # outside every body
    assert read(old.replace("\n\nvoid g", "\nint y;\n\nvoid g")) is True
    assert read(old.replace("{\n\tb();", "{\n\tb();\n\tb();")) is False


@pytest.mark.parametrize("where", ["fixture", "kernel"])
def test_a_fields_digest_reads_what_its_slice_must_provide(where: str, request):
    """The field digest takes whether the image must provide the field's value from the
    field's place in the analysis (written, or named by ``also``) instead of cutting the
    field's own context: the two agree for every field, with and without ``also``."""
    from vmxlint.incremental import slices

    tree = Tree.open(FIXTURES / "trees" / "shape-modern") if where == "fixture" \
        else Tree.open(request.getfixturevalue("kernel_612"))
    prep = analysis._prepare(tree, None)
    written = set(prep.out.written)
    some = sorted(prep.ctx.model.fields)[::7] + ["NOT_A_FIELD"]
    for also in ((), some):
        ctx = prep.ctx.with_also(also)
        cut = slices(ctx)
        for name in cut.own:
            consumed = name in ctx.also or name in written
            sub = ctx.restrict(name, cut.of(name))
            assert (name in sub.consumed_fields()) == (consumed and name in ctx.model.fields)
