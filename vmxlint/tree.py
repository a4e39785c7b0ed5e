"""Where kernel files come from: a directory, a git revision, and an in-memory overlay."""
from __future__ import annotations

import functools
import hashlib
import subprocess
from pathlib import Path
from typing import Mapping

from vmxlint.errors import VmxlintError

NESTED_C = "arch/x86/kvm/vmx/nested.c"


def lines(text: str) -> list[str]:
    """The lines of a file's text as vmxlint numbers them: only "\\n" ends one
    (str.splitlines() also ends a line at a form feed, which kernel files hold, and at
    \\r or \\x1c).  The list is shared: read it, never change it."""
    held = _given.get(id(text))
    if held is not None and held[0] is text:
        return held[1]
    return _split(text)


@functools.lru_cache(maxsize=4)     # a patch's pre- and post-image, asked by several stages
def _split(text: str) -> list[str]:
    return text.split("\n")


def given_lines(text: str, bare: list[str]) -> None:
    """Remember the lines of TEXT, made by joining BARE, its lines without their newline
    (a patched file, made from the lines of the file before it): each image of a series
    is then never split again (0.5 ms a 235 KB file), its lines are the list's."""
    if len(_given) >= GIVEN_KEPT:
        _given.pop(next(iter(_given), 0), None)     # (another thread may have taken it)
    _given[id(text)] = (text, bare + [""] if not text or text.endswith("\n") else list(bare))


# The lines given for the last texts made, by identity (the text is held).
_given: dict[int, tuple[str, list[str]]] = {}
GIVEN_KEPT = 64


@functools.lru_cache(maxsize=32)    # the files of a tree and its last images, asked again
def _content_digest(text: str) -> bytes:    # for each key of each image analysed
    return hashlib.sha256(text.encode("utf-8", "replace")).digest()


class TreeError(VmxlintError):
    """The tree cannot be used (not found, not a kernel tree, bad revision)."""


def find_top(start: Path) -> Path | None:
    """Return the nearest directory, from start upwards, that holds nested.c."""
    start = start.resolve()
    for d in (start, *start.parents):
        if (d / NESTED_C).is_file():
            return d
    return None


class Tree:
    """Read-only view of a kernel tree; the overlay (post-image of a patch) wins.

    The tree on disk is never written: patches are applied into ``overlay``.
    """

    def __init__(self, root: Path | None, rev: str | None = None,
                 overlay: Mapping[str, str | None] | None = None) -> None:
        self.root = root
        self.rev = rev
        self.overlay: dict[str, str | None] = dict(overlay or {})
        self._cache: dict[str, str | None] = {}
        self._digests: dict[tuple[str, ...], str] = {}

    @classmethod
    def open(cls, path: str | Path | None = None, rev: str | None = None) -> "Tree":
        """Open a tree at path (or the nearest one upwards from the current directory)."""
        if path is None:
            top = find_top(Path.cwd())
            if top is None:
                raise TreeError(f"no kernel tree found: no {NESTED_C} in the current "
                                "directory or above (use --tree DIR)")
        else:
            top = Path(path)
            if not top.is_dir():
                raise TreeError(f"{path}: not a directory")
        tree = cls(top.resolve(), rev)
        if rev is not None:
            proc = subprocess.run(["git", "-C", str(top), "rev-parse", "--verify", "-q",
                                   f"{rev}^{{commit}}"], capture_output=True, text=True)
            if proc.returncode != 0:
                raise TreeError(f"{rev}: not a git revision in {top}")
        return tree

    def with_overlay(self, files: Mapping[str, str | None]) -> "Tree":
        """A new view with files replaced (None deletes); this one is unchanged.  The two
        share the files read from the tree itself (a series' images read the same
        headers and vmx.c)."""
        merged = dict(self.overlay)
        merged.update(files)
        view = Tree(self.root, self.rev, merged)
        view._cache = self._cache
        return view

    def read_or_none(self, relpath: str) -> str | None:
        """Text of a file, or None when the tree lacks it or it cannot be read: for the
        optional inputs (headers, runtime writers) whose absence the analysis reports."""
        try:
            return self.read(relpath)
        except Exception:          # noqa: BLE001 - an unreadable file counts as missing
            return None

    def read(self, relpath: str) -> str | None:
        """Text of a file, or None when the tree does not have it."""
        if relpath in self.overlay:
            return self.overlay[relpath]
        if relpath not in self._cache:
            self._cache[relpath] = self._read_base(relpath)
        return self._cache[relpath]

    def _read_base(self, relpath: str) -> str | None:
        if self.root is None:
            return None
        if self.rev is not None:
            proc = subprocess.run(["git", "-C", str(self.root), "show", f"{self.rev}:{relpath}"],
                                  capture_output=True)
            if proc.returncode != 0:
                return None
            return proc.stdout.decode("utf-8", "replace")
        p = self.root / relpath
        try:
            return p.read_bytes().decode("utf-8", "replace")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError):
            return None

    def exists(self, relpath: str) -> bool:
        return self.read(relpath) is not None

    def digest(self, relpaths: list[str]) -> str:
        """Content hash of the named files, for the cache (kept: a tree's files do not
        change, and an analysis asks for the same lists several times)."""
        asked = tuple(relpaths)
        hit = self._digests.get(asked)
        if hit is None:
            hit = self._digests[asked] = self._digest(asked)
        return hit

    def _digest(self, relpaths: tuple[str, ...]) -> str:
        h = hashlib.sha256()
        for rp in relpaths:
            text = self.read(rp)
            h.update(rp.encode())
            h.update(b"\0" if text is None else _content_digest(text))
            h.update(b"\1")
        return h.hexdigest()

    def describe(self) -> str:
        base = str(self.root) if self.root else "<none>"
        return f"{base}@{self.rev}" if self.rev else base
