"""Per-field work and its reuse between images (DESIGN §7: a patch costs what it changes).

Every check speaks of one field and reads only that field's sites, the VM entries, the
sites that keep a software cache consistent, and tree-wide facts.  So the checks run
field by field, each over a *slice* of the entry path, and each slice has a digest:
its sites with positions relative to their function and order relative to the slice,
their guards, the C spellings of their conditions, and a digest of everything tree-wide.
A field whose digest is the one it had in another image (the pre-image of a patch, the
previous patch of a series) takes that image's findings, moved to the new lines; the
other fields are checked again.  The reused findings are those a full check would give:
nothing a check reads is outside the digest, and counterexamples do not depend on the
order of earlier queries (``Solver.prime_implicant``).
"""
from __future__ import annotations

import bisect
import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Mapping

from vmxlint.logic import And, Atom, Const, Formula, Not, Or

if TYPE_CHECKING:  # pragma: no cover
    from vmxlint.checks import Context
    from vmxlint.findings import Finding
    from vmxlint.sites import Site

# A message that names a place: ``prepare_vmcs02():2782`` (Context.where).
_PLACE = re.compile(r"\b(\w+)\(\):(\d+)\b")
# Messages this long may have been shortened to fit one line: moved only when the new
# line numbers have as many digits as the old ones (else the field is checked again).
_ROOMY = 150

Spans = Mapping[str, tuple[int, int]]


@dataclass
class Positions:
    """Which function of one file holds a line, and where that function starts."""

    path: str
    spans: Spans

    def __post_init__(self) -> None:
        self._starts = sorted((a, b, name) for name, (a, b) in self.spans.items())
        self._keys = [a for a, _, _ in self._starts]

    def relative(self, path: str, line: int) -> tuple[str, int] | None:
        """(function, line within it) for a line of this file inside a function."""
        if path != self.path:
            return None
        k = bisect.bisect_right(self._keys, line) - 1
        if k < 0:
            return None
        start, end, name = self._starts[k]
        return (name, line - start) if line <= end else None

    def absolute(self, where: tuple[str, int]) -> int | None:
        span = self.spans.get(where[0])
        return None if span is None else span[0] + where[1]


class Digester:
    """Digests of formulas (memoised: guards share most of their subformulas) and sites."""

    def __init__(self, positions: Positions) -> None:
        self.positions = positions
        self._memo: dict[int, tuple[str, frozenset[str], Formula]] = {}

    def formula(self, f: Formula) -> tuple[str, frozenset[str]]:
        """A digest of f's structure and the names of its atoms."""
        hit = self._memo.get(id(f))
        if hit is not None:
            return hit[0], hit[1]
        if isinstance(f, Const):
            d, names = str(f), frozenset()
        elif isinstance(f, Atom):
            d, names = "a:" + f.name, frozenset((f.name,))
        elif isinstance(f, Not):
            sub, names = self.formula(f.arg)
            d = _h("!", sub)
        elif isinstance(f, (And, Or)):
            parts = [self.formula(a) for a in f.args]
            d = _h("&" if isinstance(f, And) else "|", *(p[0] for p in parts))
            names = frozenset().union(*(p[1] for p in parts))
        else:  # pragma: no cover - all formula classes handled above
            raise TypeError(f)
        self._memo[id(f)] = (d, names, f)     # f kept alive: its id stays its own
        return d, names

    def site(self, s: "Site", rank: int) -> tuple[str, frozenset[str]]:
        where = self.positions.relative(s.path, s.line) or ("", s.line)
        guard, a1 = self.formula(s.guard)
        local, a2 = self.formula(s.local)
        shown, a3 = self.formula(s.shown)
        text = repr((s.kind, rank, s.function, s.path, where, guard, local, shown, s.chain,
                     s.field, s.accessor, s.value, s.origin.value, s.member, s.vmcs, s.via,
                     s.callee))
        return text, a1 | a2 | a3


def _h(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode("utf-8", "replace")).hexdigest()[:32]


def cache_effects(ctx: "Context") -> list["Site"]:
    """Sites that keep a software cache consistent: every field's slice holds them."""
    helpers = set(ctx.cache_helpers)
    for fm in ctx.model.fields.values():
        helpers.update(fm.cache_helpers)
    out = []
    for s in ctx.path.sites:
        if s.kind == "store" and ctx.model.caches.cache_of(s.value or "") is not None:
            out.append(s)
        elif s.kind == "call" and s.callee in helpers:
            out.append(s)
    return out


def checked_fields(ctx: "Context") -> list[str]:
    """Every field a check may speak of: those with a site on the path, and ``also``."""
    return sorted({s.field for s in ctx.path.sites if s.field} | set(ctx.also))


def field_digest(ctx: "Context", name: str, shared: str, digester: Digester) -> str:
    """What the checks of one field read, as a digest (ctx is that field's slice)."""
    parts = [shared, name, repr(name in ctx.consumed_fields())]
    names: set[str] = set()
    for rank, s in enumerate(ctx.path.sites):
        text, atoms = digester.site(s, rank)
        parts.append(text)
        names |= atoms
    success, atoms = digester.formula(ctx.path.success)
    names |= atoms
    parts.append(success)
    for a in sorted(names):
        parts.append(f"{a}={ctx.path.labels.get(a)!r}:{a in ctx.path.inverted}")
    return _h(*parts)


def relocate(findings: Iterable["Finding"], old: Positions, new: Positions
             ) -> list["Finding"] | None:
    """The findings of a field whose slice is unchanged, at the new lines; None when one
    of them cannot be moved exactly (then the field is checked again)."""
    out = []
    for f in findings:
        moved = _move(f, old, new)
        if moved is None:
            return None
        out.append(moved)
    return out


def _move(f: "Finding", old: Positions, new: Positions) -> "Finding | None":
    line = _line(f.path, f.line, old, new)
    if line is None:
        return None
    evidence = []
    for e in f.evidence:
        n = _line(e.path, e.line, old, new)
        if n is None:
            return None
        evidence.append(e if n == e.line else type(e)(e.path, n, e.function, e.role))
    failed = False

    def place(m: re.Match[str]) -> str:
        nonlocal failed
        where = old.relative(old.path, int(m.group(2)))
        n = new.absolute(where) if where is not None and where[0] == m.group(1) else None
        if n is None:
            failed = True
            return m.group(0)
        return f"{m.group(1)}():{n}"

    message = _PLACE.sub(place, f.message)
    if failed or (len(message) != len(f.message) and len(f.message) >= _ROOMY):
        return None
    return f.with_(line=line, evidence=tuple(evidence), message=message)


def _line(path: str, line: int, old: Positions, new: Positions) -> int | None:
    if path != old.path:
        return line          # another file: the shared digest covers it
    where = old.relative(path, line)
    return None if where is None else new.absolute(where)
