"""The walk's summaries (``vmxlint.cfront.walk``): a call replayed from an earlier image of
the process, or from the summaries an earlier process left on disk (``vmxlint.walkstore``),
gives exactly what walking it again gives."""
from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from test_incremental import _edit_body
from vmxlint import cache, sites
from vmxlint.cfront import parse_unit, walk
from vmxlint.facts import controls
from vmxlint.logic import render
from vmxlint.model import load_model
from vmxlint.sites import find_root, walk_entry_path
from vmxlint.tree import NESTED_C, Tree

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
SHAPES = [FIXTURES / "trees" / "shape-modern", FIXTURES / "trees" / "shape-4.20"]

# Edits that change what the walk sees: a new write, an early return (every guard after it
# changes), a condition, and lines above everything (every function moves).
EDITS = [
    ("prepare_vmcs02", "\tvmcs_write32(GUEST_SYSENTER_CS, {k});\n"),
    ("prepare_vmcs02_rare", "\tif (vmx->bench_{k})\n\t\treturn;\n"),
    ("ROOT", "\tif (vmcs12->bench_{k})\n\t\treturn 1;\n"),
    ("prepare_vmcs02_early", "\tif (vmx->bench_{k})\n\t\tvmcs_write16(GUEST_CS_SELECTOR, {k});\n"),
    (None, "/* bench {k}: moves every line */\n"),
]


def _edited(text: str, root: str, edit: int, k: int) -> str:
    name, line = EDITS[edit]
    line = line.format(k=k)
    if name is None:
        return line + text
    name = root if name == "ROOT" else name
    try:
        return _edit_body(text, name, line)
    except AssertionError:          # an old shape without this function
        return f"/* no {name} */\n" + text


def _walk(text: str, tree: Tree, summaries: bool):
    model = load_model()
    unit = parse_unit(text, NESTED_C, lazy=True)
    root = find_root(unit.functions, model)
    return walk_entry_path(unit.functions, model, root, controls.load(tree), summaries)


def _dump(path) -> tuple:
    """Everything a walk gives, atom spellings and formula structure included."""
    sites_ = [(msgspec.structs.asdict(s), render(s.guard), render(s.local), render(s.shown))
              for s in path.sites]
    return (sites_, path.success, render(path.success), sorted(path.functions),
            sorted(path.labels.items()), sorted(path.inverted))


@pytest.fixture
def walked(monkeypatch) -> list[str]:
    """The calls walked (not replayed), in order; the summaries start empty."""
    calls: list[str] = []
    real = walk.GuardedWalk._summarise

    def counting(self, name, *args):
        calls.append(name)
        return real(self, name, *args)

    monkeypatch.setattr(walk.GuardedWalk, "_summarise", counting)
    sites._summaries.clear()
    yield calls
    sites._summaries.clear()


def _agree(tree: Tree, edits: list[int], walked: list[str]) -> int:
    """Walk each image of a cumulative series with and without summaries; the same.
    Returns how many calls the summarised walks of the later images walked."""
    text = tree.read(NESTED_C)
    root = find_root(parse_unit(text, NESTED_C, lazy=True).functions, load_model())
    images = [text]
    for k, edit in enumerate(edits, 1):
        images.append(_edited(images[-1], root, edit, k))
    first = 0
    for n, image in enumerate(images):
        fast = _walk(image, tree, True)
        if n == 0:
            first = len(walked)
        assert _dump(fast) == _dump(_walk(image, tree, False)), f"image {n}"
    return len(walked) - first


@pytest.mark.parametrize("tree_dir", SHAPES, ids=lambda p: p.name)
def test_fixture_series_replays_exactly(tree_dir: Path, walked: list[str]):
    tree = Tree.open(tree_dir)
    after_first = _agree(tree, [0, 1, 2, 3, 4, 0, 4, 1], walked)
    calls = len(walked) - after_first
    assert calls, "the first image walked no call"
    assert after_first < 8 * calls, "the later images replayed nothing"


@settings(max_examples=25)
@given(st.lists(st.integers(0, len(EDITS) - 1), min_size=1, max_size=5))
def test_any_series_of_edits_replays_exactly(edits: list[int]):
    sites._summaries.clear()
    _agree(Tree.open(SHAPES[0]), edits, [])


@pytest.mark.kernel
def test_real_tree_series_replays_exactly(kernel_tree: Path, walked: list[str]):
    tree = Tree.open(kernel_tree)
    edits = [0, 1, 2, 3, 4, 0]
    after_first = _agree(tree, edits, walked)
    first = len(walked) - after_first
    # Each edit walks again its function and the calls above it, not the whole path.
    assert after_first < first * len(edits) / 2, (first, after_first)


