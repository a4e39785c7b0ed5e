"""VMX201, VMX202: fields that VM entry consumes without a current value."""
from __future__ import annotations

from typing import Iterator

from vmxlint.checks import Context, check
from vmxlint.findings import Finding
from vmxlint.logic import (FALSE, TRUE, Atom, atoms, conj, describe_assignment, disj, neg,
                           render, substitute)
from vmxlint.sites import Site

ONCE = "vmcs02.initialized"


def persists(ctx: Context, w: Site) -> bool:
    """The value w wrote on an earlier entry is still right on an entry that skips w.

    A value copied from vmcs12 stays right while vmcs12 is clean, unless L1 can change the
    field without a VM exit (a read/write shadow-VMCS field; DESIGN.md section 2).  A value
    from L0 stays right only when it is a constant or KVM's runtime writers keep the field
    current (the MSR-list counts, for example).
    """
    fm = ctx.model.fields.get(w.field or "")
    info = ctx.facts.get(w.field or "")
    if fm is None or (info is not None and info.shadow == "rw"):
        return False
    if w.origin in ("vmcs12", "constant"):
        return True
    return fm.origin == "constant" or fm.runtime


def coverage(ctx: Context, name: str, before: int):
    """When some write gives the field its value for an entry at position ``before``."""
    cover = []
    for w in ctx.writes_of(name):
        if w.order >= before:
            continue
        # A write done once per vmcs02 still holds after vmcs02 was initialised.
        g = substitute(w.guard, {ONCE: FALSE})
        if persists(ctx, w):
            # Written on the last entry that copied vmcs12: still valid while it is clean.
            clean = {a: FALSE for a in atoms(g) if a.startswith("evmcs.clean.")}
            g = substitute(g, {"vmcs12.dirty": TRUE, **clean})
        cover.append(g)
    fm = ctx.model.fields.get(name)
    if fm is not None and fm.runtime:
        # An entry that does not emulate L1's VMLAUNCH/VMRESUME (nested state restore,
        # RSM) runs L2 with the state userspace restored through KVM's runtime writers.
        cover.append(neg(Atom("nested.run_pending")))
    return disj(*cover)


@check("VMX201")
def missing_write(ctx: Context) -> Iterator[Finding]:
    entry = ctx.consumers[-1] if ctx.consumers else None
    if entry is None:
        return
    fields = sorted({w.field for w in ctx.writes if w.field in ctx.model.fields})
    for name in fields:
        need = conj(ctx.consumed(name), entry.guard)
        have = coverage(ctx, name, entry.order)
        cex = ctx.solver.counterexample(need, have)
        if cex is None:
            continue
        first = min(ctx.writes_of(name), key=lambda w: w.order)
        # Show the atoms that decide consumption and coverage, not the success path's.
        keep = atoms(ctx.consumed(name)) | atoms(have)
        cex = {k: v for k, v in cex.items() if k in keep} or cex
        shown = describe_assignment(cex, ctx.path.labels)
        yield ctx.finding(
            "VMX201", first,
            f"VM entry consumes {name} but no write of it runs when {shown}",
            evidence=[ctx.evidence(w, "write") for w in ctx.writes_of(name)]
            + [ctx.evidence(entry, "consumer")],
            counterexample=cex, consumed_when=str(ctx.consumed(name)),
            covered_when=render(have))


def _stale_reason(ctx: Context, w: Site) -> str | None:
    info = ctx.facts.get(w.field)
    fm = ctx.model.fields.get(w.field)
    if info is not None and info.shadow == "rw" and w.origin == "vmcs12":
        return "L1 can VMWRITE it through the shadow VMCS without a VM exit"
    if fm is not None and fm.origin in ("l0", "mixed") and not fm.runtime \
            and w.origin == "other":
        return "its value comes from L0/vCPU state, which changes without dirtying vmcs12"
    return None


@check("VMX202")
def stale_rare_write(ctx: Context) -> Iterator[Finding]:
    for name in sorted({w.field for w in ctx.writes if w.field}):
        writes = ctx.writes_of(name)
        if not writes or not all(w.in_rare for w in writes):
            continue
        for w in writes:
            if not w.direct:
                continue
            reason = _stale_reason(ctx, w)
            if reason is None:
                continue
            rare = next(fn for fn in w.chain if fn.endswith("_rare"))
            yield ctx.finding(
                "VMX202", w,
                f"{name} is written only in {rare}(), which runs only when vmcs12 is dirty, "
                f"but {reason}: vmcs02 goes stale",
                guard=render(w.guard), when=str(Atom("vmcs12.dirty")))
