"""VMX005, VMX401, VMX402, VMX403: writes that are ill-formed for the field they name."""
from __future__ import annotations

from typing import Iterator

from vmxlint.checks import Context, check
from vmxlint.facts import accessor_width
from vmxlint.findings import Finding
from vmxlint.logic import conj
from vmxlint.sites import Site

# vmx_ops.h rejects only 64-bit fields for these read-modify-write helpers (BUILD_BUG_ON).
BIT_HELPERS = ("vmcs_set_bits", "vmcs_clear_bits")
WIDTH_TEXT = {"16": "16-bit", "32": "32-bit", "64": "64-bit", "natural": "natural-width"}


def _direct(ctx: Context):
    return [s for s in ctx.path.sites if s.kind == "write" and s.direct and s.field]


@check("VMX005")
def unknown_field(ctx: Context) -> Iterator[Finding]:
    for s in _direct(ctx):
        if ctx.facts.get(s.field) is None:
            yield ctx.finding("VMX005", s, {"field": s.field, "accessor": s.accessor})


@check("VMX401")
def accessor_width_mismatch(ctx: Context) -> Iterator[Finding]:
    for s in _direct(ctx):
        info = ctx.facts.get(s.field)
        want = accessor_width(s.accessor or "")
        if info is None or want is None or info.width == want:
            continue
        if s.accessor in BIT_HELPERS and info.width != "64":
            continue
        yield ctx.finding(
            "VMX401", s, {"accessor": s.accessor, "field": s.field,
                          "width": WIDTH_TEXT[info.width], "encoding": f"{info.encoding:#06x}"},
            field_width=info.width, accessor_width=want)


@check("VMX402")
def read_only_field(ctx: Context) -> Iterator[Finding]:
    for s in _direct(ctx):
        info = ctx.facts.get(s.field)
        if info is not None and info.type == "exit-info":
            yield ctx.finding("VMX402", s, {"field": s.field,
                                            "encoding": f"{info.encoding:#06x}"})


def _keeps(ctx: Context, effect: Site, cache: str, helpers: tuple[str, ...]) -> bool:
    """The site is an effect that makes ``cache`` consistent (DESIGN: effects, not names)."""
    if effect.kind == "store":
        return ctx.model.caches.cache_of(effect.value or "") == cache
    if effect.kind == "call":
        return ctx.cache_helpers.get(effect.callee or "") == cache or effect.callee in helpers
    return False


def cache_kept(ctx: Context, s: Site) -> bool:
    """An effect on the path makes the cache of s's field consistent after the raw write:
    one that follows it before the VM entry whenever s runs, or, for a cache KVM loads
    lazily from the VMCS, an invalidation before it."""
    fm = ctx.model.fields[s.field or ""]
    entry = ctx.consumers[-1] if ctx.consumers else None
    # Only entries that happen matter: an early failure exit never reaches the VM entry.
    runs = conj(s.guard, entry.guard) if entry is not None else s.guard
    for e in ctx.path.sites:
        if not _keeps(ctx, e, fm.cache or "", fm.cache_helpers):
            continue
        after = e.order > s.order and (entry is None or e.order < entry.order)
        if (after or (fm.lazy and e.order < s.order)) and ctx.solver.implies(runs, e.guard):
            return True
    return False


@check("VMX403")
def cache_bypass(ctx: Context) -> Iterator[Finding]:
    for s in _direct(ctx):
        fm = ctx.model.fields.get(s.field)
        if fm is None or fm.cache is None or s.vmcs == "vmcs01" \
                or fm.cache in ctx.absent_caches:
            continue
        if fm.cache != "controls-shadow" and cache_kept(ctx, s):
            continue
        use = ", ".join(f"{h}()" for h in fm.cache_helpers) or "the cache helpers"
        yield ctx.finding("VMX403", s, {"accessor": s.accessor, "field": s.field,
                                        "cache": fm.cache, "helpers": use}, cache=fm.cache)
