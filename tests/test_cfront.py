"""Tests of the C front end: preprocessing, chunking, parsing, positions, robustness."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pycparser import c_ast

from vmxlint.cfront import Failure, Function, Unit, parse_unit
from vmxlint.cfront import parse as cparse
from vmxlint.cfront import preprocess as pp
from vmxlint.cfront.parse import split_chunks
from vmxlint.cfront.preprocess import eval_condition, preprocess

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures" / "cfront"

REQUIRED = (
    "prepare_vmcs02_constant_state", "prepare_vmcs02_early_rare", "prepare_vmcs02_early",
    "prepare_vmcs02_rare", "prepare_vmcs02", "nested_vmx_enter_non_root_mode",
    "nested_vmx_load_cr3", "nested_get_vmcs12_pages", "vmx_switch_vmcs",
    "sync_vmcs02_to_vmcs12", "nested_vmx_vmexit",
)


def fixture(name: str) -> tuple[str, str]:
    """Return the text and repository-relative path of a front end fixture."""
    path = FIXTURES / name
    return path.read_text(), f"fixtures/cfront/{name}"


def line_of(text: str, snippet: str, start: int = 1) -> int:
    """Return the first line, at or after START, whose text contains SNIPPET."""
    for number, line in enumerate(text.split("\n"), 1):
        if number >= start and snippet in line:
            return number
    raise AssertionError(f"{snippet!r} not in text")


def find_calls(node: c_ast.Node, name: str) -> list[c_ast.FuncCall]:
    """Return the calls of NAME below NODE."""
    found: list[c_ast.FuncCall] = []

    class Visitor(c_ast.NodeVisitor):
        def visit_FuncCall(self, call: c_ast.FuncCall) -> None:
            if isinstance(call.name, c_ast.ID) and call.name.name == name:
                found.append(call)
            self.generic_visit(call)

    Visitor().visit(node)
    return found


def ids_off_their_line(node: c_ast.Node, lines: list[str]) -> list[tuple[str, int]]:
    """Return the identifiers below NODE whose name is not on their coord's line."""
    bad: list[tuple[str, int]] = []

    class Visitor(c_ast.NodeVisitor):
        def visit_ID(self, ident: c_ast.ID) -> None:
            if ident.name not in lines[ident.coord.line - 1]:
                bad.append((ident.name, ident.coord.line))

    Visitor().visit(node)
    return bad


@pytest.fixture(scope="module")
def constructs() -> tuple[str, str, Unit]:
    text, path = fixture("kernel_constructs.c")
    return text, path, parse_unit(text, path)


# --------------------------------------------------------------------------- API

def test_import_is_cheap_and_lazy() -> None:
    # Import cost is timed in benchmarks/; here only what is imported is checked.
    code = "import sys; import vmxlint.cfront; print('pycparser' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == ["False"]


def test_shim_is_plain_c() -> None:
    from importlib import resources

    from pycparser import c_parser

    from vmxlint.cfront.parse import shim_type_names

    text = resources.files("vmxlint.cfront").joinpath("shim.h").read_text()
    ast = c_parser.CParser().parse(preprocess(text), "shim.h")
    assert {node.name for node in ast.ext} == set(shim_type_names())
    assert {"u8", "u64", "s64", "bool", "gpa_t", "gva_t", "gfn_t", "hpa_t", "size_t",
            "ulong"} <= shim_type_names()


def test_textual_prelude_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    from vmxlint.cfront import parse as cparse

    parser = cparse._make_parser()
    parser.uses_scope_hook = False  # as if pycparser's private scope API had changed
    monkeypatch.setattr(cparse._local, "parser", parser, raising=False)
    text, path = fixture("kernel_constructs.c")
    unit = parse_unit(text, path)
    assert unit.failures == []
    assert len(unit.functions) == 24
    assert not any(getattr(d, "name", None) == "u64" for d in unit.declarations)


def test_unit_shape(constructs: tuple[str, str, Unit]) -> None:
    _, path, unit = constructs
    assert unit.path == path
    assert unit.failures == []
    fn = unit.functions["widget_width"]
    assert isinstance(fn, Function)
    assert isinstance(fn.node, c_ast.FuncDef)
    assert fn.path == path and fn.name == "widget_width"
    assert fn.node.coord.file == path


def test_function_extent(constructs: tuple[str, str, Unit]) -> None:
    text, _, unit = constructs
    fn = unit.functions["widget_asm"]
    assert fn.start_line == line_of(text, "static void widget_asm(")
    assert fn.end_line == line_of(text, "}", line_of(text, "MARK:after-asm"))


