"""Write sites and their guards along the nested VM-entry path: the VMX recognisers.

The generic guarded walk (``vmxlint.cfront.walk``) follows the code from a root
(``nested_vmx_enter_non_root_mode``) in program order and gives every event its path
condition; this module says what the events mean for vmcs02: writes and reads of VMCS
fields with the provenance of the written value, the VMCS they land in, summarised
helpers, deferred requests, control-bit tests and model predicates.

Guards are kept in two parts: ``local`` (within the site's own function) and ``guard``
(the whole path from the root).  Calls with a declared effect (``summaries.toml``)
become write sites of their own; ``vmx_switch_vmcs`` changes the VMCS writes land in.
"""
from __future__ import annotations

import re
import threading
from collections import OrderedDict
from enum import Enum
from typing import TYPE_CHECKING, Iterable, Mapping

from msgspec import Struct, field, structs

from vmxlint.cfront.walk import (Effect, Frame, GuardedWalk, SummaryMemo, Under, norm,
                                 summary_key)
from vmxlint.logic import TRUE, Atom, Formula, Not, conj, disj, expand, neg, parse_expr
from vmxlint.memo import LazyPattern, kept
from vmxlint.model import PerModel

if TYPE_CHECKING:  # pragma: no cover
    from vmxlint.cfront import Function
    from vmxlint.facts.controls import Controls
    from vmxlint.model import Model

WRITE_ACCESSORS = {
    "vmcs_write16": "16", "vmcs_write32": "32", "vmcs_write64": "64", "vmcs_writel": "natural",
    "vmcs_set_bits": "32", "vmcs_clear_bits": "32",
}
READ_ACCESSORS = {"vmcs_read16", "vmcs_read32", "vmcs_read64", "vmcs_readl"}
# Calls that run the CPU's VM entry on the current VMCS (nested early checks).
HW_ENTRY_CALLS = {"__vmx_vcpu_run"}
SWITCH_VMCS = "vmx_switch_vmcs"
MAKE_REQUEST = "kvm_make_request"
MAX_DEPTH = 12
# vmcs12 members that hold a control word, by control group (vmx.h bit prefixes).
VMCS12_CONTROLS = {
    "pin_based_vm_exec_control": "pin", "cpu_based_vm_exec_control": "proc",
    "secondary_vm_exec_control": "proc2", "tertiary_vm_exec_control": "proc3",
    "vm_entry_controls": "entry", "vm_exit_controls": "exit",
}
# nested.h helpers that test a vmcs12 control bit: name -> group.
VMCS12_BIT_TESTS = {"nested_cpu_has": "proc", "nested_cpu_has2": "proc2",
                    "nested_cpu_has3": "proc3"}
_CONTROLS_GET = LazyPattern(r"_*(\w+?)_controls_get\(\w+\)")


class Provenance(str, Enum):
    """Where a written value comes from (DESIGN section 2); decides persistence."""

    VMCS12 = "vmcs12"
    CONSTANT = "constant"
    L0_CONFIG = "l0-config"
    SNAPSHOT = "snapshot"
    RUNTIME = "runtime"


# A value is the worst class of its parts.
_RANK = {Provenance.CONSTANT: 0, Provenance.L0_CONFIG: 1, Provenance.VMCS12: 2,
         Provenance.RUNTIME: 3, Provenance.SNAPSHOT: 4}
# Declared origins of summaries (summaries.toml) as provenance.
SUMMARY_ORIGIN = {"vmcs12": Provenance.VMCS12, "constant": Provenance.CONSTANT,
                  "l0": Provenance.SNAPSHOT, "mixed": Provenance.SNAPSHOT,
                  "snapshot": Provenance.SNAPSHOT, "runtime": Provenance.RUNTIME,
                  "l0-config": Provenance.L0_CONFIG}


