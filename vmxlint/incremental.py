"""Per-field work and its reuse between images (DESIGN §7: a patch costs what it changes).

Every check speaks of one field and reads only that field's sites, the VM entries, the
sites that keep a software cache consistent, and tree-wide facts.  So the checks run
field by field, each over a *slice* of the entry path.  A slice has a digest of all it
holds but the lines of its sites in nested.c (its sites in order, their guards, the C
spellings of their conditions, a digest of everything tree-wide), and the list of those
lines.  A field whose digest is the one it had in a neighbouring image (the pre-image of a
patch, the previous patch of a series), and whose lines are that image's lines moved by
the edit (``LineMap``), takes the neighbour's findings at the moved lines; the other
fields are checked again.  What is reused is what a full check would give: nothing a
check reads is outside the digest and the lines, and counterexamples do not depend on
the order of earlier queries (``Solver.prime_implicant``).
"""
from __future__ import annotations

import bisect
import operator
import re
from typing import TYPE_CHECKING, Iterable, Mapping

from msgspec import Struct, structs

from vmxlint.logic import Formula, atoms, digest, structure
from vmxlint.memo import LazyPattern, kept
from vmxlint.model import PerModel
from vmxlint.textdiff import newlines, same_lines
from vmxlint.tree import lines as text_lines

if TYPE_CHECKING:  # pragma: no cover
    from vmxlint.analysis import Analysis
    from vmxlint.checks import Context
    from vmxlint.findings import Finding
    from vmxlint.sites import Site

# A message that names a place: ``prepare_vmcs02():2782`` (Context.where).
_PLACE = LazyPattern(r"\b(\w+)\(\):(\d+)\b")
# Messages this long may have been shortened to fit one line: moved only when the new
# line numbers have as many digits as the old ones (else the field is checked again).
_ROOMY = 150

Spans = Mapping[str, tuple[int, int]]


class Positions(Struct, dict=True):
    """Which function of one file holds a line."""

    path: str
    spans: Spans

    def __post_init__(self) -> None:
        self._starts = sorted((a, b, name) for name, (a, b) in self.spans.items())
        self._keys = [a for a, _, _ in self._starts]

    def holder(self, line: int) -> tuple[str, int, int] | None:
        """(function, first line, last line) of the function that holds the line."""
        k = bisect.bisect_right(self._keys, line) - 1
        if k < 0:
            return None
        start, end, name = self._starts[k]
        return (name, start, end) if line <= end else None


class Neighbour(Struct):
    """An image analysed before, whose unchanged fields another image may take over."""

    analysis: "Analysis"
    text: str                   # its nested.c


class LineMap:
    """Where each line of an old text is in a new one, when it is there for sure: lines
    before the first and after the last changed line, and lines of a function whose text
    did not change (it may have moved)."""

    def __init__(self, path: str, old: str, new: str, old_spans: Spans, new_spans: Spans
                 ) -> None:
        self.path = path
        p, s = same_lines(old, new)
        ends = newlines(old)
        self._prefix = p
        self._suffix_from = ends + 1 - s + 1
        self._delta = newlines(new) - ends
        self._old, self._new = Positions(path, old_spans), dict(new_spans)
        self._texts = old, new
        self._same: dict[str, bool] = {}
        self._seen: dict[int, int | None] = {}

    def many(self, lines: list[int]) -> list[int | None]:
        """Where each of LINES is (every field's slice holds the VM entries' lines: each
        line is mapped once)."""
        seen = self._seen
        out = []
        for line in lines:
            if line not in seen:
                seen[line] = self(line)
            out.append(seen[line])
        return out

    def __call__(self, line: int) -> int | None:
        if line <= self._prefix:
            return line
        if line >= self._suffix_from:
            return line + self._delta
        held = self._old.holder(line)
        if held is None or not self._unchanged(*held):
            return None
        return self._new[held[0]][0] + line - held[1]

    def _unchanged(self, name: str, start: int, end: int) -> bool:
        if name not in self._same:
            span = self._new.get(name)
            a, b = map(text_lines, self._texts)
            self._same[name] = span is not None and a[start - 1:end] == b[span[0] - 1:span[1]]
        return self._same[name]

    def place_ok(self, name: str, line: int) -> bool:
        """A ``name():line`` of a message names the function that holds the line."""
        held = self._old.holder(line)
        return held is not None and held[0] == name


