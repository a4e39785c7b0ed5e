"""Unidiff parsing, repair of damaged hunks, and in-memory application.

A diff is parsed with unidiff.  When unidiff rejects it (context lines that lost
their leading space in a web archive, wrong hunk counts, truncation), or when a
hunk's pre-image is not in the tree as written, the hunk is read leniently and
located in the tree ignoring whitespace; the tree's own text of its context and
removed lines is then used (VMX002, info).  Only a hunk with no unique place in
the tree is reported: VMX001 when the hunk was damaged, VMX003 when it was well
formed.  The tree is only read, never written.
"""
from __future__ import annotations

import re

import unidiff
from msgspec import Struct, field

from vmxlint.memo import LazyPattern
from vmxlint.tree import Tree, given_lines
from vmxlint.tree import lines as text_lines

__all__ = ["Applied", "Problem", "apply_patch"]

UNUSABLE = "VMX001"
REPAIRED = "VMX002"
NOT_APPLIED = "VMX003"

# A lenient match may ignore up to this many context lines at the hunk's ends
# (GNU patch's "fuzz"), or half the hunk's context when that is more, but never
# more than MAX_FUZZ (the search is quadratic in it).
MIN_FUZZ = 2
MAX_FUZZ = 8
# When a damaged hunk matches several places, the stated line picks one only
# when exactly one candidate lies this close to it.
NEAR_LINES = 100

# A file's first header line as the lenient reader takes it: any prefixes (mnemonic
# ``i/`` ``w/``, none), trailing blanks a mail client left.
_DIFF_GIT = LazyPattern(r"^diff --git (\S+) (\S+)\s*$")
_VERSION = LazyPattern(r"^\d+(\.\d+)+\S*\s*$")


class Problem(Struct, frozen=True):
    """Something wrong with the patch itself, in the shape of a finding."""

    code: str
    path: str
    line: int
    message: str


class Applied(Struct):
    """The result of applying one patch in memory."""

    files: dict[str, str | None] = field(default_factory=dict)
    pre: dict[str, str | None] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    added_lines: dict[str, set[int]] = field(default_factory=dict)
    removed_lines: dict[str, set[int]] = field(default_factory=dict)
    # path -> removed pre-image line -> the post-image line where it stood
    removed_at: dict[str, dict[int, int]] = field(default_factory=dict)
    # path -> (first, last) post-image line of each hunk, context included
    hunk_spans: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    usable: bool = False


# -- the diff as data -------------------------------------------------------------

class _Hunk(Struct):
    old_start: int
    old_len: int
    lines: list[tuple[str, str]]      # (" " | "-" | "+", text without line end)
    no_eol: bool = False              # the post-image's last added line has no newline
    damaged: bool = False             # read leniently: lost prefixes or wrong counts

    @property
    def header(self) -> str:
        return f"@@ -{self.old_start},{self.old_len} @@"


class _FilePatch(Struct):
    old: str | None                   # None for a new file
    new: str | None                   # None for a deleted file
    hunks: list[_Hunk] = field(default_factory=list)
    binary: bool = False
    header_only: bool = False         # new/deleted/renamed without hunks
    copy: bool = False                # a copy: the old file stays


def _strip_prefix(path: str) -> str | None:
    """Path of a diff header without a/ b/ and timestamps; None for /dev/null."""
    path = path.split("\t", 1)[0].strip()
    if path.startswith('"') and path.endswith('"') and len(path) >= 2:
        path = path[1:-1]
    if path == "/dev/null" or not path:
        return None
    path = git_path(path)
    if path.startswith(("a/", "b/")):
        return path[2:]
    return path


def git_path(path: str) -> str:
    """A path as git reads it: repeated slashes squashed, "." components dropped.

    An absolute path keeps its leading "/" so that it is still refused as unsafe.
    """
    parts = [p for p in path.split("/") if p not in ("", ".")]
    return ("/" if path.startswith("/") else "") + "/".join(parts)


# The header lines of a git diff that name a file and its blobs (git diff --full-index).
_GIT_HEADER = re.compile(r"^diff --git a/(\S+) b/(\S+)$")
_INDEX = re.compile(r"^index ([0-9a-f]{7,64})\.\.([0-9a-f]{7,64})(?: [0-7]{6})?$")
_MINUS = LazyPattern(r"^--- (?:a/(\S+)|/dev/null)\s*$")
_PLUS = LazyPattern(r"^\+\+\+ (?:b/(\S+)|/dev/null)\s*$")
_NULL_BLOB = LazyPattern(r"^0+$")