def test_summaries_off_walks_everything(walked: list[str]):
    tree = Tree.open(SHAPES[0])
    text = tree.read(NESTED_C)
    _walk(text, tree, False)
    assert walked == []
    _walk(text, tree, True)
    assert walked
    n = len(walked)
    _walk(text, tree, True)         # the same image again: every call replayed
    assert len(walked) == n


# -- fingerprints: what decides a look-up, without parsing --------------------------------

def test_fingerprint_follows_text_not_place():
    text = (FIXTURES / "trees" / "shape-modern" / NESTED_C).read_text()
    unit = parse_unit(text, NESTED_C, lazy=True).functions
    moved = parse_unit("/* x */\n\n" + text, NESTED_C, lazy=True).functions
    edited = parse_unit(_edit_body(text, "prepare_vmcs02", "\tbarrier();\n"), NESTED_C,
                        lazy=True).functions
    digest, (first, last) = unit.fingerprint("prepare_vmcs02"), unit.span("prepare_vmcs02")
    assert moved.fingerprint("prepare_vmcs02") == digest
    assert moved.span("prepare_vmcs02") == (first + 2, last + 2)
    assert edited.fingerprint("prepare_vmcs02") != digest
    assert edited.fingerprint("prepare_vmcs02_rare") == unit.fingerprint("prepare_vmcs02_rare")
    assert unit.fingerprint("no_such_function") == ""
    assert unit.span("no_such_function") is None
    fn = unit["prepare_vmcs02"]
    assert (first, last) == (fn.start_line, fn.end_line)


def test_a_function_that_parsed_before_is_known_without_a_parse(monkeypatch):
    from vmxlint.cfront import lazy

    text = (FIXTURES / "trees" / "shape-modern" / NESTED_C).read_text()
    assert "prepare_vmcs02" in parse_unit(text, NESTED_C, lazy=True).functions
    again = parse_unit("/* y */\n" + text, NESTED_C, lazy=True).functions

    def no_parse(*args):
        raise AssertionError("parsed")

    monkeypatch.setattr(lazy._Lazy, "result", no_parse)
    assert "prepare_vmcs02" in again
    assert again.span("prepare_vmcs02")[0] > 1


SWITCHING = (
    "static void load_l2(struct kvm_vcpu *vcpu, struct vcpu_vmx *vmx)\n"
    "{\n"
    "\tvmx_switch_vmcs(vcpu, &vmx->nested.vmcs02);\n"
    "}\n"
    "\n"
    "static int nested_vmx_enter_non_root_mode(struct kvm_vcpu *vcpu, bool from_vmentry)\n"
    "{\n"
    "\tvmx_switch_vmcs(vcpu, &vmx->vmcs01);\n"
    "\tvmcs_write32(GUEST_ES_LIMIT, 1);\n"
    "\tload_l2(vcpu, vmx);\n"
    "\tvmcs_write32(GUEST_CS_LIMIT, 2);\n"
    "\treturn 0;\n"
    "}\n"
)


def test_a_replayed_call_leaves_the_state_it_left(walked: list[str]):
    """The VMCS a summarised call switches to is current after its replay."""
    model = load_model()
    for text in (SWITCHING, "/* moved */\n" + SWITCHING):
        unit = parse_unit(text, NESTED_C, lazy=True)
        path = walk_entry_path(unit.functions, model, "nested_vmx_enter_non_root_mode")
        where = {s.field: (s.vmcs, s.line) for s in path.writes("vmcs01") + path.writes()}
        top = text.count("\n", 0, text.index("GUEST_ES_LIMIT")) + 1
        assert where == {"GUEST_ES_LIMIT": ("vmcs01", top), "GUEST_CS_LIMIT": ("vmcs02", top + 2)}
    assert walked == ["load_l2"]        # walked for the first text, replayed for the second


def test_threads_each_get_their_own_answers():
    """Images analysed in two threads at once give what one thread gives: a thread has
    its own walk summaries, solver and prepared images."""
    from concurrent.futures import ThreadPoolExecutor

    from test_incremental import _step_series
    from vmxlint.mail import read_mails
    from vmxlint.series import check

    trees = [Tree.open(p) for p in SHAPES]
    mails = [read_mails(_step_series(t, 4), f"series-{k}") for k, t in enumerate(trees)]

    def run(k: int) -> list:
        return check(mails[k], trees[k], include_existing=True).findings

    alone = [run(0), run(1)]
    with ThreadPoolExecutor(2) as pool:
        together = list(pool.map(run, [0, 1, 0, 1]))
    assert together == alone + alone
    assert alone[0] and alone[1]


