"""VMX201, VMX202: fields that VM entry consumes without a current value."""
from __future__ import annotations

from typing import Iterator

from vmxlint.checks import Context, check
from vmxlint.findings import Finding
from vmxlint.logic import FALSE, TRUE, Atom, conj, describe_assignment, disj, render, substitute
from vmxlint.sites import Site

ONCE = "vmcs02.initialized"


def persists(ctx: Context, name: str) -> bool:
    """A value written on an earlier entry is still right on an entry that skips the write.

    True when it comes from vmcs12 (or is a per-vmcs02 constant) and L1 cannot change it
    without a VM exit, i.e. it is not a read/write shadow-VMCS field (DESIGN.md section 2).
    """
    fm = ctx.model.fields.get(name)
    info = ctx.facts.get(name)
    if fm is None or fm.origin not in ("vmcs12", "constant"):
        return False
    return info is None or info.shadow != "rw"


def coverage(ctx: Context, name: str, before: int) -> tuple:
    """When some write gives the field its value for an entry at position ``before``."""
    cover = []
    for w in ctx.writes_of(name):
        if w.order >= before:
            continue
        g = w.guard
        # A write done once per vmcs02 still holds after vmcs02 was initialised.
        g = substitute(g, {ONCE: FALSE})
        if persists(ctx, name):
            # Written on the last entry that copied vmcs12: still valid while it is clean.
            clean = {a: FALSE for a in _atoms(g) if a.startswith("evmcs.clean.")}
            g = substitute(g, {"vmcs12.dirty": TRUE, **clean})
        cover.append(g)
    return disj(*cover)


def _atoms(f):
    from vmxlint.logic import atoms
    return atoms(f)


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
        shown = describe_assignment(cex, ctx.path.labels)
        site = Site(**{**first.__dict__})
        yield ctx.finding(
            "VMX201", site,
            f"VM entry consumes {name} but no write of it runs when {shown}",
            evidence=[ctx.evidence(w, "write") for w in ctx.writes_of(name)]
            + [ctx.evidence(entry, "consumer")],
            counterexample=cex, consumed_when=str(ctx.consumed(name)),
            covered_when=render(have))


def _stale_reason(ctx: Context, w: Site) -> str | None:
    info = ctx.facts.get(w.field)
    fm = ctx.model.fields.get(w.field)
    if info is not None and info.shadow == "rw":
        return "L1 can VMWRITE it through the shadow VMCS without a VM exit"
    if fm is not None and fm.origin == "l0" and not fm.runtime and w.origin == "other":
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
