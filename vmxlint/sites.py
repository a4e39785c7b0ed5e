"""Write sites and their guards, read from the C AST along the nested VM-entry path.

The walk starts at a root function (``nested_vmx_enter_non_root_mode``) and follows
calls into functions of the same unit in program order, so every site gets a place in
one sequence (``order``) and a guard: the path condition from the root, made of the
enclosing ``if``/``else``, ``?:``, ``&&``/``||`` short-circuits, early returns, local
boolean or pointer variables, and the arguments bound to the callee's parameters.

Guards are kept in two parts: ``local`` (within the site's own function) and ``guard``
(the whole path from the root).  Calls with a declared effect (``summaries.toml``)
become write sites of their own; ``vmx_switch_vmcs`` changes the VMCS writes land in.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Iterable, Mapping

from vmxlint.logic import (FALSE, TRUE, Atom, Formula, Not, conj, disj, expand, neg,
                           parse_expr)

if TYPE_CHECKING:  # pragma: no cover
    from pycparser import c_ast

    from vmxlint.cfront import Function
    from vmxlint.facts.controls import Controls
    from vmxlint.model import Model

WRITE_ACCESSORS = {
    "vmcs_write16": "16", "vmcs_write32": "32", "vmcs_write64": "64", "vmcs_writel": "natural",
    "vmcs_set_bits": "32", "vmcs_clear_bits": "32",
}
READ_ACCESSORS = {"vmcs_read16", "vmcs_read32", "vmcs_read64", "vmcs_readl"}
# Conditions that wrap another one without changing its truth value.
TRANSPARENT = {"likely", "unlikely", "CC", "WARN_ON", "WARN_ON_ONCE", "unlikely_notrace"}
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
_CONTROLS_GET = re.compile(r"_*(\w+?)_controls_get\(\w+\)")


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


@dataclass(frozen=True)
class Site:
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

    def with_field(self, name: str) -> "Site":
        """This place, speaking of another field (a finding anchored on the consumer)."""
        return Site(**{**self.__dict__, "field": name})

    @property
    def statement(self) -> str:
        """Normalised text of the statement, for a finding's identity."""
        return _norm(f"{self.accessor or self.kind}({self.field},{self.value})")


@dataclass
class EntryPath:
    """The sites of one walk, in program order, and the condition for reaching VM entry."""

    root: str
    sites: list[Site] = field(default_factory=list)
    success: Formula = TRUE
    functions: set[str] = field(default_factory=set)
    labels: dict[str, str] = field(default_factory=dict)   # atom name -> C spelling
    inverted: set[str] = field(default_factory=set)        # atoms whose spelling means "not"
    notes: list[str] = field(default_factory=list)         # embedded tables used, for people

    def writes(self, vmcs: str = "vmcs02") -> list[Site]:
        return [s for s in self.sites if s.kind == "write" and s.vmcs == vmcs]


def _norm(text: str) -> str:
    return re.sub(r"\s+", "", text)


class _Predicates:
    """C spellings -> model predicates, from rules/model/predicates.toml."""

    def __init__(self, model: "Model") -> None:
        self.exact: dict[str, list] = {}
        self.regex: list = []
        # A vmcs02 control means what vmcs02.toml derives it from (L0, vmcs12).
        self.controls = {k: parse_expr(v) for k, v in model.controls.items()}
        self.memo: dict[tuple[str, str], Formula | None] = {}
        for p in model.predicates:
            if p.regex:
                self.regex.append((re.compile(p.spelling), p))
            else:
                self.exact.setdefault(_norm(p.spelling), []).append(p)

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


class _Frame:
    """Walk state of one function activation."""

    def __init__(self, name: str, path: str, entry: Formula, chain: tuple[str, ...],
                 env: dict[str, Formula], shown: Formula = TRUE) -> None:
        self.name = name
        self.path = path
        self.entry = entry
        self.shown = shown
        self.spc: Formula = TRUE      # enclosing conditions at the current statement
        self.chain = chain
        self.env = env
        self.tracked: set[str] = set(env)
        self.returns: list[tuple[Formula, "c_ast.Node | None", "c_ast.Node"]] = []
        self.assigned: dict[str, int] = {}   # local -> how many times it was assigned


