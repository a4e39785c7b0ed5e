"""Never silent (DESIGN section 8): what could not be analysed is said, and does not pass."""
from __future__ import annotations

import difflib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vmxlint.analysis import analyse
from vmxlint.mail import read_mails
from vmxlint.series import check
from vmxlint.tree import Tree

ROOT = Path(__file__).resolve().parent.parent
SHAPE = ROOT / "fixtures" / "trees" / "shape-modern"
PATCHABLE = ROOT / "fixtures" / "trees" / "patchable"
NESTED = "arch/x86/kvm/vmx/nested.c"
BASE = (SHAPE / NESTED).read_text()

BREAK_RARE = ("\tvmcs_write32(GUEST_SYSENTER_CS, vmcs12->guest_sysenter_cs);\n",
              "\tvmcs_write32(GUEST_SYSENTER_CS, vmcs12->guest_sysenter_cs +);\n")
TOUCH_RARE = ("\tvmcs_write32(GUEST_ES_LIMIT, vmcs12->guest_es_limit);\n",
              "\tvmcs_write32(GUEST_ES_LIMIT, vmcs12->guest_es_limit | 0);\n")
TOUCH_ENTRY = ("\tkvm_rip_write(vcpu, vmcs12->guest_rip);\n",
               "\tkvm_rip_write(vcpu, vmcs12->guest_rip);\n\t/* one more line */\n")


def edit(text: str, change: tuple[str, str]) -> str:
    assert change[0] in text
    return text.replace(change[0], change[1], 1)


def udiff(before: str, after: str, path: str = NESTED) -> str:
    body = "".join(difflib.unified_diff(before.splitlines(True), after.splitlines(True),
                                        f"a/{path}", f"b/{path}"))
    return f"diff --git a/{path} b/{path}\n{body}"


def mail(diff: str, n: int = 1, total: int = 1) -> str:
    tag = f"[PATCH {n}/{total}]" if total > 1 else "[PATCH]"
    return (f"From mboxrd@z Thu Jan  1 00:00:00 1970\nFrom: A <a@example.org>\n"
            f"Subject: {tag} change {n}\nMessage-ID: <s{n}@example.org>\n\nwhy\n---\n{diff}\n")


def failing(findings) -> list:
    """What keeps a check from exiting 0: new findings at warning or error."""
    return [f for f in findings if f.status == "new" and f.severity in ("error", "warning")]


def test_series_names_the_patch_that_broke_the_parse() -> None:
    one = edit(BASE, BREAK_RARE)
    two = edit(one, TOUCH_ENTRY)
    mbox = mail(udiff(BASE, one), 1, 2) + mail(udiff(one, two), 2, 2)
    result = check(read_mails(mbox.encode()), Tree(SHAPE))
    first = [f for f in failing(result.findings) if f.patch.index == "1/2"]
    second = [f for f in failing(result.findings) if f.patch.index == "2/2"]
    assert any(f.code == "VMX004" for f in first)
    assert second and all(f.severity == "error" for f in second)
    assert any("1/2" in f.message and "not analysed" in f.message for f in second)


def test_patch_that_touches_an_unparsed_function_does_not_pass() -> None:
    tree = Tree(SHAPE).with_overlay({NESTED: edit(BASE, BREAK_RARE)})
    before = edit(BASE, BREAK_RARE)
    after = edit(before, TOUCH_RARE)
    result = check(read_mails(mail(udiff(before, after)).encode()), tree)
    bad = failing(result.findings)
    assert [f.function for f in bad] == ["prepare_vmcs02_rare"], result.findings


def test_patch_away_from_an_unparsed_function_is_not_blamed_for_it() -> None:
    before = edit(BASE, BREAK_RARE)
    tree = Tree(SHAPE).with_overlay({NESTED: before})
    after = edit(before, TOUCH_ENTRY)
    result = check(read_mails(mail(udiff(before, after)).encode()), tree)
    assert failing(result.findings) == []


def test_nul_byte_in_nested_c_is_unusable_for_the_analysis() -> None:
    broken = edit(BASE, ("\treturn 0;\n", "\treturn 0;\0\n"))
    found = analyse(Tree(SHAPE).with_overlay({NESTED: broken})).findings
    assert [(f.code, f.severity) for f in found] == [("VMX004", "error")]
    assert "NUL" in found[0].message


def test_truncated_nested_c_is_unusable_for_the_analysis() -> None:
    cut = BASE[:BASE.index("static int prepare_vmcs02(") + 200]
    found = analyse(Tree(SHAPE).with_overlay({NESTED: cut})).findings
    assert [(f.code, f.severity) for f in found] == [("VMX004", "error")]
    assert "truncated" in found[0].message


def test_check_on_a_tree_it_cannot_analyse_does_not_pass() -> None:
    broken = edit(BASE, ("\treturn 0;\n", "\treturn 0;\0\n"))
    tree = Tree(SHAPE).with_overlay({NESTED: broken})
    after = edit(broken, TOUCH_RARE)
    result = check(read_mails(mail(udiff(broken, after)).encode()), tree)
    assert any(f.severity == "error" for f in failing(result.findings))