def null_blob(blob: str) -> bool:
    """An all-zero blob id: the side of an ``index`` line where the file does not exist."""
    return _NULL_BLOB.match(blob) is not None


class IndexLine(Struct, frozen=True):
    """One file of a git diff: its paths and the blob ids of its ``index`` line."""

    old: str | None        # None for a new file
    new: str | None        # None for a deleted file
    pre: str
    post: str


def index_lines(diff: str) -> list[IndexLine]:
    """The ``index <pre>..<post>`` line of each file of a git diff (header lines only)."""
    out: list[IndexLine] = []
    names: tuple[str | None, str | None] = (None, None)
    blobs: tuple[str, str] | None = None
    minus: str | None = None
    for line in diff.split("\n"):
        if m := _GIT_HEADER.match(line):
            names, blobs = (m.group(1), m.group(2)), None
        elif blobs is None and (m := _INDEX.match(line)):
            blobs = (m.group(1), m.group(2))
        elif blobs is not None and (m := _MINUS.match(line)):
            minus = m.group(1)
        elif blobs is not None and (m := _PLUS.match(line)):
            old = None if null_blob(blobs[0]) else (minus or names[0])
            new = None if null_blob(blobs[1]) else (m.group(1) or names[1])
            out.append(IndexLine(old, new, blobs[0], blobs[1]))
            blobs, minus = None, None
    return out


# -- the diff as its author wrote it, for quoting (the review reply) ---------------------
_DIFF_GIT_ANY = LazyPattern(r"^diff --git a/(.*) b/(.*)$")
_HUNK_HEADER = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@(.*)$")


class DiffLine(Struct):
    """A hunk line; ``old``/``new`` are the pre- and post-image line numbers at it."""

    text: str
    old: int
    new: int

    @property
    def kind(self) -> str:
        return self.text[:1] or " "


class DiffHunk(Struct):
    header: str
    section: str
    lines: list[DiffLine] = field(default_factory=list)


class FileDiff(Struct):
    header: list[str]
    old_path: str | None
    new_path: str | None
    hunks: list[DiffHunk] = field(default_factory=list)


def _quoted_path(name: str) -> str | None:
    name = name.split("\t", 1)[0].strip()
    if name == "/dev/null":
        return None
    return name[2:] if name[:2] in ("a/", "b/") else name


def _read_quoted_hunk(m: re.Match[str], lines: list[str], i: int) -> tuple[DiffHunk, int]:
    """Read the lines of one hunk from ``lines[i:]``; stop early on a damaged line."""
    old, new = int(m.group(1)), int(m.group(3))
    old_left = int(m.group(2) or 1)
    new_left = int(m.group(4) or 1)
    hunk = DiffHunk(m.group(0), m.group(5))
    while i < len(lines) and (old_left > 0 or new_left > 0):
        text = lines[i]
        kind = text[:1] or " "
        if kind == "-" and old_left > 0:
            old_left -= 1
        elif kind == "+" and new_left > 0:
            new_left -= 1
        elif kind == " " and old_left > 0 and new_left > 0:
            old_left -= 1
            new_left -= 1
        elif kind != "\\":
            break
        hunk.lines.append(DiffLine(text, old, new))
        old += kind in "- "
        new += kind in "+ "
        i += 1
    if i < len(lines) and lines[i].startswith("\\"):
        hunk.lines.append(DiffLine(lines[i], old, new))
        i += 1
    return hunk, i


def file_diffs(body: str) -> list[FileDiff]:
    """The file diffs and hunks of a mail body as written, for quoting them back in a
    review reply; damage is tolerated (a damaged hunk ends where it stops making sense)."""
    lines = [ln.rstrip("\r") for ln in body.split("\n")]
    files: list[FileDiff] = []
    cur: FileDiff | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        git = _DIFF_GIT_ANY.match(line)
        hunk = _HUNK_HEADER.match(line)
        if git:
            cur = FileDiff([line], git.group(1), git.group(2))
            files.append(cur)
        elif line.startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ "):
            old, new = _quoted_path(line[4:]), _quoted_path(lines[i + 1][4:])
            if cur is not None and not cur.hunks and len(cur.header) == 1:
                cur.old_path, cur.new_path = old, new
            else:
                cur = FileDiff([line, lines[i + 1]], old, new)
                files.append(cur)
            i += 1
        elif hunk and cur is not None:
            h, i = _read_quoted_hunk(hunk, lines, i + 1)
            cur.hunks.append(h)
            continue
        i += 1
    return files


