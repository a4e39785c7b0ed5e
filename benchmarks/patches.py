"""Code-changing patches for the benchmarks, generated at run time from a real nested.c.

Every patch edits C code on the nested VM-entry path, never a comment or whitespace
alone: it ORs a bit into a ``vmcs_write*()`` value, writes another vmcs12 member,
duplicates a write, negates a condition, inserts a statement or adds a local
variable.  Sites are spread round-robin over several functions and chosen with a
fixed seed, so a run is reproducible.  No kernel source is stored in this repository.
"""
from __future__ import annotations

import difflib
import random
import re
from dataclasses import dataclass
from pathlib import Path

NESTED = "arch/x86/kvm/vmx/nested.c"
# The functions edits go into, in this order of preference (absent ones are skipped).
FUNCTIONS = (
    "prepare_vmcs02_rare",
    "prepare_vmcs02_early",
    "prepare_vmcs02",
    "nested_vmx_enter_non_root_mode",
    "prepare_vmcs02_constant_state",
    "prepare_vmcs02_early_rare",
    "load_vmcs12_host_state",
    "nested_get_vmcs12_pages",
    "nested_vmx_vmexit",
)
SEED = 20250106

_WRITE = re.compile(r"^(\s+)(vmcs_write(?:16|32|64|l))\((\w+), (.+)\);\n$")
_IF = re.compile(r"^(\s+(?:} else )?)if \((.+)\)( {)?\n$")
_MEMBER = re.compile(r"^vmcs12->(\w+)$")
_TOKEN = re.compile(r"/\*.*?\*/|//[^\n]*|\s+|(\w+|\S)", re.S)


@dataclass(frozen=True)
class Site:
    """One place to edit: a line index of the original file and what to do there."""

    function: str
    line: int
    kind: str


def tokens(text: str) -> list[str]:
    """The C token stream of ``text``, comments and whitespace dropped (roughly)."""
    return [m.group(1) for m in _TOKEN.finditer(text) if m.group(1)]


def _balanced(s: str) -> bool:
    depth = 0
    for ch in s:
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth < 0:
            return False
    return depth == 0


def function_spans(lines: list[str]) -> dict[str, tuple[int, int]]:
    """Name -> (index of the opening ``{``, index of the closing ``}``) of each function."""
    spans: dict[str, tuple[int, int]] = {}
    head: str | None = None
    start = -1
    for i, line in enumerate(lines):
        if re.match(r"^[A-Za-z_].*\w\(", line) and not line.rstrip().endswith(";"):
            m = re.search(r"(\w+)\(", line)
            head = m.group(1) if m else None
        elif line == "{\n" and head is not None:
            start = i
        elif line == "}\n" and start >= 0 and head is not None:
            spans.setdefault(head, (start, i))
            head, start = None, -1
    return spans


def sites(lines: list[str]) -> dict[str, list[Site]]:
    """Every editable site of each function of FUNCTIONS present in ``lines``."""
    spans = function_spans(lines)
    out: dict[str, list[Site]] = {}
    for fn in FUNCTIONS:
        if fn not in spans:
            continue
        lo, hi = spans[fn]
        found = [Site(fn, lo, "local")]
        for i in range(lo + 1, hi):
            w = _WRITE.match(lines[i])
            if w and _balanced(w.group(4)):
                found.append(Site(fn, i, "or-bit"))
                if _statement_level(lines, i):
                    found += [Site(fn, i, "duplicate"), Site(fn, i, "insert-read")]
                if _MEMBER.match(w.group(4)):
                    found.append(Site(fn, i, "member"))
                continue
            c = _IF.match(lines[i])
            if c and _balanced(c.group(2)) and "//" not in lines[i]:
                found.append(Site(fn, i, "negate"))
        out[fn] = found
    return out


def _statement_level(lines: list[str], i: int) -> bool:
    """Whether a statement added after line ``i`` stays valid C in the same block: not
    after the unbraced body of an ``if``/``else`` (``if (c) write; added; else`` does not
    parse, and an analysis of it would say the function's writes are unknown)."""
    before = lines[i - 1].rstrip()
    return before == "" or before.endswith((";", "{", "}"))


def pick(lines: list[str], n: int, seed: int = SEED, skip: int = 0) -> list[Site]:
    """``n`` sites on distinct lines, round-robin over the functions, after ``skip``."""
    rng = random.Random(seed)
    pools = {fn: rng.sample(s, len(s)) for fn, s in sites(lines).items()}
    picked: list[Site] = []
    used: set[int] = set()
    while len(picked) < n + skip and any(pools.values()):
        for fn in FUNCTIONS:
            pool = pools.get(fn)
            while pool:
                s = pool.pop()
                if s.line not in used:
                    used.add(s.line)
                    picked.append(s)
                    break
    if len(picked) < n + skip:
        raise SystemExit(f"patches: only {len(picked)} edit sites in {NESTED}, "
                         f"{n + skip} wanted")
    return picked[skip:n + skip]