# --------------------------------------------------------------------------- preprocessing

@pytest.mark.parametrize("name", ["kernel_constructs.c", "ifdef.c", "bad_function.c"])
def test_preprocess_keeps_line_count(name: str) -> None:
    text, _ = fixture(name)
    assert preprocess(text).count("\n") == text.count("\n")


def test_preprocess_drops_directives_and_comments() -> None:
    text, _ = fixture("kernel_constructs.c")
    out = preprocess(text)
    assert "#" not in out.replace('"#', "")
    assert "/*" not in out and "SPDX" not in out
    assert "__read_mostly" not in out and "__attribute__" not in out
    assert "asm" not in out.replace("widget_asm", "")


def test_continuation_lines_keep_following_lines() -> None:
    text = "int a = 1 + \\\n  2;\nint b;\n"
    out = preprocess(text)
    assert out.split("\n")[0].replace(" ", "") == "inta=1+2;"
    assert out.split("\n")[2] == "int b;"


def test_comment_keeps_lines_and_columns() -> None:
    text = "int /* one\n two */ x; // tail\nint y;"
    out = preprocess(text)
    assert out.split("\n")[1].index("x") == text.split("\n")[1].index("x")
    assert out.split("\n")[2] == "int y;"


def test_comment_markers_in_strings_survive() -> None:
    out = preprocess('char *s = "/* not a comment */ // nor this";\n')
    assert '"/* not a comment */ // nor this"' in out


@pytest.mark.parametrize("expr, expected", [
    ("defined(CONFIG_X86_64)", True),
    ("defined CONFIG_X86_64", True),
    ("IS_ENABLED(CONFIG_KVM_HYPERV)", True),
    ("IS_ENABLED(CONFIG_WIDGET)", False),
    ("!defined(CONFIG_KVM_INTEL)", False),
    ("defined(CONFIG_X86_64) && !IS_ENABLED(CONFIG_WIDGET)", True),
    ("IS_ENABLED(CONFIG_WIDGET) || 1", True),
    ("0", False),
    ("(1)", True),
    ("WIDGET_VERSION > 3", None),
    ("UNKNOWN && 0", False),
    ("UNKNOWN || 1", True),
    ("!UNKNOWN", None),
    ("foo(1)", None),
    ("1 +", None),
])
def test_eval_condition(expr: str, expected: bool | None) -> None:
    from vmxlint.cfront.preprocess import DEFAULT_CONFIG
    assert eval_condition(expr, DEFAULT_CONFIG) is expected


# --------------------------------------------------------------------------- conditionals

def test_ifdef_default_config() -> None:
    text, path = fixture("ifdef.c")
    unit = parse_unit(text, path)
    assert unit.failures == []
    assert set(unit.functions) == {
        "branch_x86_64", "branch_hyperv", "branch_intel_nodebug", "branch_ifndef",
        "branch_unknown_first", "branch_inside", "branch_nested_live",
    }


def test_ifdef_custom_config() -> None:
    text, path = fixture("ifdef.c")
    unit = parse_unit(text, path, {"CONFIG_X86_64": False, "CONFIG_KVM_HYPERV": False,
                                   "CONFIG_WIDGET_DEBUG": True})
    assert unit.failures == []
    assert set(unit.functions) == {
        "branch_x86_32", "branch_no_hyperv", "branch_debug", "branch_unknown_first",
        "branch_inside",
    }


def test_ifdef_inside_function_keeps_lines() -> None:
    text, path = fixture("ifdef.c")
    fn = parse_unit(text, path).functions["branch_inside"]
    returns = [n for n in fn.node.body.block_items if isinstance(n, c_ast.Return)]
    assert returns[-1].coord.line == line_of(text, "MARK:inside-return")
    if_stmts = [n for n in fn.node.body.block_items if isinstance(n, c_ast.If)]
    assert len(if_stmts) == 1
    assert if_stmts[0].iftrue.expr.value == "64"


# --------------------------------------------------------------------------- kernel constructs