class Digester:
    """Digests of formulas and sites.  A formula's digest is kept on the formula object, as
    its atoms are (``logic.atoms``): guards share most of their subformulas, within an
    image and, through the walk's summaries, with the images before it."""

    def __init__(self, path: str, origins: "dict[int, Site] | None" = None) -> None:
        self.path = path            # lines of this file are kept apart (``lines``)
        self._sites: dict[int, tuple[str, frozenset[str], "Site"]] = {}
        self._origins = origins or {}

    def formula(self, f: Formula) -> tuple[str, frozenset[str]]:
        """A digest of f's structure and the names of its atoms."""
        return structure(f), atoms(f)

    def site(self, s: "Site") -> tuple[str, frozenset[str]]:
        """A digest of the site (but its line in ``path``) and its atoms."""
        hit = self._sites.get(id(s))
        if hit is not None:
            return hit[0], hit[1]
        # A site of this file replayed from a summary digests as the summary's effect does
        # (only its line and order differ, and neither is digested): kept for the process.
        origin = self._origins.get(id(s)) if s.path == self.path else None
        if origin is not None:
            known = _REPLAYED.get(id(origin))
            if known is not None and known[2] is origin:
                self._sites[id(s)] = (known[0], known[1], s)
                return known[0], known[1]
        where = None if s.path == self.path else s.line
        guard, a1 = self.formula(s.guard)
        local, a2 = self.formula(s.local)
        shown, a3 = self.formula(s.shown)
        # Digested on its own: each field's digest then hashes 32 characters a site, not
        # the site's few hundred (114 fields an image).
        text = digest(repr((s.kind, s.function, s.path, where, guard, local, shown, s.chain,
                            s.field, s.accessor, s.value, s.origin.value, s.member, s.vmcs,
                            s.via, s.callee)))
        self._sites[id(s)] = (text, a1 | a2 | a3, s)
        if origin is not None:
            kept(_REPLAYED, id(origin), (text, a1 | a2 | a3, origin), REPLAYED_KEPT)
        return text, a1 | a2 | a3


# Digests of the summaries' effects, by id (the effect is held, so the id stays its own).
_REPLAYED: dict[int, tuple[str, frozenset[str], "Site"]] = {}
REPLAYED_KEPT = 65536


def cache_effects(ctx: "Context") -> list["Site"]:
    """Sites that keep a software cache consistent: every field's slice holds them."""
    helpers, stores = _cache_model(ctx.model)
    helpers = helpers | set(ctx.cache_helpers)
    out = []
    for s in ctx.path.sites:
        if s.kind == "store":
            value = s.value or ""
            if value not in stores:
                stores[value] = ctx.model.caches.cache_of(value) is not None
            if stores[value]:
                out.append(s)
        elif s.kind == "call" and s.callee in helpers:
            out.append(s)
    return out


# The fields' cache helpers, and whether a store's text keeps a cache, as asked before:
# every image asks it of every store on the path.
_cache_model = PerModel(lambda model: (
    frozenset(h for fm in model.fields.values() for h in fm.cache_helpers),
    dict[str, bool]()))


class Slices(Struct):
    """The fields' slices of one entry path: the sites every slice holds (the VM entries
    and the cache effects) and each field's own sites, with their places on the path."""

    common: list[tuple[int, "Site"]]
    own: dict[str, list[tuple[int, "Site"]]]

    def of(self, name: str) -> list["Site"]:
        """The slice of one field: its own sites and the common ones, in path order (the
        two lists are in path order and share no place: sorting their concatenation merges
        them, in C)."""
        return [s for _, s in sorted(self.common + self.own[name], key=_place)]