def test_missing_entry_root_in_both_images_does_not_pass() -> None:
    text = (PATCHABLE / NESTED).read_text()
    after = text.replace("\treturn 0;\n", "\treturn 1;\n")
    result = check(read_mails(mail(udiff(text, after)).encode()), Tree(PATCHABLE))
    assert any(f.code == "VMX004" and f.severity == "error" for f in failing(result.findings))


def test_double_slash_path_is_analysed() -> None:
    after = edit(BASE, BREAK_RARE)
    diff = udiff(BASE, after).replace(f"a/{NESTED}", "a/arch/x86/kvm/vmx//nested.c")
    result = check(read_mails(mail(diff).encode()), Tree(SHAPE))
    assert any(f.code == "VMX004" for f in failing(result.findings))


def test_fallbacks_are_reported_once() -> None:
    one = edit(BASE, TOUCH_RARE)
    two = edit(one, TOUCH_ENTRY)
    mbox = mail(udiff(BASE, one), 1, 2) + mail(udiff(one, two), 2, 2)
    result = check(read_mails(mbox.encode()), Tree(SHAPE))
    notes = [n for n in result.notes if "embedded" in n]
    assert notes and len(notes) == len(set(notes))
    assert any("vmcs12.c" in n for n in notes)


# -- the hostile corpus: synthetic inputs, each with the exit status it must give ----------

HOSTILE = ROOT / "fixtures" / "hostile"


def _corpus() -> list[tuple[str, int]]:
    rows = []
    for line in (HOSTILE / "expected.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, status = line.split()
            rows.append((name, int(status)))
    return rows


@pytest.mark.parametrize("name,status", _corpus(), ids=[n for n, _ in _corpus()])
def test_hostile_corpus(name: str, status: int) -> None:
    env = dict(os.environ, VMXLINT_NO_CACHE="1", NO_COLOR="1")
    proc = subprocess.run([sys.executable, "-m", "vmxlint", "check", "--tree", str(SHAPE),
                           str(HOSTILE / name)], capture_output=True, env=env, cwd=ROOT)
    err = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == status, (proc.stdout[-500:], err)
    assert "Traceback" not in err and "\x1b" not in err
    assert "\x1b" not in proc.stdout.decode("utf-8", "replace")


# Comments, string and character literals (skipped), and braces.
_REF_C_TOKENS = re.compile(r'/\*.*?(?:\*/|\Z)|//[^\n]*|"(?:\\.|[^"\\\n])*"|'
                           r"'(?:\\.|[^'\\\n])*'|[{}]", re.S)


def _ref_brace_check(text: str) -> str | None:
    """The brace scan of unusable_source as first written: token by token (trying a
    token at every character), stopping at the first '}' that closes nothing."""
    depth = 0
    for m in _REF_C_TOKENS.finditer(text):
        if m.group(0) == "{":
            depth += 1
        elif m.group(0) == "}":
            depth -= 1
            if depth < 0:
                return "has an unbalanced '}'"
    return "is truncated (a '{' is never closed)" if depth > 0 else None


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(["{", "}", "{}", "/*", "*/", "//", "\"", "'", "\\", "x",
                                 "\n", "\"}\"", "'{'", "/* } */", "/", "*", "/*/", "**/"]),
                max_size=40).map("".join))
def test_brace_check_equals_a_token_by_token_scan(body: str) -> None:
    from vmxlint.analysis import unusable_source

    text = body + "\n"
    assert unusable_source(text) == _ref_brace_check(text)


_PIECES = st.sampled_from(["{", "}", "{}", "/*", "*/", "//", "\"", "'", "\\", "x", "\n",
                           "\n", "\"}\"", "'{'", "/* } */", "/", "*", "/*/", "**/", "\n}\n",
                           "\\\n", "\"\\\n"])    # a backslash continues a literal
_TEXTS = st.lists(_PIECES, max_size=40).map("".join)


@settings(max_examples=400, deadline=None)
@given(_TEXTS, st.lists(st.tuples(st.integers(0, 400), st.integers(0, 8), _TEXTS),
                        min_size=1, max_size=4))
def test_a_scan_made_from_the_last_one_is_a_scan_made_anew(base: str, edits) -> None:
    """Each text of a series scanned from the one before (its start and end taken over)
    reaches the depths, and has the matches, of a scan of it alone."""
    from vmxlint.cfront import braces

    text = base
    braces._last[:] = [braces._scan(text, 0, [], [])]
    for at, cut, piece in edits:
        at = min(at, len(text))
        text = text[:at] + piece + text[at + cut:]
        fresh = braces._scan(text, 0, [], [])
        assert braces.depths(text) == (min(0, min(fresh.depth, default=0)),
                                       fresh.depth[-1] if fresh.depth else 0)
        assert braces._last[0] == fresh
