"""VMX201, VMX202, VMX203: fields that VM entry consumes without a current, right value."""
from __future__ import annotations

from typing import Iterator

from vmxlint.checks import Context, check
from vmxlint.checks.explain import counterexample
from vmxlint.findings import Finding
from vmxlint.logic import FALSE, TRUE, Atom, Formula, atoms, conj, disj, neg, render, substitute
from vmxlint.sites import Provenance, Site

ONCE = "vmcs02.initialized"
DIRTY = "vmcs12.dirty"


def persists(ctx: Context, w: Site) -> bool:
    """The value w wrote on an earlier entry is still right on an entry that skips w.

    Decided by the provenance of the value (DESIGN section 2): a vmcs12 value stays right
    while vmcs12 is clean unless L1 can VMWRITE the field without a VM exit (an RW shadow
    field); constants and L0 configuration stay right; a runtime value stays right only
    where a runtime writer keeps the loaded VMCS current; a snapshot never does.
    """
    info = ctx.facts.get(w.field or "")
    if w.origin is Provenance.VMCS12:
        return not (info is not None and info.shadow == "rw")
    if w.origin in (Provenance.CONSTANT, Provenance.L0_CONFIG):
        return True
    if w.origin is Provenance.RUNTIME:
        return bool(ctx.runtime_writers(w.field or ""))
    return False


def _as_clean_replay(ctx: Context, w: Site) -> Formula:
    """When an entry with clean vmcs12 still has w's value: w ran on the last dirty entry."""
    g = substitute(w.guard, {ONCE: FALSE})
    clean = {a: FALSE for a in atoms(g) if a.startswith("evmcs.clean.")}
    return substitute(g, {DIRTY: TRUE, **clean})


def coverage(ctx: Context, name: str, before: int, *, stale_ok: bool = False,
             skip: Site | None = None) -> tuple[Formula, ...]:
    """When some write gives the field its value for an entry at position ``before``: the
    disjuncts (asked part by part; a finding shows their disjunction).

    With ``stale_ok`` a dirty-only write counts as persisting whatever its value: VMX201
    asks whether any write exists, VMX202 whether the value it left is still right.
    """
    cover = []
    for w in ctx.writes_of(name):
        if w.order >= before or w is skip:
            continue
        # A write done once per vmcs02 still holds after vmcs02 was initialised.
        g = substitute(w.guard, {ONCE: FALSE})
        if persists(ctx, w) or (stale_ok and ctx.dirty_only(w)):
            g = _as_clean_replay(ctx, w)
        cover.append(g)
    cover += ctx.restore_cover(name)
    return tuple(cover)


def _entry(ctx: Context) -> Site | None:
    return ctx.consumers[-1] if ctx.consumers else None


@check("VMX201")
def missing_write(ctx: Context) -> Iterator[Finding]:
    entry = _entry(ctx)
    if entry is None:
        return
    # Every field VM entry may consume, written or not: deleting the only write of a
    # field must not make it disappear from the question.
    for name in sorted(ctx.consumed_fields()):
        cover = coverage(ctx, name, entry.order, stale_ok=True)
        if ctx.solver.implies_some((ctx.consumed(name), entry.guard), cover):
            continue
        need, have = conj(ctx.consumed(name), entry.guard), disj(*cover)
        writes = ctx.writes_of(name)
        anchor = min(writes, key=lambda w: w.order) if writes else entry
        cex = counterexample(ctx, need, have, keep=atoms(ctx.consumed(name)), field=name)
        yield ctx.finding(
            "VMX201", anchor.with_field(name), {"field": name, "when": cex.when()},
            evidence=[ctx.evidence(w, "write") for w in writes]
            + [ctx.evidence(entry, "consumer")],
            counterexample=cex.assignment, conditions=list(cex.conditions),
            consumed_when=str(ctx.consumed(name)), covered_when=render(have))


@check("VMX202")
def stale_rare_write(ctx: Context) -> Iterator[Finding]:
    entry = _entry(ctx)
    if entry is None:
        return
    clean_entry = conj(neg(Atom(DIRTY)), neg(Atom("evmcs.active")), Atom(ONCE))
    for w in ctx.writes:
        if w.field is None or w.field not in ctx.model.fields or persists(ctx, w) \
                or not ctx.dirty_only(w):
            continue
        # An entry with clean vmcs12 on which w would have run, had vmcs12 been dirty.
        parts = (ctx.consumed(w.field), entry.guard, clean_entry, _as_clean_replay(ctx, w))
        cover = coverage(ctx, w.field, entry.order, skip=w)
        if ctx.solver.implies_some(parts, cover):
            continue
        need, have = conj(*parts), disj(*cover)
        cex = counterexample(ctx, need, have, field=w.field,
                             keep=atoms(ctx.consumed(w.field)) | {DIRTY, "evmcs.active"})
        yield ctx.finding(
            "VMX202", w, {"field": w.field, "phase": ctx.phase(w), "reason": _reason(ctx, w),
                          "condition": cex},
            provenance=w.origin.value, counterexample=cex.assignment,
            conditions=list(cex.conditions))


def _reason(ctx: Context, w: Site) -> str:
    if w.origin is Provenance.VMCS12:
        return "L1 can VMWRITE it through the shadow VMCS without a VM exit"
    if w.origin is Provenance.RUNTIME:
        return "no runtime writer keeps it current"
    return "its value is captured on every entry"


@check("VMX203")
def wrong_source(ctx: Context) -> Iterator[Finding]:
    for w in ctx.writes:
        info = ctx.facts.get(w.field or "")
        if w.member is None or info is None or info.vmcs12_member is None or info.high:
            continue
        if w.member != info.vmcs12_member:
            yield ctx.finding(
                "VMX203", w, {"field": w.field, "member": w.member,
                              "expected": info.vmcs12_member},
                member=w.member, expected=info.vmcs12_member)