_place = operator.itemgetter(0)


def slices(ctx: "Context") -> Slices:
    """Every field a check may speak of (those with a site on the path, and ``also``),
    with its slice: its own sites, the VM entries and the cache effects, in path order."""
    effects = set(map(id, cache_effects(ctx)))
    common: list[tuple[int, "Site"]] = []
    own: dict[str, list[tuple[int, "Site"]]] = {name: [] for name in ctx.also}
    for k, s in enumerate(ctx.path.sites):
        if s.kind == "entry" or id(s) in effects:
            common.append((k, s))
        elif s.field:
            own.setdefault(s.field, []).append((k, s))
    return Slices(common, dict(sorted(own.items())))


class FieldDigests:
    """What the checks of each field read, as a digest: the part every slice shares (its
    common sites, the success condition, their atoms' spellings) is digested once."""

    def __init__(self, ctx: "Context", cut: Slices, shared: str, digester: Digester) -> None:
        self.cut = cut
        self.digester = digester
        self._known = ctx.model.fields
        self._at = [k for k, _ in cut.common]
        names: set[str] = set()
        parts = [shared]
        for _, s in cut.common:
            text, found = digester.site(s)
            parts.append(text)
            names |= found
        success, found = digester.formula(ctx.path.success)
        parts.append(success)
        names |= found
        self._labels = ctx.path.labels
        self._inverted = ctx.path.inverted
        self._names = frozenset(names)
        parts += [self._label(a) for a in sorted(names)]
        self._common = digest(*parts)

    def _label(self, a: str) -> str:
        return f"{a}={self._labels.get(a)!r}:{a in self._inverted}"

    def of(self, name: str, provided: bool) -> str:
        """The digest of one field: whether the image must provide its value (it writes
        the field, or ``also`` names it), its own sites with how many common sites
        precede each, which fixes the slice's order, and their atoms.

        Whether the value must be provided is what ``Context.consumed_fields`` of the
        field's slice says of it: the slice's only writes are the field's own (the
        common sites are VM entries, stores and calls)."""
        parts = [self._common, name, repr(provided and name in self._known)]
        names: set[str] = set()
        for k, s in self.cut.own[name]:
            text, found = self.digester.site(s)
            parts.append(f"{bisect.bisect_left(self._at, k)}:{text}")
            names |= found
        parts += [self._label(a) for a in sorted(names - self._names)]
        return digest(*parts)


def lines(sites: Iterable["Site"], path: str) -> list[int]:
    """The lines of a slice's sites in ``path``, in order: the part of a slice its
    digest leaves out."""
    return [s.line for s in sites if s.path == path]


def moved(old: list[int], new: list[int], where: LineMap) -> bool:
    """The new lines are the old ones, moved by the edit."""
    return len(old) == len(new) and where.many(old) == new


def relocate(findings: Iterable["Finding"], where: LineMap) -> list["Finding"] | None:
    """The findings of a field whose slice is unchanged, at the new lines; None when one
    of them cannot be moved exactly (then the field is checked again)."""
    out = []
    for f in findings:
        f = _move(f, where)
        if f is None:
            return None
        out.append(f)
    return out


def _move(f: "Finding", where: LineMap) -> "Finding | None":
    line = _line(f.path, f.line, where)
    if line is None:
        return None
    evidence = []
    for e in f.evidence:
        n = _line(e.path, e.line, where)
        if n is None:
            return None
        evidence.append(e if n == e.line else type(e)(e.path, n, e.function, e.role))
    failed = False

    def place(m: re.Match[str]) -> str:
        nonlocal failed
        old = int(m.group(2))
        n = where(old) if where.place_ok(m.group(1), old) else None
        if n is None:
            failed = True
            return m.group(0)
        return f"{m.group(1)}():{n}"

    if f.message.endswith("…") and _PLACE.search(f.message):
        return None             # cut to one line: the last place may be cut too
    message = _PLACE.sub(place, f.message)
    if failed or (len(message) != len(f.message) and len(f.message) >= _ROOMY):
        return None
    return f.with_(line=line, evidence=tuple(evidence), message=message)