@pytest.mark.parametrize("name", [
    "widget_width",          # __always_inline
    "widget_init",           # noinline __init
    "widget_exit",           # __exit
    "widget_cold",           # __cold __maybe_unused
    "widget_check",          # __must_check
    "widget_noinstr",        # noinstr
    "widget_copy",           # __user __percpu
    "widget_attr",           # multi-line __attribute__((...))
    "widget_entry",          # asmlinkage __visible
    "widget_asm",            # asm volatile over several lines
    "widget_asm_goto",       # asm goto
    "widget_typeof",         # typeof, __typeof__
    "widget_builtin",        # __builtin_*
    "widget_of",             # container_of(p, struct T, m)
    "widget_min",            # min_t(u32, ...), max_t(unsigned long, ...)
    "widget_loop",           # list_for_each_entry(...) { }, for_each_set_bit(...) stmt
    "widget_case_range",     # case A ... B:, a ?: b
    "widget_printk",         # KERN_ERR "...", "..." PRIx64 "..."
    "widget_cast",           # (widget_desc *)p with an unknown typedef
    "widget_lock",           # __acquires(...) after the declarator
    "widget_after_helpers",  # follows macro invocations that have no ';'
    "widget_continued",      # backslash continuation in a declaration
    "widget_statement_expr",  # ({ ... })
    "widget_use_typedef",    # typedefs declared earlier in the file
])
def test_construct_parses(constructs: tuple[str, str, Unit], name: str) -> None:
    _, _, unit = constructs
    assert name in unit.functions, unit.failures


def test_top_level_macros_are_skipped(constructs: tuple[str, str, Unit]) -> None:
    _, _, unit = constructs
    assert unit.failures == []
    names = {getattr(d, "name", None) for d in unit.declarations}
    assert {"enable_widgets", "widget_limit", "widget_fn", "widget_pair", "widget_ops"} <= names
    assert "EXPORT_SYMBOL_GPL" not in names and "module_param_named" not in names


def test_marked_lines(constructs: tuple[str, str, Unit]) -> None:
    text, path, unit = constructs
    cases = {
        "widget_attr": ("widget_marker", "MARK:attr"),
        "widget_after_helpers": ("widget_read", "MARK:after-helpers"),
        "widget_loop": ("widget_marker", "MARK:loop-body"),
    }
    for fn_name, (call, mark) in cases.items():
        calls = find_calls(unit.functions[fn_name].node, call)
        assert [c.coord.line for c in calls] == [line_of(text, mark)], fn_name
        assert calls[0].coord.file == path


def test_all_identifiers_on_their_lines(constructs: tuple[str, str, Unit]) -> None:
    text, _, unit = constructs
    lines = text.split("\n")
    for fn in unit.functions.values():
        assert ids_off_their_line(fn.node, lines) == [], fn.name


def test_asm_statement_becomes_expression(constructs: tuple[str, str, Unit]) -> None:
    text, _, unit = constructs
    body = unit.functions["widget_asm"].node.body.block_items
    assignment = body[-1]
    assert isinstance(assignment, c_ast.Assignment)
    assert assignment.coord.line == line_of(text, "MARK:after-asm")


def test_loop_macro_is_a_loop(constructs: tuple[str, str, Unit]) -> None:
    _, _, unit = constructs
    loops = [n for n in unit.functions["widget_loop"].node.body.block_items
             if isinstance(n, c_ast.While)]
    assert [loop.cond.name.name for loop in loops] == [
        "list_for_each_entry", "for_each_set_bit", "list_for_each_entry_reverse"]


def test_type_arguments_stay_arguments(constructs: tuple[str, str, Unit]) -> None:
    _, _, unit = constructs
    (call,) = find_calls(unit.functions["widget_of"].node, "container_of")
    assert len(call.args.exprs) == 3
    assert isinstance(call.args.exprs[1], c_ast.UnaryOp) and call.args.exprs[1].op == "sizeof"


# --------------------------------------------------------------------------- failures

def test_bad_function_costs_only_itself() -> None:
    text, path = fixture("bad_function.c")
    unit = parse_unit(text, path)
    assert set(unit.functions) == {"good_before", "good_after"}
    assert len(unit.failures) == 1
    failure = unit.failures[0]
    assert isinstance(failure, Failure)
    assert failure.name == "bad_middle"
    assert failure.path == path
    assert failure.line == line_of(text, "static int bad_middle(")
    assert "\n" not in failure.message and not failure.message.startswith(path)
    for name, mark in (("good_before", "MARK:good-before"), ("good_after", "MARK:good-after")):
        ret = unit.functions[name].node.body.block_items[0]
        assert ret.coord.line == line_of(text, mark)