def _git_headers(diff: str) -> dict[str, tuple[str, str]]:
    """Copies and renames of a git diff: {new path: ("copy" | "rename", old path)}."""
    out: dict[str, tuple[str, str]] = {}
    source: tuple[str, str] | None = None
    for line in diff.split("\n"):
        if line.startswith("diff --git "):
            source = None
        for kind in ("copy", "rename"):
            if line.startswith(f"{kind} from "):
                source = (kind, git_path(line[len(kind) + 6:].strip()))
            elif line.startswith(f"{kind} to ") and source and source[0] == kind:
                out[git_path(line[len(kind) + 4:].strip())] = source
    return out


def _cut_trailer(diff: str) -> str:
    """The diff without text after its last hunk (a base-commit: trailer, a signature).

    Hunks are read by their header counts; when a hunk body does not add up, the diff is
    returned unchanged for the lenient reader.
    """
    lines = diff.split("\n")
    end: int | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        m = _HUNK_HEADER.match(line)
        if not m:
            if end is not None and _is_boundary(lines, i):
                end = None              # another file follows: the trailer is not here
            i += 1
            continue
        old_len = int(m.group(2)) if m.group(2) is not None else 1
        new_len = int(m.group(4)) if m.group(4) is not None else 1
        i += 1
        pre = post = 0
        while i < len(lines) and (pre < old_len or post < new_len):
            tag = lines[i][:1]
            if tag not in ("-", "+", " ", "", "\\"):
                return diff
            pre += tag != "+" and tag != "\\"
            post += tag != "-" and tag != "\\"
            i += 1
        if pre != old_len or post != new_len:
            return diff
        while i < len(lines) and lines[i].startswith("\\"):
            i += 1
        end = i
    if end is None:
        return diff
    return "\n".join(lines[:end]) + "\n"


# -- parsing with unidiff ---------------------------------------------------------

def _from_unidiff(diff: str) -> list[_FilePatch] | None:
    """Parse a well-formed diff with unidiff; None when it rejects the text."""
    try:
        patchset = unidiff.PatchSet(diff)
    except Exception:        # noqa: BLE001 - unidiff raises more than UnidiffParseError on junk
        return None
    files = []
    moved = _git_headers(diff)
    for pf in patchset:
        fp = _FilePatch(old=_strip_prefix(pf.source_file or ""),
                        new=_strip_prefix(pf.target_file or ""),
                        binary=bool(pf.is_binary_file))
        fp.hunks = [_convert_hunk(h) for h in pf]
        fp.header_only = not fp.hunks
        if fp.new in moved:
            kind, fp.old = moved[fp.new]
            fp.copy = kind == "copy"
        files.append(fp)
    return files


def _convert_hunk(hunk: unidiff.Hunk) -> _Hunk:
    lines: list[tuple[str, str]] = []
    no_eol = False
    for line in hunk:
        kind = line.line_type
        text = line.value.rstrip("\n").rstrip("\r")
        if kind == "\\":
            no_eol = no_eol or bool(lines and lines[-1][0] in "+ ")
            continue
        lines.append((kind if kind in ("+", "-") else " ", text))
    return _Hunk(hunk.source_start, hunk.source_length, lines, no_eol=no_eol)


# -- lenient parsing --------------------------------------------------------------

def _lenient_parse(diff: str) -> tuple[list[_FilePatch], list[Problem]]:
    """Read a damaged diff: file headers, and hunks bounded by their header counts."""
    lines = [ln.rstrip("\r") for ln in diff.split("\n")]
    lines = lines[:_signature_at(lines)]
    files: list[_FilePatch] = []
    problems: list[Problem] = []
    cur: _FilePatch | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        m = _DIFF_GIT.match(line)
        if m:
            cur = _FilePatch(_strip_prefix(m.group(1)), _strip_prefix(m.group(2)),
                             header_only=True)
            files.append(cur)
        elif line.startswith("--- ") and nxt.startswith("+++ "):
            if cur is None or cur.hunks:
                cur = _FilePatch(None, None)
                files.append(cur)
            cur.old, cur.new = _strip_prefix(line[4:]), _strip_prefix(nxt[4:])
            cur.header_only = False
            i += 1
        elif cur is not None:
            _file_header_line(cur, line)
        if line.startswith("@@"):
            if cur is None:
                problems.append(Problem(UNUSABLE, "", 0, "hunk without a file header"))
                i = _skip_hunk(lines, i + 1)
                continue
            hunk, i = _read_hunk(lines, i)
            if hunk is None:
                problems.append(Problem(UNUSABLE, cur.new or cur.old or "", 0,
                                        f"malformed hunk header: {line[:60]}"))
            else:
                cur.hunks.append(hunk)
                cur.header_only = False
            continue
        i += 1
    return files, problems


