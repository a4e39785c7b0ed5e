"""VMX301, VMX302: writes gated by the wrong enlightened-VMCS clean-field group, or none."""
from __future__ import annotations

from typing import Iterator

from vmxlint.checks import Context, check
from vmxlint.findings import Finding
from vmxlint.logic import Atom, atoms, conj, neg, render
from vmxlint.sites import Site

PREFIX = "evmcs.clean."


def gates(ctx: Context, w: Site) -> list[str]:
    """Groups whose clean bit, when set, keeps the write from running (with an eVMCS)."""
    active = conj(w.guard, Atom("evmcs.active"))
    out = []
    for a in sorted(atoms(w.guard)):
        if a.startswith(PREFIX) and ctx.solver.implies(active, neg(Atom(a))):
            out.append(a[len(PREFIX):])
    return out


def _group(ctx: Context, w: Site) -> str | None:
    info = ctx.facts.get(w.field or "")
    return info.evmcs_group if info is not None else None


@check("VMX301")
def wrong_group(ctx: Context) -> Iterator[Finding]:
    for w in ctx.writes:
        own = _group(ctx, w)
        if not w.direct or own in (None, "NONE", "ALL"):
            continue
        wrong = [g for g in gates(ctx, w) if g != own]
        if wrong and own not in gates(ctx, w):
            yield ctx.finding(
                "VMX301", w,
                f"{w.field} belongs to eVMCS clean group {own} but is written only when "
                f"{', '.join(wrong)} is dirty; an L1 change to it is missed",
                guard=render(w.guard), group=own, gated_by=wrong)


@check("VMX302")
def ungated_write(ctx: Context) -> Iterator[Finding]:
    for w in ctx.writes:
        own = _group(ctx, w)
        if not w.direct or own in (None, "NONE", "ALL"):
            continue
        if not ctx.dirty_only(w):
            continue
        # Writes done once per vmcs02 (prepare_vmcs02_constant_state) are not redone.
        if not ctx.solver.satisfiable(conj(w.guard, Atom("evmcs.active"),
                                           Atom("vmcs02.initialized"))):
            continue
        if not gates(ctx, w):
            yield ctx.finding(
                "VMX302", w,
                f"{w.field} is rewritten on every eVMCS entry although its clean group "
                f"{own} may be clean; gate it on HV_VMX_ENLIGHTENED_CLEAN_FIELD_{own}",
                guard=render(w.guard), group=own)