def test_failure_message_has_no_path_prefix() -> None:
    unit = parse_unit("int f(void)\n{\n\treturn 1 +* ;\n}\n", "some/dir/file.c")
    assert [f.name for f in unit.failures] == ["f"]
    assert "some/dir/file.c" not in unit.failures[0].message


def test_unbalanced_braces_stay_in_their_function() -> None:
    text = ("static int a(void)\n{\n\tif (x) {\n\t\treturn 1;\n}\n\n"
            "static int b(void)\n{\n\treturn 2;\n}\n")
    unit = parse_unit(text, "t.c")
    assert [f.name for f in unit.failures] == ["a"]
    assert set(unit.functions) == {"b"}
    assert unit.functions["b"].start_line == 7


def test_odd_paths_keep_their_name() -> None:
    path = 'dir with "quotes"\\file.c'
    unit = parse_unit("int f(void)\n{\n\treturn 0;\n}\n", path)
    fn = unit.functions["f"]
    assert fn.node.coord.file == path and fn.node.body.block_items[0].coord.line == 3


def test_chunks_cover_top_level() -> None:
    text = 'int a; struct s { int x; }; static int f(void) { return "}"[0]; }\nint b = 1;'
    chunks = list(split_chunks(text))
    assert [text[c.start:c.end].split()[0:2] for c in chunks] == [
        ["int", "a;"], ["struct", "s"], ["static", "int"], ["int", "b"]]
    assert [c.is_function for c in chunks] == [False, False, True, False]


# --------------------------------------------------------------------------- robustness

@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text())
def test_arbitrary_text_never_raises(text: str) -> None:
    unit = parse_unit(text, "fuzz.c")
    assert isinstance(unit, Unit)
    assert all(isinstance(f, Failure) and "\n" not in f.message for f in unit.failures)


_C_ALPHABET = st.sampled_from(list("{}()[];,#\"'\\/*\n \tabcx_0") + [
    "#if ", "#else\n", "#endif\n", "/*", "*/", "asm(", "__attribute__((", "typeof(",
    "for_each_x(", "case 1 ... 2:", "?:", "struct ", "static ", "int ", "u64 ", "}\n",
])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_C_ALPHABET, max_size=80).map("".join))
def test_c_like_text_never_raises(text: str) -> None:
    assert isinstance(parse_unit(text, "fuzz.c"), Unit)


_FIXTURE_TEXT = (FIXTURES / "kernel_constructs.c").read_text()


def mutated(text: str, edits: list[tuple[int, int, str]]) -> str:
    """TEXT with each (position, length, insertion) replacement made in turn."""
    for pos, length, insert in edits:
        pos = min(pos, len(text))
        text = text[:pos] + insert + text[pos + length:]
    return text


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(_FIXTURE_TEXT)), st.integers(0, 40),
                          st.sampled_from(["", "{", "}", "(", ")", ";", "\"", "'", "/*",
                                           "#if 0\n", "#endif\n", "\\\n", "asm(", "@"])),
                min_size=1, max_size=5))
def test_mutated_fixture_never_raises(edits: list[tuple[int, int, str]]) -> None:
    text = mutated(_FIXTURE_TEXT, edits)
    unit = parse_unit(text, "mutant.c")
    assert isinstance(unit, Unit)
    last = text.count("\n") + 1
    for fn in unit.functions.values():
        assert 1 <= fn.start_line <= fn.end_line <= last
    for failure in unit.failures:
        assert 1 <= failure.line <= last and "\n" not in failure.message


def test_stray_brace_costs_little() -> None:
    text = "{\n" + _FIXTURE_TEXT
    unit = parse_unit(text, "stray.c")
    assert len(unit.functions) >= 20


def test_bytes_and_crlf_input() -> None:
    text = "int f(void)\r\n{\r\n\treturn 0;\r\n}\r\n"
    assert "f" in parse_unit(text, "crlf.c").functions
    assert "f" in parse_unit(text.encode(), "bytes.c").functions  # type: ignore[arg-type]


# --------------------------------------------------------------------------- real kernel trees

def _nested(tree: Path) -> tuple[str, Unit]:
    text = (tree / "arch/x86/kvm/vmx/nested.c").read_text()
    return text, parse_unit(text, "arch/x86/kvm/vmx/nested.c")


@pytest.mark.kernel
def test_kernel_nested_parses(kernel_tree: Path) -> None:
    _, unit = _nested(kernel_tree)
    missing = [name for name in REQUIRED if name not in unit.functions]
    assert missing == [], unit.failures
    assert len(unit.failures) <= 3, unit.failures
    assert len(unit.functions) >= 150


