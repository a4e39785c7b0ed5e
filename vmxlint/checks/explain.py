"""Counterexamples a reviewer can read (DESIGN section 2, logic).

A "missing" finding says under which conditions no write happens.  The conditions are a
prime implicant of ``need and not have`` over the atoms that decide whether the field is
consumed and whether its writes run; every other atom (those that only decide early
failure exits, for example) is projected out.  Each condition is shown once, by its C
spelling, with the polarity the C code has.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Iterable

from msgspec import Struct

from vmxlint.checks import Shortenable
from vmxlint.logic import Formula, atoms, conj, neg

if TYPE_CHECKING:  # pragma: no cover
    from vmxlint.checks import Context


class Counterexample(Shortenable, Struct, frozen=True):
    assignment: dict[str, bool]     # atom name -> value, for JSON
    text: str                       # "nested_run_pending && !(vmcs12->... & X)"
    conditions: tuple[str, ...]

    @property
    def parts(self) -> int:
        return len(self.conditions)

    def shortened(self, n: int) -> str:
        rest = len(self.conditions) - n
        return " && ".join(self.conditions[:n]) + (f" && ... ({rest} more)" if rest else "")

    def __str__(self) -> str:
        return self.text

    def when(self) -> "When":
        """``when <conditions>``, or ``on any nested entry`` when none is needed."""
        return When(self)


class When(Shortenable, Struct, frozen=True):
    cex: Counterexample

    @property
    def parts(self) -> int:
        return self.cex.parts

    def shortened(self, n: int) -> str:
        return f"when {self.cex.shortened(n)}"

    def __str__(self) -> str:
        return f"when {self.cex.text}" if self.cex.conditions else "on any nested entry"


def _relevant(ctx: "Context", field: str | None, keep: Iterable[str]) -> set[str]:
    """Atoms that decide consumption and whether a write of the field runs: those of the
    writes' enclosing conditions (not of the early exits before them) and of the
    runtime writers' cover."""
    out = set(keep)
    for w in ctx.writes:
        if w.field == field:
            out |= atoms(w.shown)
    for f in ctx.restore_cover(field or ""):
        out |= atoms(f)
    return out


def spell(ctx: "Context", name: str, value: bool) -> str:
    """One condition as C shows it: ``x``, ``!x`` or ``!(a & b)``."""
    label = ctx.path.labels.get(name)
    if label is None:
        return name if value else f"!{name}"
    positive = value != (name in ctx.path.inverted)
    if positive:
        return label
    simple = re.fullmatch(r"[\w.>\-\[\]]+(\([^()]*\))?", label.replace(" ", ""))
    return f"!{label}" if simple else f"!({label})"


def counterexample(ctx: "Context", need: Formula, have: Formula,
                   keep: Iterable[str] = (), field: str | None = None) -> Counterexample:
    """The readable reason why ``need`` does not imply ``have``."""
    keep = set(keep)
    relevant = _relevant(ctx, field, keep)
    cube = ctx.solver.prime_implicant(conj(need, neg(have)), relevant, prefer=keep) or {}
    shown: list[str] = []
    for name in sorted(cube, key=lambda n: (n not in keep, n)):
        text = spell(ctx, name, cube[name])
        if text not in shown:
            shown.append(text)
    return Counterexample(cube, " && ".join(shown) or "always", tuple(shown))