def _members(lines: list[str], fn_lines: range) -> list[str]:
    return sorted({m.group(1) for i in fn_lines
                   for m in re.finditer(r"vmcs12->(\w+)", lines[i])})


def edit(lines: list[str], site: Site, k: int) -> str:
    """The replacement text (one or more lines) for ``lines[site.line]``; ``k`` tags it."""
    line = lines[site.line]
    if site.kind == "local":
        return f"{line}\tu32 bench_{k} = {k};\n"
    if site.kind == "negate":
        c = _IF.match(line)
        assert c
        return f"{c.group(1)}if (!({c.group(2)})){c.group(3) or ''}\n"
    w = _WRITE.match(line)
    assert w
    indent, fn, field, value = w.groups()
    if site.kind == "or-bit":
        return f"{indent}{fn}({field}, ({value}) | 0x{k:x});\n"
    if site.kind == "duplicate":
        return line + line
    if site.kind == "insert-read":
        return f"{line}{indent}(void)vmcs_read32(VM_INSTRUCTION_ERROR);\n"
    if site.kind == "member":
        mm = _MEMBER.match(value)
        assert mm
        spans = function_spans(lines)
        lo, hi = spans[site.function]
        others = [m for m in _members(lines, range(lo, hi)) if m != mm.group(1)]
        other = others[k % len(others)] if others else "guest_rip"
        return f"{indent}{fn}({field}, vmcs12->{other});\n"
    raise ValueError(site.kind)


def unified(old: list[str], new: list[str], path: str = NESTED) -> str:
    """A git-style unified diff of two versions of ``path``."""
    out = [f"diff --git a/{path} b/{path}\n"]
    out += difflib.unified_diff(old, new, f"a/{path}", f"b/{path}", n=3)
    return "".join(out)


def mail(subject: str, body_diff: str, n: int, sha: str = "0" * 40) -> str:
    """A ``git format-patch``-shaped message around a diff."""
    return (f"From {sha} Mon Sep 17 00:00:00 2001\n"
            "From: Bench Mark <bench@example.org>\n"
            f"Date: Mon, 6 Jan 2025 10:{n // 60 % 60:02d}:{n % 60:02d} +0000\n"
            f"Subject: {subject}\n"
            f"Message-ID: <bench-{n}@example.org>\n\n"
            "Generated by benchmarks/patches.py from the real nested.c.\n\n"
            "Signed-off-by: Bench Mark <bench@example.org>\n---\n"
            f"{body_diff}-- \n2.43.0\n\n")


def _flat(chunks: list[str]) -> list[str]:
    return "".join(chunks).splitlines(keepends=True)


def _check_changes_code(old: list[str], new: list[str], what: str) -> None:
    if tokens("".join(old)) == tokens("".join(new)):
        raise AssertionError(f"patches: {what} does not change the token stream")


def singles(nested: str, n: int, skip: int = 0) -> list[str]:
    """``n`` independent one-edit mails against ``nested``, each at a different site."""
    lines = nested.splitlines(keepends=True)
    out = []
    for k, site in enumerate(pick(lines, n, skip=skip), 1 + skip):
        chunks = list(lines)
        chunks[site.line] = edit(lines, site, k)
        new = _flat(chunks)
        _check_changes_code(lines, new, f"patch {k}")
        out.append(mail(f"[PATCH] KVM: nVMX: bench {k}: {site.kind} in {site.function}()",
                        unified(lines, new), k))
    return out


def series(nested: str, n: int) -> list[str]:
    """``n`` mails forming a cumulative series: each applies on top of the ones before."""
    lines = nested.splitlines(keepends=True)
    chunks = list(lines)
    before = lines
    out = []
    for k, site in enumerate(pick(lines, n, seed=SEED + 1), 1):
        chunks[site.line] = edit(lines, site, k)
        after = _flat(chunks)
        _check_changes_code(before, after, f"series patch {k}")
        out.append(mail(f"[PATCH {k}/{n}] KVM: nVMX: bench {k}: {site.kind} in "
                        f"{site.function}()", unified(before, after), k))
        before = after
    return out


if __name__ == "__main__":   # a look at what would be generated
    import sys

    tree = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    text = (tree / NESTED).read_text(encoding="utf-8", errors="surrogateescape")
    for m in series(text, int(sys.argv[2]) if len(sys.argv) > 2 else 3):
        sys.stdout.write(m)