@pytest.mark.kernel
def test_kernel_pdptr_write_line(kernel_tree: Path) -> None:
    text, unit = _nested(kernel_tree)
    fn = unit.functions["prepare_vmcs02_rare"]
    expected = line_of(text, "vmcs_write64(GUEST_PDPTR0", fn.start_line)
    calls = [c for c in find_calls(fn.node, "vmcs_write64")
             if c.args.exprs[0].name == "GUEST_PDPTR0"]
    assert [c.coord.line for c in calls] == [expected]
    assert calls[0].coord.file == "arch/x86/kvm/vmx/nested.c"


@pytest.mark.kernel
def test_kernel_rare_nodes_on_original_lines(kernel_tree: Path) -> None:
    text, unit = _nested(kernel_tree)
    lines = text.split("\n")
    fn = unit.functions["prepare_vmcs02_rare"]
    assert ids_off_their_line(fn.node, lines) == []
    for node in _walk(fn.node):
        if node.coord is not None:
            assert fn.start_line <= node.coord.line <= fn.end_line


def _walk(node: c_ast.Node):
    yield node
    for _, child in node.children():
        yield from _walk(child)


@pytest.mark.kernel
def test_kernel_vmx_parses(kernel_tree: Path) -> None:
    text = (kernel_tree / "arch/x86/kvm/vmx/vmx.c").read_text()
    unit = parse_unit(text, "arch/x86/kvm/vmx/vmx.c")
    assert len(unit.failures) <= 5, unit.failures
    assert "vmx_set_rflags" in unit.functions


# --------------------------------------------------------------------------- fast scans

# Reference versions of the scans that were made faster: the plain regexes they replace.
_REF_COMMENT_OR_LITERAL = re.compile(
    r'"(?:\\.|[^"\\\n])*"?|\'(?:\\.|[^\'\\\n])*\'?|/\*.*?(?:\*/|\Z)|//[^\n]*', re.S)
_REF_KERNEL_WORD = re.compile(
    r'"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\''
    r"|\b(?:__\w+|asm\w*|typeof\w*|alignof|_Noreturn|_Generic|noinline|noinstr|asmlinkage"
    r"|fastcall|notrace|DECLARE_BITMAP)\b")
_REF_STRING_MACRO = re.compile(
    r'"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\''
    r'|\b[A-Za-z_]\w+(?=\s*")|(?<=")[ \t]*[A-Za-z_]\w*\b')


def _ref_strip_comments(text: str) -> str:
    def repl(m: re.Match[str]) -> str:
        s = m.group(0)
        return s if s[0] in "\"'" else re.sub(r"[^\n]", " ", s)

    return _REF_COMMENT_OR_LITERAL.sub(repl, text)


def _matches(search: Any, text: str) -> list[Any]:
    """The matches of a scan from the start, then the first match from every position
    (`_scan_replace` resumes where a replacement ends)."""
    out: list[Any] = []
    pos = 0
    while (m := search(text, pos)) is not None:
        out.append((m.start(), m.end(), m.group(0)))
        pos = max(m.end(), pos + 1)
    for pos in range(len(text) + 1):
        m = search(text, pos)
        out.append(None if m is None else m.span())
    return out


def _check_fast_scans(text: str) -> None:
    assert pp.strip_comments(text) == _ref_strip_comments(text)
    assert _matches(pp._KERNEL_WORD.search, text) == _matches(_REF_KERNEL_WORD.search, text)
    assert _matches(pp._string_macro_search, text) == _matches(_REF_STRING_MACRO.search, text)
    fast = list(split_chunks(text))
    body_token = cparse._BODY_TOKEN
    cparse._BODY_TOKEN = cparse._CHUNK_TOKEN   # every token counted, inside braces too
    try:
        assert list(split_chunks(text)) == fast
    finally:
        cparse._BODY_TOKEN = body_token


_SCAN_ALPHABET = st.sampled_from(list("{}()[];,\"'\\/*\n \t\f\v\xa0\u2028aAx_0é") + [
    "/*", "*/", "//", "__x", "_Generic", "asm", "typeof", "alignof", "noinline", "DECLARE_BITMAP",
    "KERN_ERR", "u8", "return", "\"%d\"", "'\"'", "\\\n", "}\n", "\n}", "f(x)\n", "int f(void)",
])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_SCAN_ALPHABET, max_size=60).map("".join))
@example('x = "a\\\n/* b */";')   # a backslash escapes a newline in a literal
@example('KERN_ERR "a" x\n"b\n"c" d \'"\' "e"f')
def test_fast_scans_equal_plain_regexes(text: str) -> None:
    _check_fast_scans(text)
    _check_fast_scans(preprocess(text))