class Site(Effect, Struct, frozen=True):
    """One event on the nested VM-entry path: a write, a read, a call or a VM entry."""

    kind: str                 # "write" | "read" | "call" | "store" | "entry"
    order: int
    function: str             # the function whose text holds the site
    path: str
    line: int
    guard: Formula            # path condition from the root
    local: Formula            # path condition within ``function``
    shown: Formula            # enclosing conditions only (no early exits): for people
    chain: tuple[str, ...]    # call chain from the root, ending in ``function``
    field: str | None = None
    accessor: str | None = None   # vmcs_writeNN, or the summarised callee
    value: str | None = None      # C text of the written value (of a store: "lhs=rhs")
    origin: Provenance = Provenance.SNAPSHOT
    member: str | None = None     # vmcs12 member the value is exactly
    vmcs: str = "vmcs02"          # the VMCS the write lands in
    via: str | None = None        # summarised callee, for writes made through a call
    callee: str | None = None     # for kind == "call"

    @property
    def direct(self) -> bool:
        return self.via is None

    def under(self, entry: Under, shown: Under) -> "Site":
        return self._but(guard=entry(self.guard), shown=shown(self.shown))

    def _but(self, **changes: object) -> "Site":
        """This site with some fields changed."""
        return structs.replace(self, **changes)

    def with_field(self, name: str) -> "Site":
        """This place, speaking of another field (a finding anchored on the consumer)."""
        return structs.replace(self, field=name)

    @property
    def statement(self) -> str:
        """Normalised text of the statement, for a finding's identity."""
        return norm(f"{self.accessor or self.kind}({self.field},{self.value})")


class EntryPath(Struct):
    """The sites of one walk, in program order, and the condition for reaching VM entry."""

    root: str
    sites: list[Site] = field(default_factory=list)
    success: Formula = TRUE
    functions: set[str] = field(default_factory=set)
    labels: dict[str, str] = field(default_factory=dict)   # atom name -> C spelling
    inverted: set[str] = field(default_factory=set)        # atoms whose spelling means "not"
    notes: list[str] = field(default_factory=list)         # embedded tables used, for people
    # id of a site replayed from a summary -> the summary's effect it was made from (the
    # same object for every image that replays the summary the same way).
    origins: dict[int, Site] = field(default_factory=dict)

    def writes(self, vmcs: str = "vmcs02") -> list[Site]:
        return [s for s in self.sites if s.kind == "write" and s.vmcs == vmcs]


class Request(Effect, Struct, frozen=True):
    """A deferred request made on the path (its handler runs before the VM entry)."""

    guard: Formula
    deferred: object

    def under(self, entry: Under, shown: Under) -> "Request":
        return Request(entry(self.guard), self.deferred)


class Spelling(Effect, Struct, frozen=True):
    """A recognised predicate met under its C spelling."""

    known: Formula
    spelled: str


# Summaries of walked calls, kept in process by walk scope (model, control bits, file,
# thread: a memo is never shared between threads): the next image of a series walks again
# only the calls whose functions changed.  With a store key, a scope starts from the
# summaries on disk and leaves its own there (``vmxlint.walkstore``).
SUMMARIES = 4096
SCOPES = 8
_summaries: "OrderedDict[tuple, tuple[object, SummaryMemo, str | None]]" = OrderedDict()


def _memo(model: "Model", bits: dict, helpers: dict, path: str,
          store: str | None) -> SummaryMemo:
    scope = (id(model), frozenset(bits.items()), frozenset(helpers.items()), path,
             threading.get_ident(), store)
    held = _summaries.get(scope)
    if held is None:
        memo = SummaryMemo(SUMMARIES)
        if store is not None:
            _load(memo, model, store)
        held = _summaries[scope] = (model, memo, store)      # model kept: its id stays
        while len(_summaries) > SCOPES:
            _summaries.popitem(last=False)
    return held[1]


def _load(memo: SummaryMemo, model: "Model", store: str) -> None:
    from vmxlint import cache, walkstore
    from vmxlint.cfront import lazy, walk

    cache.at_exit(save_summaries, pending=lambda: SUMMARIES_WEIGHT * len(_to_save()))
    text = cache.get(store, str)
    if text is None:
        return
    try:
        summaries, params, fine = walkstore.decode(text, model)
        memo.preload(summaries)
    except (ValueError, RecursionError):
        memo.clear()
        memo.loaded = 0
        return                       # an entry of another shape: walked again, rewritten
    walk.TRACKED_PARAMS.update(params)
    for digest in fine:
        lazy.note_parsed_fine(digest)


def save_summaries() -> None:
    """Leave each scope's summaries in the cache when this process walked a good part of
    them (a check that re-walks three calls of forty leaves the entry it read alone)."""
    from vmxlint import cache, walkstore
    from vmxlint.cfront import lazy, walk

    for memo, store in _to_save():
        cache.put(store, walkstore.encode(list(memo.items()), walk.TRACKED_PARAMS,
                                          lazy.PARSED_FINE))
        memo.recorded.clear()
        memo.loaded = len(memo)


