"""Checks: one module per rule family; each check is one function over a ``Context``.

A check yields ``Finding``s built through ``Context.finding``, which fills in the rule's
name and severity from ``rules/VMXnnn-*.toml``: the data says what a rule is called and
how bad it is, the function says when it fires.
"""
from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Mapping

from msgspec import Struct, field, structs

from vmxlint.facts import Facts
from vmxlint.findings import Evidence, Finding
from vmxlint.logic import TRUE, Atom, Formula, Solver, disj, expand, neg, parse_expr
from vmxlint.model import Model
from vmxlint.runtime import Writer
from vmxlint.sites import EntryPath, Site

if TYPE_CHECKING:  # pragma: no cover
    from vmxlint.answers import BookedSolver

Check = Callable[["Context"], Iterable[Finding]]
MAX_MESSAGE = 199      # a message line stays under 200 characters (details go to JSON)


class Shortenable:
    """A message parameter that can say less: ``shortened(n)`` keeps n of its parts."""

    parts: int

    def shortened(self, n: int) -> str:  # pragma: no cover - interface
        raise NotImplementedError


def render_message(template: str, params: Mapping[str, object]) -> str:
    """The rule's message with its parameters; long lists (counterexamples) are cut to
    fit one line under 200 characters, the rest of them being in the finding's details."""
    values = {k: str(v) for k, v in params.items()}
    text = " ".join(template.format_map(values).split())
    long = [k for k, v in params.items() if isinstance(v, Shortenable)]
    for key in long:
        item = params[key]
        assert isinstance(item, Shortenable)
        n = item.parts
        while len(text) > MAX_MESSAGE and n > 1:
            n -= 1
            values[key] = item.shortened(n)
            text = " ".join(template.format_map(values).split())
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE - 1] + "…"


CHECKS: dict[str, Check] = {}


def check(code: str) -> Callable[[Check], Check]:
    """Register a check function for a rule code."""
    def register(fn: Check) -> Check:
        CHECKS[code] = fn
        return fn
    return register