def test_fast_scans_equal_plain_regexes_on_fixtures() -> None:
    for path in sorted(FIXTURES.rglob("*.[ch]")):
        text = path.read_text()
        _check_fast_scans(text)
        _check_fast_scans(preprocess(text))


# -- chunks taken over from the last text split -------------------------------------------

def _split_after(old: str, new: str) -> list:
    """``cparse.chunks(new)`` right after a split of OLD, and the plain split of NEW."""
    cparse.chunks(old)
    return [cparse.chunks(new), list(split_chunks(new))]


_EDIT = st.tuples(st.integers(0, 10 ** 6), st.integers(0, 60),
                  st.lists(_SCAN_ALPHABET, max_size=8).map("".join))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_EDIT, min_size=1, max_size=4), st.booleans())
def test_chunks_taken_over_equal_a_plain_split(edits, done) -> None:
    """Whatever the edit, the chunks reused from the text before it are the plain split's,
    on the kernel-shaped fixture as it is and preprocessed."""
    base = preprocess(_FIXTURE_TEXT) if done else _FIXTURE_TEXT
    edits = [(pos % (len(base) + 1), n, ins) for pos, n, ins in edits]
    reused, plain = _split_after(base, mutated(base, edits))
    assert reused == plain


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_SCAN_ALPHABET, max_size=60).map("".join),
       st.lists(_SCAN_ALPHABET, max_size=60).map("".join))
@example('";{', '";{')      # the quote opens a literal only once a later one closes it
@example('x;\n"a;', '"')
def test_chunks_taken_over_between_any_texts(a: str, b: str) -> None:
    for old, new in ((a, b), (a + b, b + a), (a, a + b), (a + b, a),
                     (a + "\n}\n" + b, a + "\n}\n;" + b)):
        reused, plain = _split_after(old, new)
        assert reused == plain


def test_chunks_taken_over_on_a_series_of_the_fixture() -> None:
    """Each edit of a series reuses the chunks around it: the result is the plain split
    and the scan covers little more than the edited function."""
    text = preprocess(_FIXTURE_TEXT)
    cparse.chunks(text)
    for k, at in enumerate(range(200, len(text), len(text) // 7)):
        text = text[:at] + f"\nint added_{k};\n" + text[at:]
        scanned = []
        real = cparse.split_chunks

        def counting(t, pos=0, line=1):
            for c in real(t, pos, line):
                scanned.append(c)
                yield c

        cparse.split_chunks = counting
        try:
            got = cparse.chunks(text)
        finally:
            cparse.split_chunks = real
        assert got == list(split_chunks(text))
        assert 0 < len(scanned) < len(got) // 2


# -- the preprocessor's passes that copy what they need not look at ------------------------

def _ref_join_continuations(text: str) -> str:
    """Line by line, as the pass was first written."""
    out: list[str] = []
    pending = 0
    for line in text.split("\n"):
        if line.endswith("\\"):
            out.append(line[:-1])
            pending += 1
            continue
        out.append(line)
        if pending:
            # The logical line ends here: its physical lines collapse into one, and the
            # newlines go after it so that the following lines keep their numbers.
            out.append("\n" * pending)
            pending = 0
        out.append("\n")
    if pending:
        out.append("\n" * pending)
    else:
        out.pop()
    return "".join(out)


def _ref_apply_conditionals(text: str, config=None) -> str:
    """Line by line: every line looked at, as the pass was first written."""
    if "#" not in text:
        return text
    branches = pp.Branches(pp._merged_config(config))
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if line.lstrip().startswith("#"):
            lines[i] = ""
            branches.directive(line)
        elif not branches.active:
            lines[i] = ""
    return "\n".join(lines)


_PP_ALPHABET = st.sampled_from([
    "\n", " ", "\t", "\f", "\xa0", "\u2028", "\\", "\\\n", "#", "# ", "#if 0", "#if 1",
    "#ifdef CONFIG_X86_64", "#ifndef CONFIG_X86_64", "#else", "#elif 1", "#elif 0",
    "#elifdef CONFIG_KVM_HYPERV", "#endif", "#define X(a) a \\", "#include <x.h>", "x",
    "int f(void)", "{", "}", ";", "/*", "*/", "\"#\"", "a # b", "##"])


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_PP_ALPHABET, max_size=40).map("".join), st.booleans())
@example("a\\\nb\\", False)             # a continuation the text ends in
@example("#if 0\nx\n#else\ny\n#endif", True)
def test_passes_that_skip_equal_line_by_line(text: str, x86_64: bool) -> None:
    assert pp.join_continuations(text) == (_ref_join_continuations(text) if "\\\n" in text
                                           else text)
    config = {"CONFIG_X86_64": x86_64}
    assert pp.apply_conditionals(text, config) == _ref_apply_conditionals(text, config)


