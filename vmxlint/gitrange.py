"""Git objects as patches and trees: ``--git A..B``, and the pre-image of a held patch.

``check --git A..B`` turns each commit of the range into the mail ``git format-patch``
writes for it and checks it against its parent's tree, all read from git objects: the
work tree is never touched.  A patch given on stdin or as a file whose changes the tree
already holds (``b4 prep --check``, ``b4 review``, CI on a pushed branch) is checked
against the pre-image blobs its ``index <pre>..<post>`` lines name.
"""
from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import Iterable

from msgspec import Struct, structs

from vmxlint.memo import LazyPattern
from vmxlint.patch import index_lines, null_blob
from vmxlint.tree import Tree, TreeError

__all__ = ["GitError", "check_range", "range_commits", "commit_mail", "index_lines",
           "preimage_tree", "base_for"]

_SHA_RE = LazyPattern(r"^[0-9a-f]{7,64}$")
# Only git's extended header lines are read here; hunks are patch.py's business.


class GitError(TreeError):
    """A git command failed, or a range or revision is not usable."""


def git(root: Path, *args: str, check: bool = True) -> bytes:
    """Run git in root and return its stdout; GitError (one line) when it fails."""
    try:
        proc = subprocess.run(["git", "-C", str(root), *args], capture_output=True,
                              stdin=subprocess.DEVNULL)
    except OSError as exc:
        raise GitError(f"cannot run git: {exc.strerror or exc}") from None
    if proc.returncode != 0 and check:
        lines = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        why = lines[-1] if lines else f"exit status {proc.returncode}"
        raise GitError(f"git {args[0]} failed in {root}: {why}")
    return proc.stdout if proc.returncode == 0 else b""


def is_repo(root: Path | None) -> bool:
    """Whether root is (inside) a git work tree."""
    if root is None:
        return False
    return git(root, "rev-parse", "--is-inside-work-tree", check=False).strip() == b"true"


# -- --git A..B -----------------------------------------------------------------------------

def range_commits(root: Path, spec: str) -> list[str]:
    """The non-merge commits of a revision range, oldest first, as git format-patch takes them."""
    if not spec or spec.startswith("-") or any(c.isspace() for c in spec):
        raise GitError(f"--git {spec!r}: not a revision range (A..B)")
    if ".." not in spec:
        raise GitError(f"--git {spec}: give a range A..B (HEAD~1..HEAD for the last commit)")
    if not is_repo(root):
        raise GitError(f"{root}: not a git repository, so --git cannot be used")
    out = git(root, "rev-list", "--reverse", "--no-merges", spec, "--")
    return out.decode("ascii", "replace").split()


def commit_mail(root: Path, sha: str):
    """The one-message mbox ``git format-patch -1 --stdout`` writes for a commit, as a Mail."""
    from vmxlint.mail import read_mails

    data = git(root, "-c", "format.signature=", "-c", "format.coverLetter=false",
               "format-patch", "-1", "--stdout", "--no-color", sha, "--")
    mails = read_mails(data, f"commit {sha[:12]}")
    return mails[0]


def parent_of(root: Path, sha: str) -> str | None:
    """The first parent of a commit, or None for a root commit."""
    out = git(root, "rev-parse", "--verify", "-q", f"{sha}^1", check=False).strip()
    return out.decode("ascii") if out else None


class RangeResult(Struct):
    """What ``--git A..B`` found: the shape of ``series.CheckResult``, plus the commits."""

    findings: list
    mails: dict
    usable: int
    commits: list[str]


def check_range(tree: Tree, spec: str, include_existing: bool = False) -> RangeResult:
    """Check each commit of spec against its parent, from git objects."""
    from vmxlint.series import check

    if tree.root is None:
        raise GitError("--git needs a kernel tree that is a git repository")
    commits = range_commits(tree.root, spec)
    out = RangeResult(findings=[], mails={}, usable=0, commits=commits)
    last = None     # each commit's pre-image is usually the last one's post-image: reused
    for i, sha in enumerate(commits, 1):
        parent = parent_of(tree.root, sha)
        if parent is None:
            raise GitError(f"--git {spec}: {sha[:12]} is a root commit, with no parent "
                           "to check it against")
        mail = commit_mail(tree.root, sha)
        if len(commits) > 1:
            mail = structs.replace(mail, index=f"{i}/{len(commits)}")
        result = check([mail], Tree(tree.root, parent), include_existing=include_existing,
                       base=last)
        last = result.last
        out.findings.extend(result.findings)
        out.mails.update(result.mails)
        out.usable += result.usable
    return out


