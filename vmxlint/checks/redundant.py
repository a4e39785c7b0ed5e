"""VMX101, VMX102, VMX103: writes that do no good on the path to VM entry."""
from __future__ import annotations

from typing import Iterator

from vmxlint.checks import Context, check
from vmxlint.findings import Finding
from vmxlint.logic import FALSE, Atom, conj, neg, render
from vmxlint.sites import Provenance, Site


def _consumers_after(ctx: Context, w: Site) -> list[Site]:
    """VM entries and software reads of w's field that may follow w."""
    reads = [s for s in ctx.path.sites
             if s.kind == "read" and s.field == w.field and s.vmcs == "vmcs02"]
    return [c for c in ctx.consumers + reads if c.order > w.order]


def covering(ctx: Context, w: Site) -> list[Site] | None:
    """The later writes that overwrite w before anything consumes it, or None."""
    used: list[Site] = []
    consumed_somewhere = False
    for c in _consumers_after(ctx, w):
        need = ctx.consumed(w.field) if c.kind == "entry" else conj()
        premise = (w.guard, c.guard, need)      # a conjunction, asked part by part
        if not ctx.solver.satisfiable(*premise):
            continue
        consumed_somewhere = True
        later = [x for x in ctx.writes_of(w.field) if w.order < x.order < c.order]
        if not ctx.solver.implies_some(premise, tuple(x.guard for x in later)):
            return None
        used += [x for x in later if ctx.solver.satisfiable(*premise, x.guard)
                 and x not in used]
    return used if consumed_somewhere and used else None


@check("VMX101")
def redundant_write(ctx: Context) -> Iterator[Finding]:
    for w in ctx.writes:
        if not w.direct or w.field is None or w.field not in ctx.model.fields:
            continue
        cover = covering(ctx, w)
        if cover is None:
            continue
        names = " and ".join(ctx.where(x) for x in cover)
        yield ctx.finding(
            "VMX101", w, {"field": w.field, "function": w.function, "covering": names},
            evidence=[ctx.evidence(x, "covering write") for x in cover]
            + [ctx.evidence(c, "consumer") for c in ctx.consumers[-1:]],
            guard=render(w.guard), consumed_when=str(ctx.consumed(w.field)),
            covering_guards=[render(x.guard) for x in cover])


def _restored(ctx: Context, first: Site, second: Site) -> bool:
    """second is a temporary value: a VM entry runs, then first's value is written back."""
    for c in ctx.consumers:
        if c.order <= second.order:
            continue
        for back in ctx.writes_of(first.field):
            if back.order > c.order and back.value == first.value:
                return True
    return False


@check("VMX102")
def duplicate_write(ctx: Context) -> Iterator[Finding]:
    # Functions that run a VM entry themselves (the early consistency check) save, zero and
    # restore fields around it: those writes set up that entry, they are not duplicates.
    bracketing = {c.function for c in ctx.consumers if c.callee is not None}
    for w in ctx.writes:
        if not w.direct or w.field is None or w.function in bracketing:
            continue
        for x in ctx.writes_of(w.field):
            if x.order <= w.order or not x.direct or x.function in bracketing:
                continue
            if not ctx.solver.satisfiable(w.guard, x.guard):
                continue
            between = [c for c in _consumers_after(ctx, w) if c.order < x.order
                       and ctx.solver.satisfiable(w.guard, x.guard, c.guard)]
            if between or covering(ctx, w) is not None or _restored(ctx, w, x):
                continue
            yield ctx.finding(
                "VMX102", w, {"field": w.field, "second": ctx.where(x)},
                evidence=[ctx.evidence(x, "second write")],
                guard=render(w.guard), second_guard=render(x.guard))
            break


@check("VMX103")
def hot_path_constant(ctx: Context) -> Iterator[Finding]:
    # An entry with nothing new to copy: vmcs02 set up before, vmcs12 clean, no eVMCS.
    steady = conj(Atom("vmcs02.initialized"), neg(Atom("vmcs12.dirty")),
                  neg(Atom("evmcs.active")), ctx.path.success)
    for w in ctx.writes:
        fm = ctx.model.fields.get(w.field or "")
        if not w.direct or fm is None or not fm.hot_constant:
            continue
        if w.origin not in (Provenance.CONSTANT, Provenance.L0_CONFIG) or w.guard == FALSE:
            continue
        if ctx.solver.satisfiable(w.guard, steady):
            yield ctx.finding(
                "VMX103", w, {"field": w.field, "function": w.function},
                guard=render(w.guard))