# -- summaries on disk (vmxlint.walkstore) ---------------------------------------------------

@pytest.fixture
def disk(tmp_path, monkeypatch, walked) -> str:
    """A cache of its own and the key of one walk scope in it."""
    from vmxlint import cache

    monkeypatch.setenv("VMXLINT_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("VMXLINT_NO_CACHE", raising=False)
    return cache.key("test walk scope")


def _walk_stored(text: str, tree: Tree, store: str | None):
    model = load_model()
    unit = parse_unit(text, NESTED_C, lazy=True)
    return walk_entry_path(unit.functions, model, find_root(unit.functions, model),
                           controls.load(tree), True, store)


def _new_process() -> None:
    """What a new process has: no summaries in memory."""
    sites._summaries.clear()


@pytest.mark.parametrize("tree_dir", SHAPES, ids=lambda p: p.name)
def test_summaries_from_disk_replay_exactly(tree_dir: Path, disk: str, walked: list[str]):
    from vmxlint import cache

    tree = Tree.open(tree_dir)
    text = tree.read(NESTED_C)
    _walk_stored(text, tree, disk)
    first = len(walked)
    sites.save_summaries()
    assert isinstance(cache.get(disk, str), str)
    _new_process()
    root = find_root(parse_unit(text, NESTED_C, lazy=True).functions, load_model())
    images = [text]
    for k, edit in enumerate([0, 1, 2, 3, 4], 1):
        images.append(_edited(images[-1], root, edit, k))
    n = len(walked)
    assert _dump(_walk_stored(text, tree, disk)) == _dump(_walk(text, tree, False))
    assert len(walked) == n, "the same image walked a call again"
    for image in images[1:]:
        _new_process()                   # each image checked by a process of its own
        assert _dump(_walk_stored(image, tree, disk)) == _dump(_walk(image, tree, False))
    assert len(walked) - n < first * (len(images) - 1) / 2


def test_a_process_that_rewalks_little_leaves_the_entry(disk: str):
    from vmxlint import cache

    tree = Tree.open(SHAPES[0])
    text = tree.read(NESTED_C)
    _walk_stored(text, tree, disk)
    sites.save_summaries()
    written = cache.get(disk, str)
    _new_process()
    root = find_root(parse_unit(text, NESTED_C, lazy=True).functions, load_model())
    _walk_stored(_edited(text, root, 0, 1), tree, disk)     # prepare_vmcs02 and the root
    sites.save_summaries()
    assert cache.get(disk, str) == written
    _new_process()
    _walk_stored(text.replace("vmcs12", "vmcs_twelve"), tree, disk)   # every call
    sites.save_summaries()
    assert cache.get(disk, str) != written


def test_a_broken_entry_is_walked_again(disk: str, walked: list[str]):
    from vmxlint import cache

    tree = Tree.open(SHAPES[0])
    text = tree.read(NESTED_C)
    cache.put(disk, '{"format": "vmxlint-walk 2", "formulas": [["a", 3]]}')
    assert _dump(_walk_stored(text, tree, disk)) == _dump(_walk(text, tree, False))
    assert walked


def _entry() -> str:
    from vmxlint import walkstore
    from vmxlint.cfront import lazy

    tree = Tree.open(SHAPES[0])
    sites._summaries.clear()
    _walk_stored(tree.read(NESTED_C), tree, None)
    memo = next(iter(sites._summaries.values()))[1]
    return walkstore.encode(list(memo.items()), walk.TRACKED_PARAMS, lazy.PARSED_FINE)


_ENTRY: list[str] = []


@settings(max_examples=200)
@given(st.integers(0, 10 ** 9), st.sampled_from(['"', "0", "9", "[", "]", ",", "x", "-1", "null",
                                                 '"s"', '"&"', '"a"']))
def test_decoding_a_damaged_entry_fails_cleanly(at: int, put: str):
    from vmxlint import walkstore

    if not _ENTRY:
        _ENTRY.append(_entry())
    text = _ENTRY[0]
    k = at % len(text)
    damaged = text[:k] + put + text[k + 1:]
    try:
        walkstore.decode(damaged, load_model())
    except ValueError:
        pass


def test_encoding_round_trips():
    from vmxlint import walkstore
    from vmxlint.cfront import lazy

    text = _entry()
    summaries, params, fine = walkstore.decode(text, load_model())
    again = walkstore.encode(summaries, params, fine)
    assert again == text
    assert summaries and params and fine
    assert set(fine) <= lazy.PARSED_FINE


def test_a_new_process_checks_with_the_summaries_an_audit_left(tmp_path):
    """`vmxlint audit` leaves the summaries; a `vmxlint check` in another process uses
    them and reports what a check without any cache reports."""
    import os
    import subprocess
    import sys

    from test_incremental import _mail

    tree = SHAPES[0]
    text = (tree / NESTED_C).read_text()
    patch = tmp_path / "p.patch"
    patch.write_text(_mail(text, _edit_body(text, "prepare_vmcs02",
                                            "\tvmcs_write32(GUEST_SYSENTER_CS, 7);\n"), 1))
    cached = {**os.environ, "VMXLINT_CACHE_DIR": str(tmp_path / "cache")}
    cached.pop("VMXLINT_NO_CACHE", None)

    def vmxlint(*args: str, env: dict) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "vmxlint", *args], env=env,
                              capture_output=True, text=True, timeout=600)

    assert vmxlint("audit", "--tree", str(tree), env=cached).returncode in (0, 1)
    cache.wait_for_writers(tmp_path / "cache")     # written by a process of its own
    walks = [p for p in (tmp_path / "cache").iterdir() if b"vmxlint-walk 2" in p.read_bytes()]
    assert len(walks) == 1, "the audit left no summaries"
    left = walks[0].read_bytes()
    got = vmxlint("check", "--format", "json", "--tree", str(tree), str(patch), env=cached)
    bare = vmxlint("check", "--format", "json", "--tree", str(tree), str(patch),
                   env={**cached, "VMXLINT_NO_CACHE": "1"})
    assert got.stdout == bare.stdout and got.returncode == bare.returncode == 1
    assert '"new"' in got.stdout
    # The check re-walked two calls of the audit's summaries: it left their entry alone.
    assert walks[0].read_bytes() == left