def _to_save() -> list[tuple[SummaryMemo, str]]:
    out = []
    for _, memo, store in list(_summaries.values()):
        if store is None or not memo.recorded:
            continue
        if memo.loaded and 4 * len(memo.recorded) <= len(memo):
            continue
        out.append((memo, store))
    return out


# A scope's summaries are one large entry: as much to write as this many trees.
SUMMARIES_WEIGHT = 16


class _Predicates:
    """C spellings -> model predicates, from rules/model/predicates.toml."""

    def __init__(self, model: "Model") -> None:
        self.exact: dict[str, list] = {}
        self.regex: list = []
        # A vmcs02 control means what vmcs02.toml derives it from (L0, vmcs12).
        self.controls = model.control_formulas
        self.memo: dict[tuple[str, str], Formula | None] = {}
        self.expanded: dict[str, Formula] = {}     # control bit -> what it means
        for p in model.predicates:
            if p.regex:
                self.regex.append((re.compile(p.spelling), p))
            else:
                self.exact.setdefault(norm(p.spelling), []).append(p)

    def control(self, bit: Atom) -> Formula:
        """What a vmcs02 control bit means."""
        hit = self.expanded.get(bit.name)
        if hit is None:
            hit = self.expanded[bit.name] = expand(bit, self.controls)
        return hit

    def lookup(self, text: str, function: str) -> Formula | None:
        key = (text, function)
        if key not in self.memo:
            self.memo[key] = self._lookup(text, function)
        return self.memo[key]

    def _lookup(self, text: str, function: str) -> Formula | None:
        for p in self.exact.get(text, ()):
            if not p.functions or function in p.functions:
                return expand(parse_expr(p.means), self.controls)
        for rx, p in self.regex:
            if p.functions and function not in p.functions:
                continue
            m = rx.fullmatch(text)
            if m:
                return expand(parse_expr(m.expand(p.means)), self.controls)
        return None


PLACED_MEMO = 65536
# (id of a summarised site, its order, its line) -> (that site, the site it made)
_PLACED: dict[tuple[int, int, int], tuple[Site, Site]] = {}


# The model's predicates, with the spellings looked up so far in this process: a look-up
# expands the vmcs02 controls in what the predicate means, and every image of a series
# asks about the same spellings.
_predicates = PerModel(_Predicates)