class Context(Struct, dict=True):
    """What the checks see: the entry path, the tree's facts and the reference model."""

    path: EntryPath
    facts: Facts
    model: Model
    runtime: Mapping[str, list[Writer]] = field(default_factory=dict)
    cache_helpers: Mapping[str, str] = field(default_factory=dict)   # helper -> cache kept
    also: frozenset[str] = frozenset()      # fields the other image of a patch writes
    absent_caches: frozenset[str] = frozenset()   # caches the tree predates
    rel_path: str = "arch/x86/kvm/vmx/nested.c"
    _consumed: dict[str, Formula] = field(default_factory=dict)
    _whole: "Context | None" = None     # the context a slice was cut from
    # One for every image of a process, its answers kept on disk (``vmxlint.answers``).
    process_solver: "Callable[[], Solver | BookedSolver] | None" = None

    def _share(self, **changes: object) -> "Context":
        """This context changed, sharing the solver and the consumption conditions."""
        whole = self._whole or self
        return structs.replace(self, _consumed=whole._consumed, _whole=whole, **changes)

    def with_also(self, also: Iterable[str]) -> "Context":
        """The same path asked also about these fields."""
        return self._share(also=frozenset(also))

    def restrict(self, name: str, sites: Iterable[Site]) -> "Context":
        """The context of one field: some of the path's sites, and ``also`` only if it
        names the field."""
        return self._share(path=structs.replace(self.path, sites=list(sites)),
                           also=self.also & {name})

    def runtime_writers(self, name: str) -> list[Writer]:
        """KVM's writes of the field outside the entry path (vmx.c and friends)."""
        return self.runtime.get(name, [])

    def restore_cover(self, name: str) -> list[Formula]:
        """Runtime writers that give the field a value: one that runs before every VM
        entry covers any entry; one that userspace's state restore runs covers the
        entries that do not emulate L1's VMLAUNCH/VMRESUME (restore, RSM)."""
        writers = self.runtime_writers(name)
        if any(w.every_entry for w in writers):
            return [TRUE]
        if any(w.on_restore for w in writers):
            return [neg(Atom("nested.run_pending"))]
        return []

    def consumed_fields(self) -> set[str]:
        """Fields whose value nested entry must provide: those the path writes, and those
        the other image of a patch writes (a deleted only write leaves none here)."""
        written = {w.field for w in self.writes} | set(self.also)
        return {n for n in written if n in self.model.fields}

    @cached_property
    def solver(self) -> "Solver | BookedSolver":
        if self._whole is not None:
            return self._whole.solver
        if self.process_solver is not None:
            return self.process_solver()
        return model_solver(self.model)

    @cached_property
    def writes(self) -> list[Site]:
        return self.path.writes("vmcs02")

    def writes_of(self, name: str) -> list[Site]:
        return [w for w in self.writes if w.field == name]

    def dirty_only(self, site: Site) -> bool:
        """The site runs only when vmcs12 is dirty or an enlightened VMCS is in use: the
        ``_rare`` part of the entry, whatever its functions are called."""
        return self.solver.implies_some((site.guard,), _DIRTY_OR_ENLIGHTENED)

    def phase(self, site: Site) -> str:
        """The function to name in a message: the phase of the chain the site runs in."""
        phases = [fn for fn in site.chain if self.model.entry.phase_of(fn)]
        return phases[-1] if phases else site.function

    @cached_property
    def consumers(self) -> list[Site]:
        return [s for s in self.path.sites if s.kind == "entry" and s.vmcs == "vmcs02"]

    def consumed(self, name: str) -> Formula:
        """When VM entry consumes the field, over L0/vmcs12/L2 predicates."""
        if name not in self._consumed:
            fm = self.model.fields.get(name)
            f = parse_expr(fm.entry) if fm is not None else TRUE
            self._consumed[name] = expand(f, self.model.control_formulas)
        return self._consumed[name]

    def finding(self, code: str, site: Site, params: Mapping[str, object], *,
                evidence: Iterable[Evidence] = (), **details: object) -> Finding:
        """A finding of rule ``code`` at ``site``, its message rendered from the rule's
        template with ``params`` (one line, under 200 characters)."""
        rule = self.model.rules[code]
        return Finding(code=code, name=rule.name, severity=rule.severity,
                       message=render_message(rule.message, params),
                       path=site.path, line=site.line, function=site.function,
                       field=site.field, evidence=tuple(evidence),
                       details=tuple(sorted(details.items())), statement=site.statement)

    def where(self, site: Site) -> str:
        """``prepare_vmcs02():2782`` or ``nested_vmx_load_cr3()`` for a summarised call."""
        if site.via is not None:
            return f"{site.via}()"
        return f"{site.function}():{site.line}"

    def evidence(self, site: Site, role: str) -> Evidence:
        return Evidence(path=site.path, line=site.line,
                        function=site.via or site.function, role=role)


_DIRTY_OR_ENLIGHTENED = (Atom("vmcs12.dirty"), Atom("evmcs.active"))


def _clean_means_evmcs(atom: str) -> list[Formula]:
    """A clean bit of the enlightened VMCS means something only when one is in use."""
    return [disj(neg(Atom(atom)), Atom("evmcs.active"))] if atom.startswith("evmcs.clean.") \
        else []


def model_solver(model: Model) -> Solver:
    """A solver under the model's axioms.  Its answers, counterexamples included, do not
    depend on the queries asked before (``Solver.prime_implicant``), so the images of a
    process may share one: a guard replayed from an earlier image is known to it."""
    return Solver([parse_expr(a) for a in model.axioms], per_atom=_clean_means_evmcs)


def registered() -> dict[str, Check]:
    """Every check, by rule code (the check modules register themselves on import)."""
    from vmxlint.checks import evmcs, fields, redundant, missing  # noqa: F401  (register)

    return CHECKS


def run_checks(ctx: Context, codes: Iterable[str] | None = None) -> Iterator[Finding]:
    """Run the registered checks (all, or the given codes) over one context."""
    for code, fn in sorted(registered().items()):
        if codes is None or code in codes:
            yield from fn(ctx)


__all__ = ("CHECKS", "Context", "Shortenable", "check", "registered", "render_message",
           "run_checks")
