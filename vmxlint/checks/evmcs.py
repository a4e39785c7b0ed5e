"""VMX301, VMX302: writes gated by the wrong enlightened-VMCS clean-field group, or none.

The groups that matter are those of the vmcs12 members the write's value and guard read
(its inputs), not the group of the written field: XSS_EXIT_BITMAP is in CONTROL_GRP2,
but whether it is written at all is chosen by secondary controls in CONTROL_GRP1, so a
gate on CONTROL_GRP2 alone would leave it stale (VMX302 advises all input groups).
VMX301 compares a gate with the groups of the value's members only.
"""
from __future__ import annotations

import re
from typing import Iterator

from vmxlint.checks import Context, check
from vmxlint.findings import Finding
from vmxlint.logic import Atom, atoms, conj, neg, render
from vmxlint.sites import VMCS12_CONTROLS, Provenance, Site

PREFIX = "evmcs.clean."
_MEMBER = re.compile(r"vmcs12->(\w+)")
_CONTROL_WORD = {group: member for member, group in VMCS12_CONTROLS.items()}


def gates(ctx: Context, w: Site) -> list[str]:
    """Groups whose clean bit, when set, keeps the write from running (with an eVMCS)."""
    active = conj(w.guard, Atom("evmcs.active"))
    out = []
    for a in sorted(atoms(w.guard)):
        if a.startswith(PREFIX) and ctx.solver.implies(active, neg(Atom(a))):
            out.append(a[len(PREFIX):])
    return out


def input_members(ctx: Context, w: Site, guard: bool = True) -> set[str]:
    """vmcs12 members the write's value (and, with ``guard``, its conditions) read."""
    members = set(_MEMBER.findall(w.value or ""))
    for a in atoms(w.shown) if guard else ():
        members.update(_MEMBER.findall(ctx.path.labels.get(a, "")))
        parts = a.split(".")
        if len(parts) == 3 and parts[0] == "vmcs12" and parts[1] in _CONTROL_WORD:
            members.add(_CONTROL_WORD[parts[1]])
    return members


def input_groups(ctx: Context, w: Site, guard: bool = True) -> set[str]:
    """eVMCS clean groups of the write's inputs."""
    groups = set()
    for m in input_members(ctx, w, guard):
        info = ctx.facts.by_member(m)
        if info is not None and info.evmcs_group not in (None, "NONE", "ALL"):
            groups.add(info.evmcs_group)
    return groups


def _vmcs12_write(ctx: Context, w: Site) -> bool:
    return w.direct and w.field is not None and w.origin is Provenance.VMCS12 \
        and ctx.dirty_only(w)


@check("VMX301")
def wrong_group(ctx: Context) -> Iterator[Finding]:
    for w in ctx.writes:
        if not _vmcs12_write(ctx, w):
            continue
        # The value's own data decides here; whether a change of a control in the guard
        # must redo the write depends on Hyper-V's clean-field contract (rule limits).
        gated = gates(ctx, w)
        missed = sorted(input_groups(ctx, w, guard=False) - set(gated))
        if gated and missed:
            yield ctx.finding(
                "VMX301", w, {"field": w.field, "gated": ", ".join(gated),
                              "missed": ", ".join(missed)},
                guard=render(w.guard), gated_by=gated, inputs=missed)


_ENLIGHTENED_AGAIN = (Atom("evmcs.active"), Atom("vmcs02.initialized"))


@check("VMX302")
def ungated_write(ctx: Context) -> Iterator[Finding]:
    for w in ctx.writes:
        if not _vmcs12_write(ctx, w):
            continue
        # Writes done once per vmcs02 (prepare_vmcs02_constant_state) are not redone.
        if not ctx.solver.satisfiable(w.guard, *_ENLIGHTENED_AGAIN):
            continue
        groups = sorted(input_groups(ctx, w))
        if groups and not gates(ctx, w):
            yield ctx.finding(
                "VMX302", w, {"field": w.field, "groups": " and ".join(groups),
                              "verb": "is" if len(groups) == 1 else "are all"},
                guard=render(w.guard), groups=groups)