def _line(path: str, line: int, where: LineMap) -> int | None:
    return where(line) if path == where.path else line   # another file did not change


# -- whole images ---------------------------------------------------------------------------

_COMMENT = LazyPattern(r"/\*.*?\*/|//[^\n]*", re.S)


def skeleton(text: str, spans: Spans, reached: Iterable[str]) -> str:
    """A digest of what an analysis of nested.c reads: the token stream of the file less
    the bodies of the functions the walk did not reach (their names and any preprocessor
    lines stay).  Equal skeletons give the same analysis, lines moved."""
    key = (text, tuple(spans.items()), frozenset(reached))
    hit = _SKELETONS.get(key)
    if hit is None:
        hit = kept(_SKELETONS, key, _skeleton(text, spans, key[2]), 4)
    return hit


# The last few skeletons: an image's is asked when it is analysed and when the next image
# asks whether it may take this one's analysis over.
_SKELETONS: dict[tuple, str] = {}
_DIRECTIVE = LazyPattern(r"^[^\S\n]*#.*$", re.M)


def _skeleton(text: str, spans: Spans, keep: frozenset[str]) -> str:
    lines = text.split("\n")
    dropped = sorted((a, b) for name, (a, b) in spans.items() if name not in keep)
    kept: list[str] = []
    at = 1                          # the first line not yet looked at
    for a, b in dropped:
        if b < at:
            continue
        a = max(a, at)
        kept.extend(lines[at - 1:a - 1])
        # Of a dropped body only its preprocessor lines stay.
        kept.extend(_DIRECTIVE.findall("\n".join(lines[a - 1:b])))
        at = b + 1
    kept.extend(lines[at - 1:])
    tokens = " ".join(_COMMENT.sub(" ", "\n".join(kept)).split())
    return digest(" ".join(spans), tokens)


def edits_read_code(old: str, new: str, old_spans: Spans, reached: Iterable[str]) -> bool:
    """A quick test before the skeletons (``skeleton``) are compared: whether the edit
    from old to new changed the C tokens (comments dropped) of lines that are not all in
    the body of one function the analysis did not read.  True says the analysis must be
    made again; False leaves the answer to the skeletons.  (Answering True too often
    only costs an analysis, the reference the reuse is tested against.)"""
    p, s = same_lines(old, new)
    a, b = text_lines(old), text_lines(new)
    first, last = p + 1, len(a) - s     # old's replaced lines; none when last < first, then
    lo, hi = min(first, last), max(first, last)    # new lines go between last and first
    keep = set(reached)
    if any(name not in keep and a0 <= lo and hi <= b0 for name, (a0, b0) in old_spans.items()):
        return False
    return _tokens(a[p:len(a) - s]) != _tokens(b[p:len(b) - s])


def _tokens(lines: list[str]) -> str:
    return " ".join(_COMMENT.sub(" ", "\n".join(lines)).split())


def moved_analysis(old: "Analysis", where: LineMap, spans: Spans) -> "Analysis | None":
    """The analysis of an image whose skeleton is old's: old's findings and lines moved,
    or None when a line cannot be moved exactly."""
    findings = relocate(old.findings, where)
    if findings is None:
        return None
    at: dict[str, list[int]] = {}
    for name, lines in old.lines.items():
        new = [where(n) for n in lines]
        if None in new:
            return None
        at[name] = new          # type: ignore[assignment]
    return structs.replace(old, findings=findings, lines=at, spans=dict(spans),
                           digests=dict(old.digests))