def test_an_entry_with_a_formula_too_deep_is_refused():
    from vmxlint import walkstore

    rows = [["a", "c:x", None]] + [["n", k] for k in range(walkstore.MAX_DEPTH + 5)]
    doc = json.dumps({"format": walkstore.FORMAT, "formulas": rows, "summaries": [],
                      "params": {}, "fine": []})
    with pytest.raises(ValueError, match="depth"):
        walkstore.decode(doc, load_model())


@pytest.fixture
def recorded(monkeypatch) -> list[str]:
    """What each walk recorded (calls and the root's walk), in order; summaries start empty."""
    names: list[str] = []
    real = walk.GuardedWalk._record

    def counting(self, key, *args):
        names.append(key[0])
        return real(self, key, *args)

    monkeypatch.setattr(walk.GuardedWalk, "_record", counting)
    sites._summaries.clear()
    yield names
    sites._summaries.clear()


def test_an_edited_callee_is_walked_again_and_its_callers_replayed(recorded: list[str]):
    """A callee's summary is referred to by its callers' summaries: an edit that leaves
    when it returns and the VMCS it leaves as they were walks the callee alone."""
    tree = Tree.open(SHAPES[0])
    text = tree.read(NESTED_C)
    _walk(text, tree, True)
    assert "prepare_vmcs02_rare" in recorded and "entry:" + _ROOT in recorded
    recorded.clear()
    edited = _edit_body(text, "prepare_vmcs02_rare", "\tvmcs_write32(GUEST_ES_LIMIT, 7);\n")
    fast = _walk(edited, tree, True)
    assert recorded == ["prepare_vmcs02_rare"]
    assert _dump(fast) == _dump(_walk(edited, tree, False))


def test_a_callee_that_leaves_another_state_walks_its_callers_again(recorded: list[str]):
    """What a caller's walk took from a callee (the VMCS it left, when it returns true)
    changed: the caller is walked again, and the result is a plain walk's."""
    model = load_model()
    other = SWITCHING.replace("&vmx->nested.vmcs02", "&vmx->vmcs01")
    # The first walk records the root, and the call within it; the second walks the edited
    # callee again when it checks the root's summary, finds it left vmcs01, not vmcs02,
    # and walks the root again (which replays the callee just walked).
    for text, walks in ((SWITCHING, ["entry:" + _ROOT, "load_l2"]),
                        (other, ["load_l2", "entry:" + _ROOT])):
        recorded.clear()
        unit = parse_unit(text, NESTED_C, lazy=True)
        fast = walk_entry_path(unit.functions, model, _ROOT)
        plain = walk_entry_path(unit.functions, model, _ROOT, summaries=False)
        assert _dump(fast) == _dump(plain)
        assert recorded == walks
    assert {s.field: s.vmcs for s in fast.writes("vmcs01")} == {
        "GUEST_ES_LIMIT": "vmcs01", "GUEST_CS_LIMIT": "vmcs01"}


_ROOT = "nested_vmx_enter_non_root_mode"
