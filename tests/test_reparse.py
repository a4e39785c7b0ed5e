"""A function spliced from its last version's tree is the tree a parse of the whole
function gives (classes, every slot, every position), or the same error; edits that
could make the two differ are parsed whole."""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from test_astcache import dump
from vmxlint import cache
from vmxlint.cfront import astcache, parse_unit, reparse
from vmxlint.cfront import parse as cparse
from vmxlint.cfront.lazy import parse_lazy

ROOT = Path(__file__).resolve().parent.parent
NESTED = "arch/x86/kvm/vmx/nested.c"
EDITED = (ROOT / "fixtures" / "cfront" / "edited.c").read_text()

# Lines a patch might add, and a few that no patch should (labels before a brace, a
# dangling else, a local that a type name would be): each a way the splice could differ.
SNIPPETS = ["\tvmcs_write32(GUEST_ES_LIMIT, 0);", "\tif (a)", "\t} else {", "\telse",
            "\t{", "\t}", "\tout:", "\tcase 3:", "\tdefault:", "\treturn 0;", "\t;",
            "\tdo { a(); } while (0);", "\tx = ({ int q = 1; q; });", "\tgoto out;",
            "\tint u8 = 1;", "\tu32 v, w = 2;", "\tfoo_t y;", "\tfoo(); bar();",
            "\tif (a) { b(); } else c();", "\tswitch (a) { case 1: b(); break; }",
            "\tvmcs_write64(GUEST_PDPTR0, vmcs12->guest_pdptr0 | 1);", "\t(void)x;"]


@pytest.fixture(autouse=True)
def fresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VMXLINT_CACHE_DIR", str(tmp_path / "cache"))
    astcache.flush()
    astcache.clear()


def parses(text: str, name: str) -> tuple[Any, Any, bool]:
    """(the splice's result, the whole parse's, whether it was spliced): a dump of the
    nodes, or the error's type and message."""
    state = parse_lazy(text, NESTED, None)._lazy
    # The piece its name guess points to: an edit may leave a brace in its head, and a
    # piece whose name is not certain is parsed (and may fail) before anything asks.
    index = (state.candidates.get(name) or state.named[name])[0]
    piece, types = state.pieces[index], state.types_at[index]
    try:
        nodes, spliced = reparse.parse(piece, types, NESTED)
        got: Any = dump(nodes)
    except Exception as exc:  # noqa: BLE001 - compared with the whole parse's
        got, spliced = (type(exc).__name__, str(exc)), False
    parser = cparse._parser()
    parser.kernel_types = set(types)
    try:
        want: Any = dump(cparse.parse_piece(parser, piece, NESTED))
    except Exception as exc:  # noqa: BLE001
        want = (type(exc).__name__, str(exc))
    return got, want, spliced


def edit_lines(text: str, name: str, line: int, change: str, snippet: str) -> str:
    """TEXT with one line of function NAME changed: LINE counts from its head (0), and a
    line inserted goes before it."""
    first, last = parse_unit(text, NESTED, lazy=True).spans()[name]
    lines = text.split("\n")
    at = first - 1 + line % (last - first + 1)
    if change == "delete":
        del lines[at]
    elif change == "duplicate":
        lines.insert(at, lines[at])
    elif change == "insert":
        lines.insert(at, snippet)
    elif change == "replace":
        lines[at] = snippet
    elif change == "swap" and at + 1 < len(lines):
        lines[at], lines[at + 1] = lines[at + 1], lines[at]
    elif change == "append":
        lines[at] += " " + snippet.strip()
    elif change == "move":
        lines[:0] = ["", ""]
    return "\n".join(lines)


EDIT = st.tuples(st.sampled_from(["prepare_guest_state", "nested_enter"]),
                 st.integers(0, 60),
                 st.sampled_from(["delete", "duplicate", "insert", "replace", "swap",
                                  "append", "move"]),
                 st.sampled_from(SNIPPETS))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(EDIT, min_size=1, max_size=5))
def test_an_edited_function_spliced_is_the_whole_parse(edits) -> None:
    """Edit after edit, each version parsed from the last one's tree (when it parsed)."""
    reparse.clear()
    text = EDITED
    for name in ("prepare_guest_state", "nested_enter"):
        parses(text, name)
    for name, line, change, snippet in edits:
        if name not in parse_unit(text, NESTED, lazy=True).spans():
            return      # an edit merged or broke the function's chunk: nothing to compare
        text = edit_lines(text, name, line, change, snippet)
        if name not in parse_unit(text, NESTED, lazy=True).spans():
            return
        got, want, _ = parses(text, name)
        assert got == want