# -- a patch the tree already holds ------------------------------------------------------------

def _safe(path: str | None) -> bool:
    return path is None or (not path.startswith("/") and ".." not in path.split("/")
                            and "\0" not in path)


def _blob(root: Path, sha: str) -> str | None:
    """The text of a blob named by a (possibly abbreviated) id, or None when absent."""
    if not _SHA_RE.match(sha):
        return None
    kind = git(root, "cat-file", "-t", sha, check=False).strip()
    if kind != b"blob":
        return None
    return git(root, "cat-file", "-p", sha).decode("utf-8", "replace")


def _blob_ids(text: str) -> tuple[str, str]:
    """The sha1 and sha256 object ids git gives this file content."""
    data = text.encode("utf-8", "surrogateescape")
    head = f"blob {len(data)}\0".encode()
    return hashlib.sha1(head + data).hexdigest(), hashlib.sha256(head + data).hexdigest()


def _holds(tree: Tree, files: dict[str, str]) -> bool:
    """Whether each file is at the post-image blob the last patch touching it names."""
    for path, post in files.items():
        text = tree.read(path)
        if null_blob(post):
            if text is not None:
                return False
        elif text is None or not any(i.startswith(post) for i in _blob_ids(text)):
            return False
    return bool(files)


def preimage_tree(tree: Tree, mails: Iterable) -> Tree | None:
    """The tree as it was before a series it holds: each file at the pre-image blob of the
    first patch that touches it.  None when a diff has no index line or a blob is absent."""
    if tree.root is None or not is_repo(tree.root):
        return None
    overlay: dict[str, str | None] = {}
    for mail in mails:
        if not mail.diff.strip():
            continue
        entries = index_lines(mail.diff)
        if not entries:
            return None
        for e in entries:
            if not (_safe(e.old) and _safe(e.new)):
                return None
            if e.new is not None and e.new != e.old:
                overlay.setdefault(e.new, None)     # created (or renamed to) by the series
            if e.old is not None and e.old not in overlay:
                text = _blob(tree.root, e.pre)
                if text is None:
                    return None
                overlay[e.old] = text
    return tree.with_overlay(overlay) if overlay else None


def _last_posts(mails: Iterable) -> dict[str, str]:
    posts: dict[str, str] = {}
    for mail in mails:
        for e in index_lines(mail.diff):
            if e.old is not None and e.old != e.new:
                posts[e.old] = "0" * 7
            if e.new is not None:
                posts[e.new] = e.post
    return posts


def _applies(tree: Tree, mails: list) -> bool:
    """Whether the series applies to the tree as it is (no VMX003, every patch usable)."""
    from vmxlint.patch import apply_patch

    current = tree
    for mail in mails:
        if not mail.diff.strip():
            continue
        applied = apply_patch(mail.diff, current)
        if not applied.usable or any(p.code == "VMX003" for p in applied.problems):
            return False
        current = current.with_overlay(applied.files)
    return True


def base_for(tree: Tree, mails: list) -> Tree:
    """The tree to apply mails to: the tree itself, or, when it already holds them (its
    files are at the diffs' post-image blobs, or the series does not apply to it), the
    pre-image the diffs' index lines name."""
    diffs = [m.diff for m in mails if m.diff.strip()]
    # A diff without index lines names no pre-image (`preimage_tree`): the tree is the
    # base, and git (a process of its own, 2 ms of a check) need not be asked anything.
    if not diffs or not all(index_lines(d) for d in diffs) or not is_repo(tree.root):
        return tree
    if not _holds(tree, _last_posts(mails)) and _applies(tree, mails):
        return tree
    return preimage_tree(tree, mails) or tree
