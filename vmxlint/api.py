"""The pipeline behind the command line: inputs read, a check, an audit or a graph run, and
what the formats need handed back (findings, the mails, a source lookup, notes).

The CLI turns arguments into options and calls these; it reads no input and builds no
analysis itself.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from msgspec import Struct, field

from vmxlint.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from vmxlint.findings import Finding, SourceLookup
    from vmxlint.tree import Tree


class Outcome(Struct):
    """What one command produced, before selection and formatting."""

    findings: list["Finding"] = field(default_factory=list)
    mails: dict = field(default_factory=dict)
    source: "SourceLookup | None" = None
    notes: list[str] = field(default_factory=list)
    nothing: bool = False        # nothing to check at all (no staged change): exit 0, no output


def open_tree(path: str | None, rev: str | None = None) -> "Tree":
    """The kernel tree to analyse: DIR, or the nearest one above the current directory."""
    from vmxlint.tree import Tree

    return Tree.open(path, rev)


def check(tree: "Tree", *, span: str | None, staged: bool, patches: list[str],
          include_existing: bool, jobs: int = 1) -> Outcome:
    """Check a git range, the staged changes, or patch files / stdin against the tree."""
    from vmxlint.series import check as check_mails
    from vmxlint.gitrange import base_for, check_range
    from vmxlint.tree import NESTED_C, TreeError

    if not span and not tree.exists(NESTED_C):
        raise TreeError(f"{tree.describe()}: no {NESTED_C} in this tree")
    if span:
        result = check_range(tree, span, include_existing=include_existing)
        if not result.commits:
            return Outcome()
        source = _commit_sources(tree, list(result.mails), result.commits)
        mails = result.commits
    else:
        if staged:
            mails = _staged(tree)
            if not mails:
                return Outcome(nothing=True)
        else:
            mails = _read_inputs(patches)
        if all(_is_cover(m) for m in mails):
            # b4's series check pipes the cover letter: nothing to check, nothing to say.
            return Outcome()
        base = base_for(tree, mails)
        source = _series_sources(base, mails)
        result = check_mails(mails, base, include_existing=include_existing, jobs=jobs)
    # An input over a bound is a finding (VMX006, exit 1), not unusable input.
    if result.usable == 0 and not any(f.code == "VMX006" for f in result.findings):
        why = next((f.message for f in result.findings if f.code in ("VMX001", "VMX003")),
                   "no usable patch in the input")
        if len(mails) == 1 or all(f.code in ("VMX001", "VMX003") for f in result.findings):
            raise InputError(f"unusable input: {why}")
    return Outcome(result.findings, result.mails, source, list(getattr(result, "notes", [])))


def audit(tree: "Tree", *, baseline: str | None = None,
          write_baseline: str | None = None, selected=lambda code: True) -> Outcome:
    """Every finding of the tree, less those a baseline records; or record them."""
    from vmxlint.analysis import analyse
    from vmxlint.suppress import (SuppressError, read_baseline, without_baselined)
    from vmxlint.suppress import write_baseline as record

    try:
        keys = read_baseline(baseline) if baseline else set()
        analysis = analyse(tree)
        findings = without_baselined(analysis.findings, keys)
        if write_baseline:
            record(write_baseline, [f for f in findings if selected(f.code)])
            findings = []    # recorded: nothing left to report
    except SuppressError as exc:
        raise InputError(str(exc)) from None
    return Outcome(findings, {}, _lookup({None: (tree, tree)}), list(analysis.notes))


def graph(tree: "Tree", field_name: str | None, fmt: str) -> str:
    """The dataflow graph of the entry path (or one field's part of it) as DOT or JSON."""
    import json

    from vmxlint.analysis import entry_path
    from vmxlint.dataflow import build_graph, to_dot, to_json

    _, path = entry_path(tree)
    if path is None:
        raise InputError("nested_vmx_enter_non_root_mode() is missing or unparseable")
    if field_name is not None:
        _known_field(tree, field_name)
    g = build_graph(path, field_name)
    return to_dot(g) if fmt == "dot" else json.dumps(to_json(g), indent=1) + "\n"


def catalogue() -> dict:
    """The rules, by code."""
    from vmxlint.model import load_model

    return load_model().rules


def _read_inputs(names: list[str]):
    from vmxlint.mail import MAX_INPUT, read_mails

    mails = []
    for name in names:
        # Never more than the bound and one byte: a larger input is a VMX006, and reading
        # it whole would cost memory the input chooses.
        if name == "-":
            data = sys.stdin.buffer.read(MAX_INPUT + 1)
            label = "<stdin>"
        else:
            try:
                with open(name, "rb") as fh:
                    data = fh.read(MAX_INPUT + 1)
            except OSError as exc:
                raise InputError(f"{name}: {exc.strerror or exc}") from None
            label = name
        mails.extend(read_mails(_gunzip(data, label), label))
    if not mails:
        raise InputError("no patch or mail in the input")
    return mails


# A lore t.mbox.gz of a long thread is a few MB; anything far beyond is refused.
MAX_GUNZIP = 64 * 1024 * 1024


def _gunzip(data: bytes, label: str) -> bytes:
    """Input that is gzip-compressed (lore's t.mbox.gz), decompressed, with a size bound."""
    if not data.startswith(b"\x1f\x8b"):
        return data
    import zlib

    d = zlib.decompressobj(wbits=31)
    out = bytearray()
    try:
        while data:
            out += d.decompress(data, MAX_GUNZIP + 1 - len(out))
            if len(out) > MAX_GUNZIP:
                raise InputError(f"{label}: more than {MAX_GUNZIP} bytes once decompressed")
            data = d.unconsumed_tail or (d.unused_data if d.eof else b"")
            if d.eof:
                d = zlib.decompressobj(wbits=31) if data.startswith(b"\x1f\x8b") else None
                if d is None:
                    break
    except zlib.error as exc:
        raise InputError(f"{label}: damaged gzip data ({exc})") from None
    return bytes(out)


def _lookup(images: dict) -> "SourceLookup":
    """Read a file from the (pre, post) trees of a finding's patch; None when unknown."""
    def read(patch, image: str, path: str) -> str | None:
        trees = images.get(patch) or images.get(None)
        if trees is None:
            return None
        tree = trees[image == "post"]
        try:
            return tree.read(path) if _inside(tree, path) else None
        except (OSError, ValueError, UnicodeError, LookupError):
            return None
    return read


def _inside(tree, path: str) -> bool:
    """Whether a path (from the input) names a regular file of the tree, not outside it."""
    from pathlib import PurePosixPath

    parts = PurePosixPath(path).parts
    if not path or path.startswith(("/", "-")) or ".." in parts:
        return False
    if path in getattr(tree, "overlay", {}) or tree.rev is not None:
        return True
    if tree.root is None:
        return False
    top = Path(tree.root).resolve()
    full = (top / path).resolve()
    return top in full.parents and full.is_file()


def _series_sources(base, mails) -> "SourceLookup":
    """--show-source for a series: the images of each patch, replayed on first use."""
    images: dict = {}

    def read(patch, image: str, path: str) -> str | None:
        if not images:
            images.update(_replay(base, mails))
        return _lookup(images)(patch, image, path)
    return read


def _replay(base, mails) -> dict:
    from vmxlint.series import patch_ref
    from vmxlint.patch import apply_patch

    images: dict = {None: (base, base)}
    current = base
    for mail in mails:
        if not mail.diff.strip():
            continue
        applied = apply_patch(mail.diff, current)
        if not applied.usable:
            break
        after = current.with_overlay(applied.files)
        images[patch_ref(mail)] = (current, after)
        current = after
    return images


def _commit_sources(tree, refs: list, commits: list[str]) -> "SourceLookup":
    """--show-source for --git A..B: each commit's tree and its parent's, from git objects."""
    from vmxlint.gitrange import parent_of
    from vmxlint.tree import Tree

    images: dict = {}
    for ref, sha in zip(refs, commits):
        images[ref] = (Tree(tree.root, parent_of(tree.root, sha) or sha), Tree(tree.root, sha))
    return _lookup(images)


def _is_cover(mail) -> bool:
    return not mail.diff.strip() and bool(mail.index) and mail.index.startswith("0/")


def _staged(tree):
    """The staged diff of the tree's git checkout, as one mail (none when nothing is staged)."""
    import subprocess

    from vmxlint.mail import read_mails

    proc = subprocess.run(["git", "-C", str(tree.root), "diff", "--cached", "--no-color",
                           "--no-ext-diff", "-U3"], capture_output=True)
    if proc.returncode != 0:
        raise InputError(f"{tree.root}: git diff --cached failed: "
                         f"{proc.stderr.decode(errors='replace').strip().splitlines()[-1:]}")
    if not proc.stdout.strip():
        return []
    return read_mails(proc.stdout, "staged changes")


def _known_field(tree, name: str) -> None:
    """Refuse a --field the tree's VMCS encoding table does not name (with a suggestion)."""
    import difflib

    from vmxlint.facts import load_facts

    names = list(load_facts(tree).fields)
    if name in names:
        return
    close = difflib.get_close_matches(name.upper(), names, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise InputError(f"--field {name}: not a VMCS field of this tree{hint}")