def test_passes_that_skip_equal_line_by_line_on_fixtures() -> None:
    for path in sorted(FIXTURES.rglob("*.[ch]")):
        text = pp.strip_comments(_ref_join_continuations(path.read_text()))
        assert pp.apply_conditionals(text) == _ref_apply_conditionals(text), path


# -- preprocessing that takes over the output of the last text around an edit --------------

_PP_ALPHABET = st.sampled_from([
    "/*", "*/", "//", "\"", "'", "(", ")", "{", "}", "\n}\n", "}\n", "\n", "\\\n", "#if 0\n",
    "#endif\n", "#else\n", "# define X\n", "asm(", "asm volatile(", "__attribute__((", "typeof(",
    "DECLARE_BITMAP(b, 3);", "KERN_ERR \"x\"", "\"%#x\"", "x", " ", "\t", "\r", ";", "__x ",
])
_PP_EDIT = st.tuples(st.integers(0, 10 ** 6), st.integers(0, 60),
                     st.lists(_PP_ALPHABET, max_size=6).map("".join))


def _preprocessed_after(old: str, new: str) -> tuple[str, str]:
    """``preprocess(new)`` right after ``preprocess(old)``, and all the passes over NEW."""
    pp.clear_memo()
    preprocess(old)
    return preprocess(new), pp._whole(new.replace("\r\n", "\n").replace("\r", "\n"), None).out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_PP_EDIT, min_size=1, max_size=3))
def test_preprocess_spliced_equals_all_the_passes(edits) -> None:
    """Whatever the edit of the kernel-shaped fixture, the output taken over around it is
    the output of every pass over the whole new text."""
    edits = [(pos % (len(_FIXTURE_TEXT) + 1), n, ins) for pos, n, ins in edits]
    spliced, whole = _preprocessed_after(_FIXTURE_TEXT, mutated(_FIXTURE_TEXT, edits))
    assert spliced == whole


# The fixture with functions inside #if blocks and a body holding one.
_BRANCHED = _FIXTURE_TEXT + "".join(
    f"{head}int g{k}(void)\n{{\n{inner}\treturn {k};\n}}\n{tail}"
    for k, (head, inner, tail) in enumerate([
        ("#ifdef CONFIG_X86_64\n", "", ""), ("", "#if 0\n\tk = 1;\n#endif\n", "#endif\n"),
        ("#if 0\n", "", ""), ("", "", "#else\n"), ("", "", "#endif\n"), ("", "", "")]))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from([
    "\tx = 1;\n", "\tx = 1;\n\ty = 2;\n", "#if 0\n\tz = 1;\n#endif\n",
    "#ifdef CONFIG_X86_64\n\tz = 1;\n#else\n\tz = 2;\n#endif\n", "#if 0\n", "#endif\n",
    "#else\n", "/* c */\n", ""]), st.integers(0, 10 ** 6)), min_size=2, max_size=8))
def test_preprocess_spliced_along_a_series(edits) -> None:
    """Each image spliced from the one before (what a series does) equals all the passes:
    what a splice keeps for the next one (the #if state at each directive) is right."""
    pp.clear_memo()
    text = _BRANCHED
    preprocess(text)
    for insert, pick in edits:
        bodies = [m.end() for m in re.finditer(r"\n\{\n", text)]
        at = bodies[pick % len(bodies)]
        text = text[:at] + insert + text[at:]
        assert preprocess(text) == pp._whole(text, None).out


