"""A guarded walk over C functions: every event gets the condition under which it runs.

The walk starts at a function and follows calls into functions of the same unit in
program order.  The path condition of a statement is built from the enclosing
``if``/``else``, ``?:``, ``&&``/``||`` short-circuits, early returns and gotos (leaving
the walk), local boolean or pointer variables, and the arguments bound to a callee's
parameters.  C conditions become atoms of ``vmxlint.logic`` named by their normalised
text; a condition over a local that was assigned again is a new atom (``@x#2``).

It knows nothing about what the calls mean: subclasses say that through hooks
(``on_call``, ``on_store``, ``recognise``) and may keep state that branches split and
join (``branch_state``, ``restore_state``, ``join_state``).

Calls are summarised.  What walking a call does is a list of effects (``emit``) relative
to the call: its guards start from ``TRUE``.  Given a memo and a unit that can tell, for a
function name, what decides its look-up without parsing (``fingerprint``), the walk keeps
each call's summary: its effects, with each call it makes as a reference to the callee's
summary (``Call``: the callee's key, the call's guards, and what the caller's walk took
from the callee: when it returns true and the walk state it left).  A summary holds while
the function's own fingerprint is the same, the names it asked about are still defined or
not, the callees it bound arguments to track the same parameters, and each callee's
summary (holding, or made again) returns under the same condition and leaves the same
state.  So an edit of a callee walks the callee again, not its callers.  The same call
(function, bound arguments, call chain, walk state) met again replays its summary, the
referenced summaries expanded in place, under its new entry condition.  A conjunction
flattens its operands, so ``entry and (pc and g)`` is the very formula ``(entry and pc)
and g`` the walk builds: a replay gives what the walk would.
"""
from __future__ import annotations

import re
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, MutableMapping

from msgspec import Struct, field

from vmxlint.logic import FALSE, TRUE, Atom, Formula, conj, disj, labelled, neg
from vmxlint.memo import kept

if TYPE_CHECKING:  # pragma: no cover
    from pycparser import c_ast

    from vmxlint.cfront import Function

# Calls that wrap a condition without changing its truth value.
TRANSPARENT = {"likely", "unlikely", "CC", "WARN_ON", "WARN_ON_ONCE", "unlikely_notrace"}


def norm(text: str) -> str:
    """C text with all whitespace removed: the identity of a condition or statement."""
    return re.sub(r"\s+", "", text)


Under = Callable[[Formula], Formula]
# Tracked parameters by function fingerprint, in this process (``_params``; the
# summaries on disk carry those of the functions they read).
TRACKED_PARAMS: dict[str, tuple[tuple[int, str], ...]] = {}
PARAMS_MEMO = 4096
COMPOSED = 4    # compositions kept per summary


class Effect:
    """Something a walk does besides walking: kept, relative to a call, by its summary."""

    __slots__ = ()

    def under(self, entry: "Under", shown: "Under") -> "Effect":
        """The effect of the call reached under a condition: ENTRY(g) is g under the call's
        path condition, SHOWN(g) under its enclosing conditions."""
        return self


class Label(Effect, Struct, frozen=True):
    """An opaque condition's atom gets its C spelling (the first spelling stays)."""

    name: str
    spelled: str


class Visit(Effect, Struct, frozen=True):
    """A function was walked."""

    name: str


class Call(Effect, Struct, frozen=True):
    """A call a summarised function makes: the callee's summary, by key, under the call's
    guards, and what the caller's walk took from it (when it returns true, the state it
    left)."""

    key: tuple
    entry: Formula
    shown: Formula
    returns: Formula
    state: object

    def under(self, entry: "Under", shown: "Under") -> "Call":
        return Call(self.key, entry(self.entry), shown(self.shown), self.returns, self.state)


class Summary(Struct):
    """What walking one call did: its effects relative to the call (``Call`` for the calls
    it made), when it returns true, the walk state it leaves, and what it read besides its
    callees: its function's fingerprint (``deps``), whether the names it asked about are
    defined (``known``: with the fingerprint that decided it, which tells without a parse
    that the answer stands), the tracked parameters of the callees it bound (``binds``)."""

    deps: dict[str, Any]
    effects: list[Effect]
    returns: Formula
    state: object
    known: dict[str, tuple[str | None, bool]] = field(default_factory=dict)
    binds: dict[str, tuple[tuple[int, str], ...]] = field(default_factory=dict)
    # The last replays' effects, by the way the call was reached (a helper is called
    # from several places of an image).
    composed: list[tuple[tuple[Formula, Formula], list[Effect]]] = field(default_factory=list)