class Walker(GuardedWalk):
    """The nested VM-entry path: VMX meaning for the guarded walk's calls and conditions."""

    def __init__(self, functions: Mapping[str, "Function"], model: "Model",
                 extra_sites: Iterable[Site] = (), controls: "Controls | None" = None,
                 summaries: bool = True, store: str | None = None) -> None:
        super().__init__(functions)
        self.summaries = summaries
        self.store = store
        self.model = model
        self.preds = _predicates(model)
        self.bits = dict(controls.bits) if controls is not None else {}
        self.bit_helpers = dict(controls.helpers) if controls is not None else {}
        self.sites: list[Site] = list(extra_sites)
        self.origins: dict[int, Site] = {}
        self.order = 0
        self.vmcs = "vmcs02"
        self.inverted: set[str] = set()
        self.requests = {d.request: d for d in model.entry.deferred}
        self.pending: list[tuple[Formula, object]] = []   # deferred requests made on the path
        self.context: set[str] = set()                     # spellings true at a handler

    # -- entry point ---------------------------------------------------------------
    def walk(self, root: str) -> EntryPath:
        path, (_, end) = self._where(root)
        if self.summaries and self._fingerprint is not None:
            self.memo = _memo(self.model, self.bits, self.bit_helpers, path, self.store)
        # The root's walk is summarised too: an edit of a callee replays it.
        key = summary_key(f"entry:{root}", {}, (), self.walk_state())
        success = self.summarised(key, root, lambda: self._walk_root(root))
        success = self._run_deferred(root, success)
        self._add(Site(kind="entry", order=0, function=root, path=path, line=end,
                       guard=success, local=success, shown=TRUE, chain=(root,), callee=None))
        return EntryPath(root=root, sites=self.sites, success=success,
                         functions=self.visited, labels=self.labels, inverted=self.inverted,
                         origins=self.origins)

    def _where(self, name: str) -> tuple[str, tuple[int, int]]:
        """The path and the first and last line of a function, without parsing it when
        the unit can tell from its split."""
        span = getattr(self.functions, "span", None)
        where = span(name) if span is not None else None
        path = getattr(self.functions, "path", None)
        if where is None or path is None:
            fn = self.functions[name]
            return fn.path, (fn.start_line, fn.end_line)
        return path, where

    def _walk_root(self, root: str) -> Formula:
        """Walk the root; when it leaves on its success exit."""
        fn = self.functions[root]
        # Writes before the first vmx_switch_vmcs in the root land in the VMCS that was
        # loaded on entry, which on the nested entry path is vmcs01.
        if SWITCH_VMCS in self.text(fn.node.body):
            self.vmcs = "vmcs01"
        frame = self.enter(root, TRUE, {}, ())
        # The success exit is the return that ends the root's top-level block, after the
        # last setup step (NVMX_VMENTRY_SUCCESS in 6.x, 0 in 4.20-5.x); every other
        # return and goto leaves on a failure.
        top = {id(item) for item in fn.node.body.block_items or ()
               if type(item).__name__ == "Return"}
        ok = [pc for pc, expr, node in frame.returns if id(node) in top]
        return disj(*ok) if ok else disj(*(pc for pc, _, _ in frame.returns)) \
            if frame.returns else TRUE

    def _run_deferred(self, root: str, success: Formula) -> Formula:
        """Run the handlers of requests made on the path, as the run loop does before the
        VM entry; an entry happens only when each pending handler succeeds."""
        self.vmcs = "vmcs02"
        self.context = set(self.model.entry.deferred_context)
        for made, deferred in self.pending:
            handler = next((h for h in deferred.handlers if h in self.functions), None)
            if handler is None:
                continue
            when = conj(success, made)
            # The handler's first line from the unit's split: a look-up would parse it (or
            # rebuild its tree at a moved line) on every image, for a line.
            self._add(Site(kind="call", callee=handler, order=0, function=root,
                           path=self._where(root)[0], line=self.start(handler),
                           guard=when, local=when, shown=made, chain=(root,)))
            returns = self.walk_function(handler, when, {}, (root,), made)
            success = conj(success, disj(neg(made), returns))
        self.context = set()
        return success

    def _add(self, site: Site) -> None:
        if not self._recording:         # carried out now: its line stays as it is
            self.order += 1
            self.sites.append(site._but(order=self.order))
            return
        # Kept relative to its function's first line until carried out (``apply``).
        self.emit(site._but(line=site.line - self.start(site.function)))

    # -- the guarded walk's hooks -----------------------------------------------------------
    def apply(self, effect: Effect) -> None:
        if isinstance(effect, Site):
            self.order = order = self.order + 1
            # (The function's first line as ``start`` gives it, without the call: ~1000
            # effects an image.)
            start = self._starts.get(effect.function)
            line = effect.line + (start if start is not None else self.start(effect.function))
            # A replay makes the sites the images before made: the same effect at the same
            # place in the walk and on the same line is the same site (~1000 an image).
            key = (id(effect), order, line)
            held = _PLACED.get(key)
            if held is None or held[0] is not effect:
                held = kept(_PLACED, key, (effect, effect._but(order=order, line=line)),
                            PLACED_MEMO)
            site = held[1]
            self.sites.append(site)
            self.origins[id(site)] = effect
        elif isinstance(effect, Request):
            self.pending.append((effect.guard, effect.deferred))
        elif isinstance(effect, Spelling):
            self._spelled_as(effect.known, effect.spelled)
        else:
            super().apply(effect)

    def walk_state(self) -> object:
        return self.vmcs, frozenset(self.context)

    def set_walk_state(self, state: object) -> None:
        self.vmcs = state[0]      # type: ignore[index]

    def resume_state(self, state: object) -> None:
        self.vmcs, self.context = state[0], set(state[1])   # type: ignore[index]

    def branch_state(self) -> object:
        return self.vmcs

    def restore_state(self, state: object) -> None:
        self.vmcs = str(state)

    def join_state(self, after_true: object, true_leaves: Formula,
                   false_leaves: Formula) -> None:
        # A branch that always leaves (return, goto) does not decide the VMCS after the if.
        if true_leaves == TRUE or after_true == self.vmcs:
            return
        self.vmcs = str(after_true) if false_leaves == TRUE else "unknown"

    def on_store(self, node, pc: Formula, fr: Frame) -> None:
        # A store to memory (vmx->segment_cache.bitmask = 0): an effect checks can see.
        self._add(Site(kind="store", value=f"{self.text(node.lvalue)}{node.op}"
                       f"{self.text(node.rvalue)}", function=fr.name, path=fr.path,
                       line=node.coord.line if node.coord else 0, guard=conj(fr.entry, pc),
                       local=pc, shown=conj(fr.shown, fr.spc), chain=fr.chain, order=0,
                       vmcs=self.vmcs))

    def recognise(self, node, text: str, spelled: str, fr: Frame) -> Formula | None:
        """Model predicates (predicates.toml), control bits, and what holds at a handler."""
        if text in self.context:
            return TRUE
        known = self.preds.lookup(text, fr.name)
        if known is None:
            known = self._control_test(node)
        if known is None:
            return None
        self.emit(Spelling(known, spelled))
        return _label(known, spelled)

    def _spelled_as(self, known: Formula, spelled: str) -> None:
        """Remember the C spelling of a lone predicate, with its polarity; a compound
        meaning (an expanded vmcs02 control) lends its spelling to none of its atoms."""
        if isinstance(known, Atom):
            self.labels.setdefault(known.name, spelled)
        elif isinstance(known, Not) and isinstance(known.arg, Atom) \
                and known.arg.name not in self.labels:
            self.labels[known.arg.name] = spelled
            self.inverted.add(known.arg.name)

    # -- control bits, recognised from vmx.h's definitions --------------------------------
    def _control_test(self, node) -> Formula | None:
        """``nested_cpu_has2(vmcs12, X)``, ``vmcs12->vm_entry_controls & X`` and
        ``exec_controls_get(vmx) & X`` as control-bit predicates of the VMCS they read."""
        kind = type(node).__name__
        if kind == "FuncCall" and type(node.name).__name__ == "ID" and node.args \
                and node.args.exprs and self.text(node.args.exprs[0]) == "vmcs12":
            name, args = node.name.name, node.args.exprs
            if name in VMCS12_BIT_TESTS and len(args) == 2:
                return self._bits_of(args[1], "vmcs12")
            if name in self.bit_helpers and len(args) == 1:
                return self._bits_of(self.bit_helpers[name], "vmcs12")
        if kind == "BinaryOp" and node.op == "&":
            for word, mask in ((node.left, node.right), (node.right, node.left)):
                owner = self._control_word(word)
                if owner is not None:
                    return self._bits_of(mask, owner)
        return None

    def _control_word(self, node) -> str | None:
        text = self.text(node)
        m = re.fullmatch(r"vmcs12->(\w+)", text)
        if m and m.group(1) in VMCS12_CONTROLS:
            return "vmcs12"
        if _CONTROLS_GET.fullmatch(text) and self.vmcs in ("vmcs01", "vmcs02"):
            return self.vmcs
        return None

    def _bits_of(self, mask, owner: str) -> Formula | None:
        parts = []
        text = mask if isinstance(mask, str) else self.text(mask)
        for name in text.strip("()").split("|"):
            bit = self.bits.get(name.strip("()"))
            if bit is None:
                return None
            a: Formula = Atom(f"{owner}.{bit[0]}.{bit[1]}")
            parts.append(self.preds.control(a) if owner == "vmcs02" else a)
        return disj(*parts) if parts else None

    # -- calls -----------------------------------------------------------------------
    def on_call(self, node, pc: Formula, fr: Frame) -> None:
        if type(node.name).__name__ != "ID":
            return
        name = node.name.name
        args = list(node.args.exprs) if node.args is not None else []
        line = node.coord.line if node.coord else 0
        guard = conj(fr.entry, pc)
        shown = conj(fr.shown, fr.spc)
        base = dict(function=fr.name, path=fr.path, line=line, guard=guard, local=pc,
                    shown=shown, chain=fr.chain, order=0)
        if name == MAKE_REQUEST and args and self.text(args[0]) in self.requests:
            self.emit(Request(guard, self.requests[self.text(args[0])]))
        if name in WRITE_ACCESSORS and args:
            value = args[1] if len(args) > 1 else None
            origin, member = self.provenance(value, fr)
            self._add(Site(kind="write", field=self._field(args[0]), accessor=name,
                           value=self.spelling(value) if value is not None else None,
                           origin=origin, member=member, vmcs=self.vmcs, **base))
        elif name in READ_ACCESSORS and args:
            self._add(Site(kind="read", field=self._field(args[0]), accessor=name,
                           vmcs=self.vmcs, **base))
        elif name == SWITCH_VMCS and len(args) > 1:
            self._add(Site(kind="call", callee=name, vmcs=self.vmcs, **base))
            target = self.text(args[1])
            self.vmcs = "vmcs02" if "vmcs02" in target else (
                "vmcs01" if "vmcs01" in target else "unknown")
        elif name in HW_ENTRY_CALLS:
            self._add(Site(kind="entry", callee=name, vmcs=self.vmcs, **base))
        elif name in self.model.summaries:
            self._summary(name, args, base, fr)
        elif self.defined(name) and name not in fr.chain and len(fr.chain) < MAX_DEPTH:
            self._add(Site(kind="call", callee=name, vmcs=self.vmcs, **base))
            self.walk_call(node, name, args, guard, fr, shown)
        else:
            # Unknown effect; kept so checks can see helpers such as cache invalidation.
            self._add(Site(kind="call", callee=name, vmcs=self.vmcs, **base))

    def _summary(self, name: str, args: list, base: dict, fr: Frame) -> None:
        summ = self.model.summaries[name]
        params = {p: self.cond(a, fr) for p, a in zip(summ.params, args)}
        nodes = dict(zip(summ.params, args))
        self._add(Site(kind="call", callee=name, vmcs=self.vmcs, **base))
        for w in summ.writes:
            when = parse_expr(w.when, {k: _label(v, None) for k, v in params.items()})
            arg = nodes.get((w.value or "").lstrip("$"))
            origin, member = self.provenance(arg, fr) if arg is not None \
                else (SUMMARY_ORIGIN[w.origin], None)
            self._add(Site(kind="write", field=w.field, accessor=name, origin=origin,
                           member=member, vmcs=self.vmcs, via=name,
                           value=self.spelling(arg) if arg is not None else None,
                           **{**base, "guard": conj(base["guard"], when),
                              "local": conj(base["local"], when),
                              "shown": conj(base["shown"], when)}))

    def _field(self, node) -> str | None:
        if type(node).__name__ == "ID":
            return node.name
        return None

    # -- provenance of written values ---------------------------------------------------
    def provenance(self, node, fr: Frame) -> tuple[Provenance, str | None]:
        """The class of a written value, and the vmcs12 member when it is exactly one."""
        if node is None:
            return Provenance.SNAPSHOT, None
        m = re.fullmatch(r"(?:\([\w ]+\))?vmcs12->(\w+)", self.text(node))
        if m:
            return Provenance.VMCS12, m.group(1)
        return self._leaf_class(node, fr), None

    def _leaf_class(self, node, fr: Frame) -> Provenance:
        kind = type(node).__name__
        text = self.text(node)
        if kind == "Constant":
            return Provenance.CONSTANT
        for vp in self.model.values:
            if vp.pattern.search(text):
                return Provenance(vp.provenance)
        if kind == "ID":
            if node.name == "vmcs12":
                return Provenance.VMCS12
            if re.fullmatch(r"[A-Z][A-Z0-9_]*", node.name):
                return Provenance.CONSTANT
            return Provenance.SNAPSHOT
        if kind in ("StructRef", "ArrayRef"):
            return Provenance.VMCS12 if text.startswith("vmcs12->") else Provenance.SNAPSHOT
        if kind == "FuncCall":
            args = list(node.args.exprs) if node.args is not None else []
            if not args:
                return Provenance.SNAPSHOT
            # A helper of vmcs12 values only (nested_read_cr0(vmcs12)) derives from vmcs12.
            return max((self._leaf_class(a, fr) for a in args), key=_RANK.__getitem__)
        if kind == "Typename":
            return Provenance.CONSTANT
        parts = [self._leaf_class(c, fr) for _, c in node.children()]
        return max(parts, key=_RANK.__getitem__) if parts else Provenance.SNAPSHOT


def _label(f: Formula, label: str | None) -> Formula:
    """Give a lone predicate atom the C spelling it came from, for display."""
    if isinstance(f, Atom) and label is not None:
        return Atom(f.name, label=label)
    return f


def find_root(functions: Mapping[str, "Function"], model: "Model") -> str | None:
    """The first entry root of the model (current name first) that the unit defines."""
    return next((r for r in model.entry.roots if r in functions), None)


def walk_entry_path(functions: Mapping[str, "Function"], model: "Model", root: str,
                    controls: "Controls | None" = None, summaries: bool = True,
                    store: str | None = None) -> EntryPath:
    """Collect the sites of the nested VM-entry path starting at root.  With summaries
    (and a unit that fingerprints its functions), calls walked for an image before in
    this process are replayed where their functions did not change; ``store``, the cache
    key of the scope's summaries on disk, adds those of earlier processes."""
    return Walker(functions, model, controls=controls, summaries=summaries,
                  store=store).walk(root)