class Walker:
    """Walks functions from a root and collects sites."""

    def __init__(self, functions: Mapping[str, "Function"], model: "Model",
                 extra_sites: Iterable[Site] = (), controls: "Controls | None" = None) -> None:
        from pycparser import c_generator

        self.functions = functions
        self.model = model
        self.preds = _Predicates(model)
        self.bits = dict(controls.bits) if controls is not None else {}
        self.bit_helpers = dict(controls.helpers) if controls is not None else {}
        self.gen = c_generator.CGenerator()
        self.sites: list[Site] = list(extra_sites)
        self.order = 0
        self.vmcs = "vmcs02"
        self.call_values: dict[int, Formula] = {}
        self.labels: dict[str, str] = {}
        self.inverted: set[str] = set()
        self.visited: set[str] = set()
        self.requests = {d.request: d for d in model.entry.deferred}
        self.pending: list[tuple[Formula, object]] = []   # deferred requests made on the path
        self.context: set[str] = set()                     # spellings true at a handler

    # -- entry point ---------------------------------------------------------------
    def walk(self, root: str) -> EntryPath:
        fn = self.functions[root]
        # Writes before the first vmx_switch_vmcs in the root land in the VMCS that was
        # loaded on entry, which on the nested entry path is vmcs01.
        if SWITCH_VMCS in self.text(fn.node.body):
            self.vmcs = "vmcs01"
        frame = self._call(root, TRUE, {}, ())
        # The success exit is the return that ends the root's top-level block, after the
        # last setup step (NVMX_VMENTRY_SUCCESS in 6.x, 0 in 4.20-5.x); every other
        # return and goto leaves on a failure.
        top = {id(item) for item in fn.node.body.block_items or ()
               if type(item).__name__ == "Return"}
        ok = [pc for pc, expr, node in frame.returns if id(node) in top]
        success = disj(*ok) if ok else disj(*(pc for pc, _, _ in frame.returns)) \
            if frame.returns else TRUE
        success = self._run_deferred(root, success)
        self._add(Site(kind="entry", order=0, function=root, path=fn.path,
                       line=fn.end_line, guard=success, local=success, shown=TRUE,
                       chain=(root,), callee=None))
        return EntryPath(root=root, sites=self.sites, success=success,
                         functions=self.visited, labels=self.labels, inverted=self.inverted)

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
            self._add(Site(kind="call", callee=handler, order=0, function=root,
                           path=self.functions[handler].path,
                           line=self.functions[handler].start_line, guard=when, local=when,
                           shown=made, chain=(root,)))
            sub = self._call(handler, when, {}, (root,), made)
            ran = disj(*(conj(rpc, self._truth(expr, sub)) for rpc, expr, _ in sub.returns)) \
                if sub.returns else TRUE
            success = conj(success, disj(neg(made), ran))
        self.context = set()
        return success

    # -- helpers ---------------------------------------------------------------------
    def text(self, node: "c_ast.Node") -> str:
        return _norm(self.gen.visit(node))

    def _add(self, site: Site) -> None:
        self.order += 1
        self.sites.append(Site(**{**site.__dict__, "order": self.order}))

    def _call(self, name: str, entry: Formula, env: dict[str, Formula],
              chain: tuple[str, ...], shown: Formula = TRUE) -> _Frame:
        fn = self.functions[name]
        self.visited.add(name)
        frame = _Frame(name, fn.path, entry, chain + (name,), env, shown)
        self._stmt(fn.node.body, TRUE, frame)
        return frame

    # -- statements: each returns the condition (relative to pc) of leaving early -----
    def _stmt(self, node, pc: Formula, fr: _Frame) -> Formula:
        if node is None or pc == FALSE:
            return FALSE
        kind = type(node).__name__
        handler = getattr(self, f"_s_{kind}", None)
        if handler is not None:
            return handler(node, pc, fr)
        self._expr(node, pc, fr)       # expression statement
        return FALSE

    def _s_Compound(self, node, pc, fr) -> Formula:
        exits = FALSE
        for item in node.block_items or ():
            r = self._stmt(item, conj(pc, neg(exits)), fr)
            exits = disj(exits, r)
        return exits

    def _s_If(self, node, pc, fr) -> Formula:
        self._expr(node.cond, pc, fr)
        c = self.cond(node.cond, fr)
        spc, vmcs = fr.spc, self.vmcs
        fr.spc = conj(spc, c)
        ra = self._stmt(node.iftrue, conj(pc, c), fr)
        vmcs_a, self.vmcs = self.vmcs, vmcs
        fr.spc = conj(spc, neg(c))
        rb = self._stmt(node.iffalse, conj(pc, neg(c)), fr)
        fr.spc = spc
        # A branch that always leaves (return, goto) does not decide the VMCS after the if.
        if ra == TRUE or vmcs_a == self.vmcs:
            pass
        elif rb == TRUE:
            self.vmcs = vmcs_a
        else:
            self.vmcs = "unknown"
        return disj(conj(c, ra), conj(neg(c), rb))

    def _s_Return(self, node, pc, fr) -> Formula:
        if node.expr is not None:
            self._expr(node.expr, pc, fr)
        fr.returns.append((pc, node.expr, node))
        return TRUE

    def _s_Goto(self, node, pc, fr) -> Formula:
        # Gotos on the entry path jump to failure labels: leaving the success path.
        return TRUE

    def _s_Label(self, node, pc, fr) -> Formula:
        return self._stmt(node.stmt, pc, fr)

    def _s_Decl(self, node, pc, fr) -> Formula:
        if node.name:
            fr.assigned[node.name] = 1 if node.init is not None else 0
        if node.init is not None:
            self._expr(node.init, pc, fr)
            if self._trackable(node.type):
                fr.env[node.name] = self.cond(node.init, fr)
                fr.tracked.add(node.name)
        elif self._trackable(node.type) and node.name:
            fr.tracked.add(node.name)
        return FALSE

    def _s_DeclList(self, node, pc, fr) -> Formula:
        for d in node.decls:
            self._s_Decl(d, pc, fr)
        return FALSE

    def _loop(self, node, pc, fr) -> Formula:
        cond = getattr(node, "cond", None)
        if cond is not None:
            self._expr(cond, pc, fr)
        text = self.text(cond) if cond is not None else "1"
        taken = Atom(f"c:loop({text})", label=f"loop({text})")
        r = self._stmt(node.stmt, conj(pc, taken), fr)
        return conj(taken, r)

    _s_For = _s_While = _s_DoWhile = _loop

    def _s_Switch(self, node, pc, fr) -> Formula:
        self._expr(node.cond, pc, fr)
        taken = Atom(f"c:switch({self.text(node.cond)})")
        return conj(taken, self._stmt(node.stmt, conj(pc, taken), fr))

    def _s_Case(self, node, pc, fr) -> Formula:
        exits = FALSE
        for s in node.stmts or ():
            exits = disj(exits, self._stmt(s, conj(pc, neg(exits)), fr))
        return exits

    _s_Default = _s_Case

    def _s_Break(self, node, pc, fr) -> Formula:
        return FALSE

    _s_Continue = _s_EmptyStatement = _s_Pragma = _s_Break

    def _s_Assignment(self, node, pc, fr) -> Formula:
        self._expr(node.rvalue, pc, fr)
        lv = node.lvalue
        if type(lv).__name__ == "ID" and lv.name in fr.assigned:
            # A local reused for another value: conditions on it are a new atom from here.
            fr.assigned[lv.name] += 1
        elif type(lv).__name__ != "ID":
            # A store to memory (vmx->segment_cache.bitmask = 0): an effect checks can see.
            self._add(Site(kind="store", value=f"{self.text(lv)}{node.op}{self.text(node.rvalue)}",
                           function=fr.name, path=fr.path,
                           line=node.coord.line if node.coord else 0, guard=conj(fr.entry, pc),
                           local=pc, shown=conj(fr.shown, fr.spc), chain=fr.chain, order=0,
                           vmcs=self.vmcs))
        if type(lv).__name__ == "ID" and lv.name in fr.tracked and node.op == "=":
            old = fr.env.get(lv.name, Atom(f"c:{lv.name}@{fr.name}", label=lv.name))
            new = self.cond(node.rvalue, fr)
            fr.env[lv.name] = disj(conj(pc, new), conj(neg(pc), old)) if pc != TRUE else new
        return FALSE

    @staticmethod
    def _trackable(typ) -> bool:
        """Local variables whose truth value is worth following: bool and pointers."""
        kind = type(typ).__name__
        if kind == "PtrDecl":
            return True
        if kind == "TypeDecl":
            names = getattr(typ.type, "names", None) or []
            return names in (["bool"], ["_Bool"])
        return False

    # -- expressions: find calls, with the short-circuit condition they run under -----
    def _expr(self, node, pc: Formula, fr: _Frame) -> None:
        if node is None or pc == FALSE:
            return
        kind = type(node).__name__
        if kind == "FuncCall":
            if node.args is not None:
                for a in node.args.exprs:
                    self._expr(a, pc, fr)
            self._on_call(node, pc, fr)
        elif kind == "BinaryOp" and node.op in ("&&", "||"):
            self._expr(node.left, pc, fr)
            left = self.cond(node.left, fr)
            self._expr(node.right, conj(pc, left if node.op == "&&" else neg(left)), fr)
        elif kind == "TernaryOp":
            self._expr(node.cond, pc, fr)
            c = self.cond(node.cond, fr)
            self._expr(node.iftrue, conj(pc, c), fr)
            self._expr(node.iffalse, conj(pc, neg(c)), fr)
        elif kind == "Assignment":
            self._s_Assignment(node, pc, fr)
        else:
            for _, child in node.children():
                self._expr(child, pc, fr)

    # -- conditions ------------------------------------------------------------------
    def cond(self, node, fr: _Frame) -> Formula:
        """The formula for a C expression used as a condition."""
        kind = type(node).__name__
        if kind == "UnaryOp" and node.op == "!":
            return neg(self.cond(node.expr, fr))
        if kind == "BinaryOp" and node.op in ("&&", "||"):
            left, right = self.cond(node.left, fr), self.cond(node.right, fr)
            return conj(left, right) if node.op == "&&" else disj(left, right)
        if kind == "Cast":
            return self.cond(node.expr, fr)
        if kind == "Constant" and node.type == "int":
            try:
                return TRUE if int(node.value.rstrip("uUlL"), 0) else FALSE
            except ValueError:
                pass
        if kind == "ID":
            if node.name in ("true", "false"):
                return TRUE if node.name == "true" else FALSE
            if node.name in fr.env:
                return fr.env[node.name]
        if kind == "BinaryOp" and node.op in ("!=", "==") and self.text(node.right) in (
                "0", "NULL", "false"):
            inner = self.cond(node.left, fr)
            return inner if node.op == "!=" else neg(inner)
        if kind == "FuncCall" and type(node.name).__name__ == "ID" \
                and node.name.name in TRANSPARENT and node.args and node.args.exprs:
            return self.cond(node.args.exprs[0], fr)
        text = self.text(node)
        spelled = self.gen.visit(node)
        if text in self.context:
            return TRUE
        known = self.preds.lookup(text, fr.name)
        if known is None:
            known = self._control_test(node)
        if known is not None:
            self._spell(known, spelled)
            return _label(known, spelled)
        if kind == "FuncCall" and id(node) in self.call_values:
            return self.call_values[id(node)]
        name = f"c:{text}{self._version(node, fr)}"
        self.labels.setdefault(name, spelled)
        return Atom(name, label=spelled)

    def _spell(self, known: Formula, spelled: str) -> None:
        """Remember the C spelling of a lone predicate, with its polarity; a compound
        meaning (an expanded vmcs02 control) lends its spelling to none of its atoms."""
        if isinstance(known, Atom):
            self.labels.setdefault(known.name, spelled)
        elif isinstance(known, Not) and isinstance(known.arg, Atom) \
                and known.arg.name not in self.labels:
            self.labels[known.arg.name] = spelled
            self.inverted.add(known.arg.name)

    def _version(self, node, fr: _Frame) -> str:
        """``@x#2`` when the condition reads a local assigned more than once so far."""
        tags = []
        stack = [node]
        while stack:
            n = stack.pop()
            if type(n).__name__ == "ID" and fr.assigned.get(n.name, 0) > 1:
                tags.append(f"@{n.name}#{fr.assigned[n.name]}")
            stack.extend(c for _, c in n.children())
        return "".join(sorted(set(tags)))

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
            parts.append(expand(a, self.preds.controls) if owner == "vmcs02" else a)
        return disj(*parts) if parts else None

    # -- calls -----------------------------------------------------------------------
    def _on_call(self, node, pc: Formula, fr: _Frame) -> None:
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
            self.pending.append((guard, self.requests[self.text(args[0])]))
        if name in WRITE_ACCESSORS and args:
            value = args[1] if len(args) > 1 else None
            origin, member = self.provenance(value, fr)
            self._add(Site(kind="write", field=self._field(args[0]), accessor=name,
                           value=self.gen.visit(value) if value is not None else None,
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
        elif name in self.functions and name not in fr.chain and len(fr.chain) < MAX_DEPTH:
            self._add(Site(kind="call", callee=name, vmcs=self.vmcs, **base))
            callee = self.functions[name]
            env = self._bind(callee, args, fr)
            sub = self._call(name, guard, env, fr.chain, shown)
            truth = disj(*(conj(rpc, self._truth(expr, sub)) for rpc, expr, _ in sub.returns))
            self.call_values[id(node)] = truth
        else:
            # Unknown effect; kept so checks can see helpers such as cache invalidation.
            self._add(Site(kind="call", callee=name, vmcs=self.vmcs, **base))

    def _bind(self, callee: "Function", args: list, fr: _Frame) -> dict[str, Formula]:
        """Parameters of the callee that are used as conditions take the caller's args."""
        env: dict[str, Formula] = {}
        fdecl = callee.node.decl.type
        params = fdecl.args.params if fdecl.args is not None else []
        for p, a in zip(params, args):
            pname = getattr(p, "name", None)
            if pname and self._trackable(p.type):
                env[pname] = self.cond(a, fr)
        return env

    def _truth(self, expr, fr: _Frame) -> Formula:
        if expr is None:
            return FALSE
        text = self.text(expr)
        if text in ("0", "false", "NULL"):
            return FALSE
        if re.fullmatch(r"-?[1-9]\w*|true|-E[A-Z]+", text):
            return TRUE
        return self.cond(expr, fr)

    def _summary(self, name: str, args: list, base: dict, fr: _Frame) -> None:
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
                           value=self.gen.visit(arg) if arg is not None else None,
                           **{**base, "guard": conj(base["guard"], when),
                              "local": conj(base["local"], when),
                              "shown": conj(base["shown"], when)}))

    def _field(self, node) -> str | None:
        if type(node).__name__ == "ID":
            return node.name
        return None

    # -- provenance of written values ---------------------------------------------------
    def provenance(self, node, fr: _Frame) -> tuple[Provenance, str | None]:
        """The class of a written value, and the vmcs12 member when it is exactly one."""
        if node is None:
            return Provenance.SNAPSHOT, None
        m = re.fullmatch(r"(?:\([\w ]+\))?vmcs12->(\w+)", self.text(node))
        if m:
            return Provenance.VMCS12, m.group(1)
        return self._leaf_class(node, fr), None

    def _leaf_class(self, node, fr: _Frame) -> Provenance:
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
                    controls: "Controls | None" = None) -> EntryPath:
    """Collect the sites of the nested VM-entry path starting at root."""
    return Walker(functions, model, controls=controls).walk(root)