@pytest.mark.parametrize("line, snippet", [
    (8, "\t\tvmcs_write16(GUEST_DS_SELECTOR, vmcs12->guest_ds_selector);"),  # in a block
    (4, "\tu64 extra = 0;"),                                                  # a declaration
    (32, "\t\t\tbreak;"),                # in a case: the switch is parsed again, not its body
    (45, "\t\tvmcs_write64(VMCS_LINK_POINTER, 0);"),                        # in a do-while
    (50, "\tretry:"),                      # a label, with the statement after it
])
def test_edits_of_statements_are_spliced(line: int, snippet: str) -> None:
    parses(EDITED, "prepare_guest_state")
    text = edit_lines(EDITED, "prepare_guest_state", line, "insert", snippet)
    got, want, spliced = parses(text, "prepare_guest_state")
    assert spliced and got == want
    # and from the spliced tree, with the function moved down two lines
    text = edit_lines(text, "prepare_guest_state", line, "duplicate", "")
    text = edit_lines(text, "prepare_guest_state", 0, "move", "")
    got, want, spliced = parses(text, "prepare_guest_state")
    assert spliced and got == want


@pytest.mark.parametrize("edits", [
    [(0, "replace", "static void prepare_guest_state(struct kvm_vcpu *vcpu, int x)")],  # head
    [(51, "insert", "\tdone:")],            # a label before the function's closing brace
    [(51, "insert", "\tdone:"), (52, "insert", "\tfoo();")],   # a statement after it
    [(11, "insert", "\t\telse")],          # an else for the statement before
    [(4, "insert", "\tint foo_t = 0;")],    # a local the parser would take for a type
])
def test_edits_that_could_parse_otherwise_are_parsed_whole(edits) -> None:
    text = EDITED
    parses(text, "prepare_guest_state")
    for line, change, snippet in edits:
        text = edit_lines(text, "prepare_guest_state", line, change, snippet)
        got, want, spliced = parses(text, "prepare_guest_state")
        assert not spliced and got == want


def test_a_spliced_tree_is_kept_in_process_not_on_disk(tmp_path: Path) -> None:
    """A tree parsed whole is written to the AST cache; one spliced is not (the next
    edit changes it), but the process has it for the next image."""
    def count() -> int:
        astcache.flush()
        d = cache.cache_dir()
        return 0 if d is None else sum(astcache.FORMAT.encode() in p.read_bytes()
                                       for p in d.glob("*.json"))

    parse_unit(EDITED, NESTED, lazy=True).functions["prepare_guest_state"]
    assert astcache.stats.parsed == 1 and astcache.stats.spliced == 0 and count() == 1
    text = edit_lines(EDITED, "prepare_guest_state", 8, "insert", SNIPPETS[0])
    fn = parse_unit(text, NESTED, lazy=True).functions["prepare_guest_state"]
    assert astcache.stats.parsed == 2 and astcache.stats.spliced == 1 and count() == 1
    assert dump(fn.node) == dump(parse_unit(text, NESTED).functions["prepare_guest_state"].node)
    again = parse_unit(text, NESTED, lazy=True).functions["prepare_guest_state"]
    assert again.node is fn.node and astcache.stats.parsed == 2


@pytest.mark.kernel
def test_edits_of_the_debian_nested_c_splice_as_whole_parses(kernel_tree: Path) -> None:
    """Line edits of the real nested.c's functions, each function edited several times
    in turn (the next version spliced from the last): always the whole parse's result,
    and most edits that parse are spliced."""
    text = (kernel_tree / NESTED).read_text()
    names = ["prepare_vmcs02_rare", "prepare_vmcs02", "prepare_vmcs02_early",
             "nested_vmx_enter_non_root_mode", "nested_vmx_vmexit", "load_vmcs12_host_state",
             "nested_get_vmcs12_pages", "sync_vmcs02_to_vmcs12"]
    rnd = random.Random(7)
    changes = ["delete", "duplicate", "insert", "replace", "swap", "append"]
    spliced = fine = 0
    for name in names:
        parses(text, name)
        for _ in range(6):
            edited = edit_lines(text, name, rnd.randrange(1, 200), rnd.choice(changes),
                                rnd.choice(SNIPPETS[:1] + SNIPPETS[9:]))
            if name not in parse_unit(edited, NESTED, lazy=True).spans():
                continue
            text = edited
            got, want, done = parses(text, name)
            assert got == want, name
            fine += isinstance(want, list)
            spliced += done
    assert fine and spliced >= fine // 2


def test_a_parser_that_recording_breaks_parses_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """Recording wraps private methods of pycparser (3.12 changed one's arguments): when a
    recorded parse fails and the plain one does not, the plain one's result is taken and
    nothing is recorded again."""
    parser = cparse._parser()
    plain = type(parser)._parse_block_item

    def changed(*args: Any, **kwargs: Any) -> Any:
        if parser.record is not None:
            raise TypeError("_parse_block_item() got an unexpected keyword argument")
        return plain(parser, *args, **kwargs)

    monkeypatch.setattr(parser, "_parse_block_item", changed)
    monkeypatch.setattr(parser, "can_record", True)
    got, want, spliced = parses(EDITED, "prepare_guest_state")
    assert got == want and not spliced and parser.can_record is False
    text = edit_lines(EDITED, "prepare_guest_state", 8, "insert", SNIPPETS[0])
    got, want, spliced = parses(text, "prepare_guest_state")
    assert got == want and not spliced