def _file_header_line(cur: _FilePatch, line: str) -> None:
    """Apply a git extended header line (new/deleted/rename/binary) to cur."""
    if line.startswith("new file mode"):
        cur.old = None
    elif line.startswith("deleted file mode"):
        cur.new = None
    elif line.startswith(("rename from ", "copy from ")):
        cur.old = git_path(line.split(" ", 2)[2].strip())
        cur.copy = line.startswith("copy")
    elif line.startswith(("rename to ", "copy to ")):
        cur.new = git_path(line.split(" ", 2)[2].strip())
    elif line.startswith(("GIT binary patch", "Binary files ")):
        cur.binary = True


def _is_boundary(lines: list[str], i: int) -> bool:
    """Whether lines[i] ends a hunk body: the next hunk or the next file."""
    line = lines[i]
    if line.startswith(("@@ -", "diff ", "Index: ", "GIT binary patch")):
        return True
    return line.startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ ")


def _signature_at(lines: list[str]) -> int:
    """Index of the mail signature ("-- " then the git version), or len(lines)."""
    next_text = ""
    for i in range(len(lines) - 1, -1, -1):
        line = lines[i]
        if line in ("-- ", "--") and (line == "-- " or _VERSION.match(next_text)):
            return i
        if line.startswith(("+", "-", "@@", "diff ")):
            return len(lines)           # diff lines follow: not a signature
        if line.strip():
            next_text = line
    return len(lines)


def _skip_hunk(lines: list[str], i: int) -> int:
    while i < len(lines) and not _is_boundary(lines, i):
        i += 1
    return i


def _read_hunk(lines: list[str], i: int) -> tuple[_Hunk | None, int]:
    """Read the hunk whose header is lines[i]; return it and the index after it."""
    m = _HUNK_HEADER.match(lines[i])
    end = _skip_hunk(lines, i + 1)
    if not m:
        return None, end
    old_start = int(m.group(1))
    old_len = int(m.group(2)) if m.group(2) is not None else 1
    new_len = int(m.group(4)) if m.group(4) is not None else 1
    body = lines[i + 1:end]
    hunk = _Hunk(old_start, old_len, [])
    pre = post = 0
    k = 0
    while k < len(body) and (pre < old_len or post < new_len):
        pre, post = _take_line(hunk, body[k], pre, post)
        k += 1
    if pre != old_len or post != new_len:
        hunk.damaged = True           # truncated, or counts that do not add up
    # Counts too small (git apply --recount): keep the rest only when it is all diff
    # lines up to the next header, so trailing page text is not mistaken for a hunk.
    rest = body[k:]
    while rest and rest[-1] == "":
        rest.pop()
    if any(ln[:1] in ("+", "-") for ln in rest) and all(
            ln == "" or ln[:1] in ("+", "-", " ", "\\") for ln in rest):
        hunk.damaged = True
        for line in rest:
            pre, post = _take_line(hunk, line, pre, post)
    return hunk, end


def _take_line(hunk: _Hunk, line: str, pre: int, post: int) -> tuple[int, int]:
    """Add one body line to hunk; return the updated pre/post counts."""
    tag = line[:1]
    if tag == "\\":
        hunk.no_eol = hunk.no_eol or bool(hunk.lines and hunk.lines[-1][0] in "+ ")
        return pre, post
    if tag == "-":
        hunk.lines.append(("-", line[1:]))
        return pre + 1, post
    if tag == "+":
        hunk.lines.append(("+", line[1:]))
        return pre, post + 1
    if tag == " ":
        hunk.lines.append((" ", line[1:]))
    else:
        # A context line that lost its leading whitespace (or an empty one).
        hunk.lines.append((" ", line))
        hunk.damaged = hunk.damaged or line != ""
    return pre + 1, post + 1


# -- locating a hunk in the tree ----------------------------------------------------

