"""Property tests: no input makes mail or patch raise anything but the documented errors."""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vmxlint.mail import MailError, read_mails
from vmxlint.patch import Applied, apply_patch
from vmxlint.tree import Tree

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
PATCHABLE = FIXTURES / "trees" / "patchable"
NESTED = "arch/x86/kvm/vmx/nested.c"
MAIL_BYTES = (FIXTURES / "inputs" / "format-patch.patch").read_bytes()
DIFF = read_mails(MAIL_BYTES)[0].diff
DIFF_LINES = DIFF.split("\n")[:-1]
CLEAN_POST = apply_patch(DIFF, Tree(PATCHABLE)).files[NESTED]
CODES = {"VMX001", "VMX002", "VMX003"}

# VMXLINT_FUZZ_EXAMPLES raises the count for a long local run; CI keeps it quick.
FAST = settings(max_examples=int(os.environ.get("VMXLINT_FUZZ_EXAMPLES", "150")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


def tree_digest() -> str:
    h = hashlib.sha256()
    for path in sorted(PATCHABLE.rglob("*")):
        if path.is_file():
            h.update(str(path.relative_to(PATCHABLE)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


DIGEST = tree_digest()


def check_applied(applied: Applied) -> None:
    """The result is well formed whatever the input was."""
    assert isinstance(applied, Applied)
    for p in applied.problems:
        assert p.code in CODES and "\n" not in p.message and p.line >= 0
    for text in applied.files.values():
        assert text is None or isinstance(text, str)
    if not applied.usable:
        assert any(p.code in ("VMX001", "VMX003") for p in applied.problems)


def run_all(data: bytes) -> None:
    """Read mails from data and apply each; only MailError may escape."""
    try:
        mails = read_mails(data, "fuzz")
    except MailError as exc:
        assert "\n" not in str(exc)
        return
    tree = Tree(PATCHABLE)
    for mail in mails:
        check_applied(apply_patch(mail.diff, tree))
    assert tree_digest() == DIGEST


@FAST
@given(st.binary(max_size=2048))
def test_arbitrary_bytes(data: bytes) -> None:
    run_all(data)


@FAST
@given(st.text(max_size=2048))
def test_arbitrary_text_as_diff(text: str) -> None:
    check_applied(apply_patch(text, Tree(PATCHABLE)))
    run_all(text.encode("utf-8", "surrogatepass"))


def mutate(lines: list[str], op: str, k: int, n: int) -> list[str]:
    """Damage lines the way mailers and archives do."""
    if not lines:
        return lines
    k %= len(lines)
    if op == "delete":
        return lines[:k] + lines[k + 1:]
    if op == "duplicate":
        return lines[:k + 1] + lines[k:]
    if op == "strip":
        return lines[:k] + [lines[k].lstrip()] + lines[k + 1:]
    if op == "truncate":
        return lines[:k]
    if op == "counts":
        return [re.sub(r"\d+", lambda m: str((int(m.group()) + n) % 40), ln, count=4)
                if ln.startswith("@@") else ln for ln in lines]
    if op == "tabs":
        return lines[:k] + [re.sub(r"\s+", " ", lines[k])] + lines[k + 1:]
    return lines[:k] + [lines[k][: n % (len(lines[k]) + 1)]] + lines[k + 1:]   # wrap


MUTATIONS = st.lists(st.tuples(
    st.sampled_from(["delete", "duplicate", "strip", "truncate", "counts", "tabs", "wrap"]),
    st.integers(0, 200), st.integers(0, 60)), max_size=6)


@FAST
@given(MUTATIONS)
def test_mutated_patch(ops: list[tuple[str, int, int]]) -> None:
    lines = list(DIFF_LINES)
    for op, k, n in ops:
        lines = mutate(lines, op, k, n)
    diff = "\n".join(lines) + "\n"
    check_applied(apply_patch(diff, Tree(PATCHABLE)))
    head = MAIL_BYTES.split(b"diff --git", 1)[0]
    run_all(head + diff.encode())


@FAST
@given(st.sets(st.integers(0, len(DIFF_LINES) - 1)))
def test_stripped_context_is_restored_exactly(stripped: set[int]) -> None:
    # Archives drop leading whitespace of context lines; the repair must give back
    # exactly the clean post-image, since context comes from the tree.
    lines = [ln.lstrip() if k in stripped and ln.startswith(" ") else ln
             for k, ln in enumerate(DIFF_LINES)]
    applied = apply_patch("\n".join(lines) + "\n", Tree(PATCHABLE))
    assert applied.usable
    assert applied.files[NESTED] == CLEAN_POST
    assert {p.code for p in applied.problems} <= {"VMX002"}


@FAST
@given(st.binary(max_size=64), st.integers(0, len(MAIL_BYTES)))
def test_spliced_mail(junk: bytes, at: int) -> None:
    run_all(MAIL_BYTES[:at] + junk + MAIL_BYTES[at:])