def test_preprocess_splices_each_image_of_a_series(monkeypatch) -> None:
    """Balanced edits in bodies around and inside #if blocks are each spliced from the
    image before (the #if state kept at each directive moves with the edits), and each
    image equals all the passes over it."""
    sizes: list[int] = []
    real = pp._whole

    def counting(text, config, state=None):
        sizes.append(len(text))
        return real(text, config, state)

    pp.clear_memo()
    text = _BRANCHED
    preprocess(text)
    monkeypatch.setattr(pp, "_whole", counting)
    blocks = ["\tx = 1;\n" * 5, "#if 0\n\tz = 1;\n\tz = 2;\n#endif\n",
              "#ifdef CONFIG_X86_64\n\tz = 1;\n#else\n\tz = 2;\n#endif\n"]
    for n, k in enumerate([24, 1, 25, 12, 24, 3, 19, 25, 24, 10]):
        at = [m.end() for m in re.finditer(r"\n\{\n", text)][k]
        text = text[:at] + blocks[n % len(blocks)] + text[at:]
        sizes.clear()
        assert preprocess(text) == real(text, None).out
        assert sizes and max(sizes) < len(text) // 4, (n, k)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_PP_ALPHABET, max_size=30).map("".join),
       st.lists(_PP_ALPHABET, max_size=30).map("".join),
       st.lists(_PP_ALPHABET, max_size=30).map("".join))
@example("__attribute__((", ")) int x;", "")   # a look-ahead that once found no end
@example("/*", "/**/", "")                     # a comment from before closed in the region
@example("", "", "asm()")                       # a look back to the start of the region
def test_preprocess_spliced_between_any_texts(a: str, b: str, c: str) -> None:
    edge = "\nint f(void)\n{\n\treturn 0;\n}\n"
    for old, new in ((a + edge + b + edge + c, a + edge + c + edge + c),
                     (a + edge + b + edge + c, a + edge + edge + c), (a + b, b + a)):
        spliced, whole = _preprocessed_after(old, new)
        assert spliced == whole


@pytest.mark.parametrize("inside", ["", "#ifdef CONFIG_X86_64\n\ty = 2;\n#else\n\ty = 3;\n#endif\n",
                                    "#if 0\n"])
def test_preprocess_redoes_only_the_edited_function(monkeypatch, inside: str) -> None:
    """An edit inside a function body re-does that function alone, directives and all
    (one that leaves the #if state changed after the function re-does everything)."""
    sizes: list[int] = []
    real = pp._whole

    def counting(text, config, state=None):
        sizes.append(len(text))
        return real(text, config, state)

    text = _FIXTURE_TEXT
    pp.clear_memo()
    preprocess(text)
    monkeypatch.setattr(pp, "_whole", counting)
    at = text.index("\n}\n", len(text) // 2)
    edited = text[:at] + "\n\tx = typeof(y) 0;\n" + inside + text[at:]
    assert preprocess(edited) == real(edited, None).out
    assert sizes and (max(sizes) < len(text) // 4) == (inside != "#if 0\n")


@pytest.mark.kernel
def test_kernel_series_of_edits_is_spliced_exactly(kernel_tree: Path) -> None:
    """An edit in every function body of a real nested.c, one after another as a series
    makes them: each image's preprocessing, spliced from the one before, is all the passes'
    over it, and nearly every image is spliced (a region's `#if` state left changed, or a
    continued line in it, falls back to the full passes)."""
    text = (kernel_tree / "arch/x86/kvm/vmx/nested.c").read_text()
    pp.clear_memo()
    preprocess(text)
    full = 0
    real = pp._whole
    bodies = len(re.findall(r"\n\{\n", text))
    for k in range(0, bodies, 3):
        at = [m.end() for m in re.finditer(r"\n\{\n", text)][k]
        text = text[:at] + f"\tvmxlint_edit({k});\n" + text[at:]
        sizes: list[int] = []
        pp._whole = lambda t, c, s=None: (sizes.append(len(t)), real(t, c, s))[1]
        try:
            got = preprocess(text)
        finally:
            pp._whole = real
        assert got == real(text, None).out, k
        full += max(sizes, default=0) > len(text) // 2
    assert full <= bodies // 3 // 10


@given(st.text(alphabet=st.sampled_from(" \t\n\f\v\r\u00a0\u2003\x1c;ab{}"), max_size=12))
@example(";")
@example("\u2003;\n")
def test_a_lone_semicolon_is_what_strip_leaves(text: str):
    """The split drops a piece that is a ';' and white space alone: the pattern that tells
    it without scanning a definition agrees with strip() on every text."""
    assert bool(cparse._LONE_SEMICOLON.match(text)) == (text.strip() == ";")