class _Place(Struct):
    start: int                        # 0-based index of the core's first pre-image line
    core: list[tuple[str, str]]       # the hunk lines that were matched (fuzz trims context)
    exact: bool
    fuzz: int = 0                     # context lines ignored at the hunk's ends
    lead: int = 0                     # of which before the core


def _norm(text: str) -> str:
    return "".join(text.split())


def _pre(lines: list[tuple[str, str]]) -> list[str]:
    return [text for tag, text in lines if tag != "+"]


def _expected(hunk: _Hunk, offset: int) -> int:
    """0-based index where the hunk's pre-image should start, after earlier hunks' drift."""
    start = hunk.old_start if hunk.old_len == 0 else hunk.old_start - 1
    return max(start + offset, 0)


def _post(lines: list[tuple[str, str]]) -> list[str]:
    return [text for tag, text in lines if tag != "-"]


def _removes(lines: list[tuple[str, str]]) -> bool:
    return any(tag == "-" for tag, _ in lines)


def _nearest(cands: list[int], want: int) -> tuple[int | None, int]:
    """The one candidate nearest to want (None on a tie) and its distance."""
    if not cands:
        return None, -1
    best = min(abs(p - want) for p in cands)
    nearest = [p for p in cands if abs(p - want) == best]
    return (nearest[0] if len(nearest) == 1 else None), best


def _already(pre_c: list[int], post_c: list[int], want: int) -> bool:
    """Whether the hunk's post-image stands where its pre-image should be.

    When both stand as near (a deletion at the end of a file leaves a post-image that
    is a prefix of its pre-image), the pre-image wins, as git apply would apply it.
    """
    if not post_c:
        return False
    if not pre_c:
        return True
    return _nearest(post_c, want)[1] < _nearest(pre_c, want)[1]


class _Refused(Exception):
    """A hunk that has no place in the tree; the message says why."""


def _find_exact(hunk: _Hunk, orig: list[str], index: "_Index", lo: int,
                want: int) -> _Place | None:
    """The nearest exact occurrence of the pre-image at or after lo.

    Raises _Refused when the post-image stands there instead (already applied).
    """
    pre, post = _pre(hunk.lines), _post(hunk.lines)
    if not pre:
        if any(orig):
            raise _Refused("adds lines with no context to anchor them in the tree")
        return _Place(min(max(want, lo), len(orig)), hunk.lines, True)
    pre_c = _occurrences(pre, orig, index, lo)
    post_c = _occurrences(post, orig, index, lo) if post else []
    if _already(pre_c, post_c, want):
        raise _Refused("is already applied: its post-image stands in the tree")
    start = _nearest(pre_c, want)[0]
    return _Place(start, hunk.lines, True) if start is not None else None


def _context_ends(lines: list[tuple[str, str]]) -> tuple[int, int]:
    """Number of context lines before the first change and after the last one."""
    changed = [k for k, (tag, _) in enumerate(lines) if tag != " "]
    if not changed:
        return len(lines), 0
    return changed[0], len(lines) - 1 - changed[-1]