class SummaryMemo(OrderedDict):
    """Summaries by call; past SIZE the least recently used is dropped.  ``recorded``:
    the calls this process walked (the others were loaded, ``preload``)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size
        self.recorded: set[tuple] = set()
        self.loaded = 0

    def preload(self, items: Iterable[tuple[tuple, Summary]]) -> None:
        """Summaries made by another process (``vmxlint.walkstore``)."""
        for key, summary in items:
            OrderedDict.__setitem__(self, key, summary)
            self.loaded += 1
        while len(self) > self.size:
            self.popitem(last=False)

    def get(self, key: Any, default: Any = None) -> Any:
        hit = super().get(key, default)
        if hit is not default:
            self.move_to_end(key)
        return hit

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        self.recorded.add(key)
        while len(self) > self.size:
            self.popitem(last=False)


class _Recording(Struct):
    deps: dict[str, Any] = field(default_factory=dict)
    effects: list[Effect] = field(default_factory=list)
    known: dict[str, tuple[str | None, bool]] = field(default_factory=dict)
    binds: dict[str, tuple[tuple[int, str], ...]] = field(default_factory=dict)


class Frame:
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


class GuardedWalk:
    """The walk; subclasses give calls, stores and conditions their meaning."""

    def __init__(self, functions: Mapping[str, "Function"]) -> None:
        from pycparser import c_generator

        self.functions = functions
        self._fingerprint = getattr(functions, "fingerprint", None)
        # Summaries by call: set before a walk, over a unit that fingerprints its
        # functions, to replay the calls met before.
        self.memo: MutableMapping[tuple, Summary] | None = None
        self._recording: list[_Recording] = []
        self._now: dict[tuple, Summary] = {}      # summaries found to hold for this image
        self._starts: dict[str, int] = {}
        self.gen = c_generator.CGenerator()
        self.call_values: dict[int, Formula] = {}    # walked call -> its truth value
        self.labels: dict[str, str] = {}             # atom name -> C spelling
        self.visited: set[str] = set()
        self._cond_memo: dict[tuple[int, int], Formula] = {}
        self._spelled: dict[int, str] = {}
        self._texts: dict[int, str] = {}

    # -- hooks ----------------------------------------------------------------------------
    def on_call(self, node, pc: Formula, fr: "Frame") -> None:
        """A call statement or expression runs under pc (arguments already walked)."""

    def on_store(self, node, pc: Formula, fr: "Frame") -> None:
        """An assignment to memory (not to a local) runs under pc."""

    def recognise(self, node, text: str, spelled: str, fr: "Frame") -> Formula | None:
        """The meaning of a condition the walk cannot decide itself, or None (opaque)."""
        return None

    def branch_state(self) -> object:
        """State of the subclass that the two branches of an ``if`` may change."""
        return None

    def restore_state(self, state: object) -> None:
        """Go back to the state before a branch."""

    def join_state(self, after_true: object, true_leaves: Formula,
                   false_leaves: Formula) -> None:
        """Merge the state after the true branch into the current (false branch) one."""

    def walk_state(self) -> object:
        """State of the subclass a call's walk depends on and may change (hashable)."""
        return None

    def set_walk_state(self, state: object) -> None:
        """The state a summarised call leaves behind."""

    def resume_state(self, state: object) -> None:
        """The whole state of ``walk_state``, to walk a callee again out of its caller."""
        self.set_walk_state(state)

    def apply(self, effect: Effect) -> None:
        """Carry out an effect of the walk (subclasses handle their own kinds)."""
        if isinstance(effect, Label):
            self.labels.setdefault(effect.name, effect.spelled)
        elif isinstance(effect, Visit):
            self.visited.add(effect.name)
        else:  # pragma: no cover - every kind is handled by the class that emits it
            raise TypeError(effect)

    # -- effects and summaries --------------------------------------------------------------
    def emit(self, effect: Effect) -> None:
        """An effect: carried out now, or kept by the summary of the call being walked."""
        if self._recording:
            self._recording[-1].effects.append(effect)
        else:
            self.apply(effect)

    def defined(self, name: str) -> bool:
        """Whether the unit defines function NAME (a summary depends on the answer)."""
        answer = name in self.functions
        if self._recording:
            self._recording[-1].known[name] = (self._fingerprint(name), answer)
        return answer

    def start(self, name: str) -> int:
        """The first line of function NAME: effects keep lines relative to it, so that a
        summary holds when an edit above moves the function."""
        line = self._starts.get(name)
        if line is None:
            span = getattr(self.functions, "span", None)
            line = self._starts[name] = span(name)[0] if span is not None else \
                self.functions[name].start_line
        return line

    def walk_function(self, name: str, entry: Formula, env: dict[str, Formula],
                      chain: tuple[str, ...], shown: Formula = TRUE) -> Formula:
        """Walk function NAME reached under ENTRY; when it returns true.  A call met before
        whose summary holds replays it instead; within a summary, it is referred to."""
        if self.memo is None or self._fingerprint is None:
            return self.returns_true(self.enter(name, entry, env, chain, shown))
        key = summary_key(name, env, chain, self.walk_state())
        summary = self._holding(key) or self._summarise(name, env, chain, key)
        if self._recording:
            self.emit(Call(key, entry, shown, summary.returns, summary.state))
        else:
            self._replay(summary, entry, shown)
        return self._after(summary)

    def summarised(self, key: tuple, name: str, walk: Callable[[], Formula]) -> Formula:
        """WALK (a walk of function NAME that yields a formula), summarised under KEY like
        a call: replayed while the summary holds.  For a root, whose walk is more than a
        call's (its success exit, say)."""
        if self.memo is None or self._fingerprint is None:
            return walk()
        summary = self._holding(key) or self._record(key, name, walk)
        self._replay(summary, TRUE, TRUE)
        return self._after(summary)

    def _after(self, summary: Summary) -> Formula:
        """The walk goes on where the summarised walk left it: its state, its result."""
        self.set_walk_state(summary.state)
        self._cond_memo.clear()
        return summary.returns

    def _holding(self, key: tuple) -> Summary | None:
        """The summary of KEY when it holds for this image (callees made again as needed)."""
        hit = self._now.get(key)
        if hit is not None:
            return hit
        assert self.memo is not None
        summary = self.memo.get(key)
        if summary is None or any(self._fingerprint(n) != mark
                                  for n, mark in summary.deps.items()) \
                or not all(self._still(n, mark, v) for n, (mark, v) in summary.known.items()) \
                or any(self._params(n) != v for n, v in summary.binds.items()):
            return None
        for effect in summary.effects:
            if type(effect) is Call:
                callee = self._holding(effect.key) or self._again(effect.key)
                if callee.state != effect.state or not _reads_same(callee.returns,
                                                                   effect.returns):
                    return None
        self._now[key] = summary
        return summary

    def _still(self, name: str, mark: str | None, answer: bool) -> bool:
        """Whether NAME is defined or not as it was: surely when its fingerprint is the
        same, else by looking it up (which may parse it)."""
        return (mark is not None and self._fingerprint(name) == mark) or \
            (name in self.functions) == answer

    def _again(self, key: tuple) -> Summary:
        """Walk the call of KEY again, out of its caller's walk."""
        name, env, chain, state = key
        before = self.walk_state()
        self.resume_state(state)
        try:
            return self._summarise(name, {k: v for k, v, _ in env}, chain, key)
        finally:
            self.resume_state(before)

    def _replay(self, summary: Summary, entry: Formula, shown: Formula) -> None:
        """Carry out a summary's effects under a call's conditions, the calls it made
        expanded in place."""
        for effect in self._composed(summary, entry, shown):
            if type(effect) is Call:
                self._replay(self._now[effect.key], effect.entry, effect.shown)
            else:
                self.apply(effect)

    def _composed(self, summary: Summary, entry: Formula, shown: Formula) -> list[Effect]:
        """The summary's effects under a call's entry and enclosing conditions; the last
        compositions are kept, as the next image usually reaches the call the same ways."""
        if entry == TRUE and shown == TRUE:
            return summary.effects
        kept = summary.composed
        for way, effects in kept:
            if way[0] is entry and way[1] is shown:
                return effects      # the caller's composition was kept: its calls are too
        way = (entry, shown)
        for k, (old, effects) in enumerate(kept):
            if _reads_same(old[0], entry) and _reads_same(old[1], shown):
                kept[k] = (way, effects)    # the objects of this image's way, for the next
                return effects
        # Effects of one block share their guard objects: each is joined once.
        guards: dict[int, Formula] = {}
        shows: dict[int, Formula] = {}

        def under_entry(g: Formula) -> Formula:
            hit = guards.get(id(g))
            if hit is None:
                hit = guards[id(g)] = conj(entry, g)
            return hit

        def under_shown(g: Formula) -> Formula:
            hit = shows.get(id(g))
            if hit is None:
                hit = shows[id(g)] = conj(shown, g)
            return hit

        effects = [effect.under(under_entry, under_shown) for effect in summary.effects]
        kept.insert(0, (way, effects))
        del kept[COMPOSED:]
        return effects

    def _summarise(self, name: str, env: dict[str, Formula], chain: tuple[str, ...],
                   key: tuple) -> Summary:
        return self._record(key, name, lambda: self.returns_true(
            self.enter(name, TRUE, env, chain, TRUE)))

    def _record(self, key: tuple, name: str, walk: Callable[[], Formula]) -> Summary:
        rec = _Recording()
        rec.deps[name] = self._fingerprint(name)
        self._recording.append(rec)
        try:
            returns = walk()
        finally:
            self._recording.pop()
        summary = Summary(rec.deps, rec.effects, returns, self.walk_state(), rec.known,
                          rec.binds)
        self._now[key] = summary
        if None not in rec.deps.values():
            assert self.memo is not None
            self.memo[key] = summary
        return summary

    # -- helpers --------------------------------------------------------------------------
    def spelling(self, node: "c_ast.Node") -> str:
        """The C text of a node, rendered once per walk (the walk keeps the nodes alive,
        so their ids stay theirs)."""
        hit = self._spelled.get(id(node))
        if hit is None:
            hit = self._spelled[id(node)] = self.gen.visit(node)
        return hit

    def text(self, node: "c_ast.Node") -> str:
        """The C text of a node, normalised."""
        hit = self._texts.get(id(node))
        if hit is None:
            hit = self._texts[id(node)] = norm(self.spelling(node))
        return hit

    def enter(self, name: str, entry: Formula, env: dict[str, Formula],
              chain: tuple[str, ...], shown: Formula = TRUE) -> "Frame":
        """Walk the body of function ``name`` reached under ``entry``."""
        fn = self.functions[name]
        self.emit(Visit(name))
        frame = Frame(name, fn.path, entry, chain + (name,), env, shown)
        self._stmt(fn.node.body, TRUE, frame)
        return frame

    def walk_call(self, node, name: str, args: list, guard: Formula, fr: "Frame",
                  shown: Formula) -> None:
        """Walk into a called function; the call's truth value is remembered for
        conditions that test it."""
        env = self._bind(name, args, fr)
        self.call_values[id(node)] = self.walk_function(name, guard, env, fr.chain, shown)

    def returns_true(self, fr: "Frame") -> Formula:
        """When a walked function returns a true value (a void function: always)."""
        if not fr.returns:
            return TRUE
        return disj(*(conj(rpc, self._truth(expr, fr)) for rpc, expr, _ in fr.returns))

    # -- statements: each returns the condition (relative to pc) of leaving early -----
    def _stmt(self, node, pc: Formula, fr: Frame) -> Formula:
        if node is None or pc == FALSE:
            return FALSE
        # Conditions are remembered within one statement only: a chain of n `&&` asks for
        # the condition of each prefix, which must not cost n times the chain.
        self._cond_memo.clear()
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
        spc, before = fr.spc, self.branch_state()
        fr.spc = conj(spc, c)
        ra = self._stmt(node.iftrue, conj(pc, c), fr)
        after_true = self.branch_state()
        self.restore_state(before)
        fr.spc = conj(spc, neg(c))
        rb = self._stmt(node.iffalse, conj(pc, neg(c)), fr)
        fr.spc = spc
        self.join_state(after_true, ra, rb)
        return disj(conj(c, ra), conj(neg(c), rb))

    def _s_Return(self, node, pc, fr) -> Formula:
        if node.expr is not None:
            self._expr(node.expr, pc, fr)
        fr.returns.append((pc, node.expr, node))
        return TRUE

    def _s_Goto(self, node, pc, fr) -> Formula:
        # A goto leaves the structured walk (kernel code jumps to its error labels).
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
            self.on_store(node, pc, fr)
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
    def _expr(self, node, pc: Formula, fr: Frame) -> None:
        if node is None or pc == FALSE:
            return
        kind = type(node).__name__
        if kind == "FuncCall":
            if node.args is not None:
                for a in node.args.exprs:
                    self._expr(a, pc, fr)
            self.on_call(node, pc, fr)
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
    def cond(self, node, fr: Frame) -> Formula:
        """The formula for a C expression used as a condition."""
        key = (id(node), id(fr))
        hit = self._cond_memo.get(key)
        if hit is None:
            hit = self._cond_memo[key] = self._cond(node, fr)
        return hit

    def _cond(self, node, fr: Frame) -> Formula:
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
        spelled = self.spelling(node)
        known = self.recognise(node, text, spelled, fr)
        if known is not None:
            return known
        if kind == "FuncCall" and id(node) in self.call_values:
            return self.call_values[id(node)]
        name = f"c:{text}{self._version(node, fr)}"
        self.emit(Label(name, spelled))
        return Atom(name, label=spelled)

    def _version(self, node, fr: "Frame") -> str:
        """``@x#2`` when the condition reads a local assigned more than once so far."""
        tags = []
        stack = [node]
        while stack:
            n = stack.pop()
            if type(n).__name__ == "ID" and fr.assigned.get(n.name, 0) > 1:
                tags.append(f"@{n.name}#{fr.assigned[n.name]}")
            stack.extend(c for _, c in n.children())
        return "".join(sorted(set(tags)))

    def _bind(self, name: str, args: list, fr: Frame) -> dict[str, Formula]:
        """Parameters of the callee that are used as conditions take the caller's args."""
        params = self._params(name)
        if self._recording:
            self._recording[-1].binds[name] = params
        return {pname: self.cond(args[k], fr) for k, pname in params if k < len(args)}

    def _params(self, name: str) -> tuple[tuple[int, str], ...]:
        """The positions and names of a function's bool and pointer parameters (kept by
        fingerprint: a summarised call needs no parse of its callee)."""
        mark = self._fingerprint(name) if self._fingerprint is not None else None
        hit = TRACKED_PARAMS.get(mark) if mark else None
        if hit is None:
            fdecl = self.functions[name].node.decl.type
            params = fdecl.args.params if fdecl.args is not None else []
            hit = tuple((k, p.name) for k, p in enumerate(params)
                        if getattr(p, "name", None) and self._trackable(p.type))
            if mark:
                kept(TRACKED_PARAMS, mark, hit, PARAMS_MEMO)
        return hit

    def _truth(self, expr, fr: Frame) -> Formula:
        if expr is None:
            return FALSE
        text = self.text(expr)
        if text in ("0", "false", "NULL"):
            return FALSE
        if re.fullmatch(r"-?[1-9]\w*|true|-E[A-Z]+", text):
            return TRUE
        return self.cond(expr, fr)


def _reads_same(a: Formula, b: Formula) -> bool:
    """Equal, and spelled the same (atoms compare by name; their labels are for people)."""
    return a is b or (a == b and labelled(a) == labelled(b))


def summary_key(name: str, env: Mapping[str, Formula], chain: tuple[str, ...],
                state: object) -> tuple:
    """The memo key of a call.  Atoms compare by name, so the spellings of the bound
    arguments (which a summary's guards carry for display) are part of it too
    (``labelled``)."""
    return name, tuple((k, v, labelled(v)) for k, v in env.items()), chain, state