def _find_lenient(hunk: _Hunk, norm: list[str], index: "_Index", lo: int,
                  want: int) -> tuple[_Place | None, int]:
    """Locate the hunk ignoring whitespace; trim end context only when it removes lines.

    Returns the place, or None and the number of candidates (0: nowhere, >1: ambiguous).
    Raises _Refused when the post-image stands at the hunk's place (already applied).
    """
    pattern = [_norm(t) for t in _pre(hunk.lines)]
    post = [_norm(t) for t in _post(hunk.lines)]
    if any(pattern) and any(post):
        pre_c = _occurrences(pattern, norm, index, lo)
        post_c = _occurrences(post, norm, index, lo)
        if _already(pre_c, post_c, want):
            raise _Refused("is already applied: its post-image stands in the tree")
    lead, trail = _context_ends(hunk.lines)
    max_fuzz = min(MAX_FUZZ, max(MIN_FUZZ, (lead + trail + 1) // 2))
    if not _removes(hunk.lines):
        max_fuzz = 0                # an addition is anchored by its context alone
    for total in range(0, min(lead + trail, max_fuzz) + 1):
        found: dict[int, _Place] = {}
        for drop_lead in range(max(0, total - trail), min(lead, total) + 1):
            core = hunk.lines[drop_lead:len(hunk.lines) - (total - drop_lead)]
            pattern = [_norm(t) for t in _pre(core)]
            if not any(pattern):
                continue          # nothing left to anchor the hunk on
            for p in _occurrences(pattern, norm, index, lo):
                found.setdefault(p - drop_lead, _Place(p, core, False, total, drop_lead))
        if len(found) == 1:
            return next(iter(found.values())), 1
        if len(found) > 1:
            pick = _tie_break(list(found), want)
            return (found[pick], 1) if pick is not None else (None, len(found))
    return None, 0


def _fuzz_note(hunk: _Hunk, place: _Place, bare: list[str]) -> str:
    """Name the first end-context line of the hunk that differs from the tree."""
    trail = place.fuzz - place.lead
    first = place.start - place.lead
    pairs = [(first + k, hunk.lines[k][1]) for k in range(place.lead)]
    after = place.start + len(_pre(place.core))
    tail = hunk.lines[len(hunk.lines) - trail:] if trail else []
    pairs += [(after + k, text) for k, (_, text) in enumerate(tail)]
    for at, text in pairs:
        if 0 <= at < len(bare) and _norm(bare[at]) != _norm(text):
            return f"; context line {at + 1} is `{bare[at].strip()[:60]}` in the tree"
        if not 0 <= at < len(bare):
            return f"; context line {at + 1} is past the end of the file"
    return ""


def _tie_break(starts: list[int], want: int) -> int | None:
    """The one start the stated line clearly means, or None.

    That is the only candidate within NEAR_LINES of the stated line, or else the
    only one exactly at it (the tree is then the one the patch was made on).
    """
    near = [s for s in starts if abs(s - want) <= NEAR_LINES]
    if len(near) == 1:
        return near[0]
    exact = [s for s in near if s == want]
    return exact[0] if len(exact) == 1 else None


def _occurrences(pattern: list[str], lines: list[str], index: "_Index",
                 lo: int) -> list[int]:
    """Start positions >= lo where lines hold pattern (anchored on its longest line, the
    likeliest to be rare: a blank line or a lone "}" is everywhere)."""
    n = len(pattern)
    anchor = max(range(n), key=lambda k: len(pattern[k]))
    starts = (q - anchor for q in index[pattern[anchor]])
    return [p for p in starts if p >= lo and lines[p:p + n] == pattern]


class _Index(dict):
    """Positions of each distinct line asked about, found when first asked: a patch asks
    about a few dozen lines of a file of thousands."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__()
        self._lines = lines

    def __missing__(self, value: str) -> list[int]:
        found: list[int] = []
        at = -1
        try:
            while True:
                at = self._lines.index(value, at + 1)     # a scan in C
                found.append(at)
        except ValueError:
            pass
        self[value] = found
        return found


# -- applying -----------------------------------------------------------------------

def _split_lines(text: str) -> tuple[list[str], list[str]]:
    """The lines with their "\\n" and without it (only "\\n" ends a line: kernel files
    hold form feeds); both are read, never changed."""
    split = text_lines(text)        # a patched file's are the ones it was joined from
    bare = split[:-1] if not split[-1] else split   # ends with a newline, or is empty
    made = _MADE.get(text)
    if made is not None:
        return made, bare
    if bare is not split:
        return [p + "\n" for p in bare], bare
    return [p + "\n" for p in bare[:-1]] + [bare[-1]], bare


def _join(lines: list[str], bare: list[str]) -> str:
    """The text of lines, each but the last ended by a newline if it lacks one (no line
    holds a newline but at its end).  The text's lines are kept for the next patch."""
    text = "".join(lines)
    ended = text.count("\n")
    if ended == len(lines) or (ended == len(lines) - 1 and lines[-1]
                               and not lines[-1].endswith("\n")):
        _MADE[text] = lines             # what _split_lines would make of the text
        given_lines(text, bare)
        while len(_MADE) > _MADE_KEPT:
            _MADE.pop(next(iter(_MADE), ""), None)   # another thread may have dropped it
        return text
    fixed = [ln if ln.endswith("\n") or k == len(lines) - 1 else ln + "\n"
             for k, ln in enumerate(lines)]
    return "".join(fixed)


# The lines of the last texts a patch made: a series applies each patch to the text the
# one before made, and splitting a file of thousands of lines again cost more than the
# rest of applying a patch.  Never changed once made.
_MADE: dict[str, list[str]] = {}
_MADE_KEPT = 4


class _FileResult(Struct):
    post: list[str]
    bare: list[str]             # post's lines without their newline
    added: set[int]
    removed: set[int]
    removed_at: dict[int, int]
    spans: list[tuple[int, int]]
    applied: int
    repaired: int
    fuzzed: int
    first_repair: int
    problems: list[Problem]
    note: str = ""


def _apply_file(fp: _FilePatch, path: str, orig_text: str) -> _FileResult:
    """Apply fp's hunks to orig_text; hunks that find no place are reported."""
    orig, bare = _split_lines(orig_text)
    bare_index = _Index(bare)
    lenient: list = []      # normalised lines and their index, made when a hunk needs them
    res = _FileResult([], [], set(), set(), {}, [], 0, 0, 0, 0, [])
    cursor = offset = 0
    for hunk in fp.hunks:
        want = _expected(hunk, offset)
        try:
            place = None if hunk.damaged else _find_exact(hunk, bare, bare_index, cursor, want)
            count = 1
            if place is None:
                if not lenient:
                    norm = [_norm(ln) for ln in bare]
                    lenient[:] = [norm, _Index(norm)]
                place, count = _find_lenient(hunk, lenient[0], lenient[1], cursor, want)
        except _Refused as why:
            res.problems.append(Problem(NOT_APPLIED, path, hunk.old_start,
                                        f"hunk {hunk.header} {why}"))
            continue
        if place is None:
            res.problems.append(_unplaced(hunk, path, count))
            continue
        offset = place.start - place.lead - (want - offset)
        res.post.extend(orig[cursor:place.start])
        res.bare.extend(bare[cursor:place.start])
        first = len(res.post) + 1
        cursor = _emit(place, hunk, orig, bare, res)
        res.spans.append((first, max(first, len(res.post))))
        if hunk.damaged or not place.exact:
            res.repaired += 1
            res.fuzzed += place.fuzz > 0
            res.first_repair = res.first_repair or place.start + 1
            if place.fuzz and not res.note:
                res.note = _fuzz_note(hunk, place, bare)
    res.post.extend(orig[cursor:])
    res.bare.extend(bare[cursor:])
    return res


def _emit(place: _Place, hunk: _Hunk, orig: list[str], bare: list[str],
          res: _FileResult) -> int:
    """Write the hunk's post-image at place into res; return the next pre-image index."""
    cur = place.start
    last_add = max((k for k, (tag, _) in enumerate(place.core) if tag == "+"), default=-1)
    for k, (tag, text) in enumerate(place.core):
        if tag == "+":
            eol = "" if hunk.no_eol and k == last_add and cur >= len(orig) else "\n"
            res.post.append(text + eol)
            res.bare.append(text)
            res.added.add(len(res.post))
        elif cur < len(orig):
            if tag == " ":
                res.post.append(orig[cur])      # the tree's exact text, not the mail's
                res.bare.append(bare[cur])
            else:
                res.removed.add(cur + 1)
                res.removed_at[cur + 1] = len(res.post) + 1
            cur += 1
    res.applied += 1
    return cur


def _unplaced(hunk: _Hunk, path: str, count: int) -> Problem:
    """The problem for a hunk that has no unique place in the tree."""
    anchor = "its pre-image" if _removes(hunk.lines) else "its context"
    where = "matches nowhere in the tree" if count == 0 else (
        f"matches {count} places in the tree, none clearly meant")
    if hunk.damaged:
        return Problem(UNUSABLE, path, hunk.old_start,
                       f"damaged hunk {hunk.header} cannot be repaired: it {where}")
    return Problem(NOT_APPLIED, path, hunk.old_start,
                   f"hunk {hunk.header} does not apply: {anchor} {where}")


# -- the public entry point -----------------------------------------------------------

def apply_patch(diff: str, tree: Tree) -> Applied:
    """Apply diff to tree in memory; everything wrong with it becomes a Problem."""
    out = Applied()
    if not diff.strip():
        out.problems.append(Problem(UNUSABLE, "", 0, "no diff found"))
        return out
    diff = _cut_trailer(diff)
    files = _from_unidiff(diff)
    problems: list[Problem] = []
    if files is None or not any(fp.hunks for fp in files):
        lenient, problems = _lenient_parse(diff)
        if files is None or any(fp.hunks for fp in lenient):
            files = lenient
    files = [fp for fp in files if fp.hunks or fp.binary or _is_file_op(fp)]
    if not files:
        out.problems.extend(problems or [Problem(UNUSABLE, "", 0, "no diff found")])
        return out
    out.problems.extend(problems)
    for fp in files:
        _apply_one(fp, tree, out)
    if any(p.code in (UNUSABLE, NOT_APPLIED) for p in out.problems):
        _refuse(out)
    return out


def _refuse(out: Applied) -> None:
    """Never a half-applied image: a patch with one unplaceable hunk yields no image."""
    out.problems = [p for p in out.problems if p.code != REPAIRED]
    out.files, out.pre = {}, {}
    out.added_lines, out.removed_lines, out.removed_at, out.hunk_spans = {}, {}, {}, {}
    out.usable = False


def _is_file_op(fp: _FilePatch) -> bool:
    """Whether a hunkless file patch still changes the tree (create/delete/rename)."""
    return fp.header_only and (fp.old is None or fp.new is None or fp.old != fp.new) and (
        fp.old is not None or fp.new is not None)


def _safe(path: str | None) -> bool:
    """Whether a path from the diff may be looked up in the tree."""
    if path is None:
        return True
    parts = path.split("/")
    return bool(path) and "\0" not in path and not path.startswith("/") and ".." not in parts


def _read(tree: Tree, path: str | None) -> str | None:
    if path is None:
        return None
    try:
        return tree.read(path)
    except (OSError, ValueError):        # names too long for the file system, and the like
        return None


def _resolve(tree: Tree, path: str | None) -> str | None:
    """The tree path a diff path means: as given, or with its first component (-p1) gone."""
    if path is None or _read(tree, path) is not None or "/" not in path:
        return path
    stripped = path.split("/", 1)[1]
    return stripped if _read(tree, stripped) is not None else path


def _apply_one(fp: _FilePatch, tree: Tree, out: Applied) -> None:
    """Apply one file's patch and record its images, lines and problems."""
    if not (_safe(fp.old) and _safe(fp.new)):
        shown = (fp.new or fp.old or "")[:80]
        out.problems.append(Problem(UNUSABLE, "", 0, f"unsafe path in diff: {shown!r}"))
        return
    # Earlier sections of the same diff may have touched this file already.
    view = tree.with_overlay(out.files)
    old, new = _resolve(view, fp.old), _resolve(view, fp.new)
    name = new or old or ""
    if fp.binary:
        out.problems.append(Problem(NOT_APPLIED, name, 0, "binary diff cannot be applied"))
        return
    orig_text = _read(view, old)
    if old is not None and orig_text is None:
        out.problems.append(Problem(NOT_APPLIED, old, _first_line(fp),
                                    "file is not in the tree"))
        return
    if old is None and new is not None and _read(view, new):
        out.problems.append(Problem(NOT_APPLIED, new, 0, "new file already exists in the tree"))
        return
    res = _apply_file(fp, name, orig_text or "")
    out.problems.extend(res.problems)
    if fp.hunks and not res.applied:
        return
    _record(fp, old, new, orig_text, res, view, out)


def _first_line(fp: _FilePatch) -> int:
    return fp.hunks[0].old_start if fp.hunks else 0


def _record(fp: _FilePatch, old: str | None, new: str | None, orig_text: str | None,
            res: _FileResult, tree: Tree, out: Applied) -> None:
    """Store the pre- and post-image of an applied file patch in out."""
    post = _join(res.post, res.bare)
    if old is not None:
        out.pre.setdefault(old, orig_text)
        out.removed_lines.setdefault(old, set()).update(res.removed)
    if new is None:
        if post.strip():
            out.problems.append(Problem(NOT_APPLIED, old or "", 0,
                                        "deletion leaves lines behind; file kept"))
            out.files[old or ""] = post
        else:
            out.files[old or ""] = None
    else:
        if new != old:
            out.pre.setdefault(new, _read(tree, new))
            if old is not None and not fp.copy:
                out.files[old] = None          # a rename: the old name goes away
        out.files[new] = post
        out.added_lines.setdefault(new, set()).update(res.added)
        out.hunk_spans.setdefault(new, []).extend(res.spans)
        if old is not None:
            out.removed_at.setdefault(new, {}).update(res.removed_at)
    if res.repaired:
        fuzz = f", {res.fuzzed} with end context ignored" if res.fuzzed else ""
        out.problems.append(Problem(REPAIRED, new or old or "", res.first_repair,
                                    f"{res.repaired} hunk(s) restored against the tree{fuzz}"
                                    f"{res.note}"))
    out.usable = True
