"""Guard formulas over atoms, and the boolean reasoning on them (BDDs from ``dd``).

A guard is a small immutable formula: ``TRUE``, ``FALSE``, ``Atom``, ``Not``, ``And``,
``Or``.  Atoms are model predicates (``l0.ept``, ``evmcs.clean.GUEST_GRP1``) or opaque C
conditions (``c:<normalised text>``).  An atom may carry the C text it was read from,
which is only for display: two atoms are equal when their names are.
"""
from __future__ import annotations

import hashlib
import os
import re
from functools import reduce
from typing import Any, Callable, Iterable, Iterator, Mapping

from msgspec import Struct
from vmxlint.memo import LazyPattern, kept


class Formula:
    """Base class of guard formulas."""

    __slots__ = ()

    def _cached_hash(self, parts: tuple) -> int:
        # Guards share deep subformulas and are dictionary keys in the solver's memo: a
        # hash recomputed from the whole tree on every lookup dominated the checks' time.
        d = self.__dict__
        h = d.get("_h")
        if h is None:
            h = d["_h"] = hash((type(self).__name__,) + parts)
        return h

    def __and__(self, other: "Formula") -> "Formula":
        return conj(self, other)

    def __or__(self, other: "Formula") -> "Formula":
        return disj(self, other)

    def __invert__(self) -> "Formula":
        return neg(self)


class Const(Formula, Struct, frozen=True, dict=True):
    value: bool

    def __str__(self) -> str:
        return "true" if self.value else "false"


TRUE = Const(True)
FALSE = Const(False)


class Atom(Formula, Struct, frozen=True, dict=True):
    name: str
    label: str | None = None        # only for display: not part of equality or hash

    def __eq__(self, other: object) -> bool:
        if type(other) is not Atom:
            return NotImplemented
        return self.name == other.name

    def __hash__(self) -> int:
        return hash(self.name)

    def __str__(self) -> str:
        return self.name


class Not(Formula, Struct, frozen=True, dict=True):
    arg: Formula

    def __hash__(self) -> int:
        return self._cached_hash((self.arg,))

    def __str__(self) -> str:
        return f"not {_wrap(self.arg)}"


class And(Formula, Struct, frozen=True, dict=True):
    args: tuple[Formula, ...]

    def __hash__(self) -> int:
        return self._cached_hash(self.args)

    def __str__(self) -> str:
        return " and ".join(_wrap(a) for a in self.args)


class Or(Formula, Struct, frozen=True, dict=True):
    args: tuple[Formula, ...]

    def __hash__(self) -> int:
        return self._cached_hash(self.args)

    def __str__(self) -> str:
        return " or ".join(_wrap(a) for a in self.args)


def _wrap(f: Formula) -> str:
    return f"({f})" if isinstance(f, (And, Or)) else str(f)


def neg(f: Formula) -> Formula:
    if isinstance(f, Const):
        return FALSE if f.value else TRUE
    if isinstance(f, Not):
        return f.arg
    return Not(f)


def _members(f: "And | Or") -> dict[Formula, None]:
    """The operands of f as an ordered set, computed once per formula object."""
    d = f.__dict__
    m = d.get("_m")
    if m is None:
        m = d["_m"] = dict.fromkeys(f.args)
    return m


def _join(fs: tuple[Formula, ...], kind: type, unit: Const, zero: Const) -> Formula:
    """Flatten, deduplicate and simplify a conjunction (kind And) or disjunction (Or).

    Linear in the operands: an operand of the same kind is copied as a whole (its set of
    operands is kept on it), so a guard grown one term at a time costs no rescans.
    """
    if len(fs) == 2:
        a, g = fs
        if isinstance(a, kind) and not isinstance(g, (kind, Const)):
            # A guard grown by one term (the walk's common case): no copy of its operands.
            m = _members(a)
            if g in m:
                return a
            if neg(g) in m:
                return zero
            return kind(a.args + (g,))
    out: dict[Formula, None] = {}
    for f in fs:
        if f == unit:
            continue
        if f == zero:
            return zero
        if isinstance(f, kind) and not out:
            out = dict(_members(f))
            continue
        for g in (f.args if isinstance(f, kind) else (f,)):
            if g in out:
                continue
            if neg(g) in out:
                return zero
            out[g] = None
    if not out:
        return unit
    if len(out) == 1:
        return next(iter(out))
    made = kind(tuple(out))
    made.__dict__["_m"] = out
    return made


def conj(*fs: Formula) -> Formula:
    return _join(fs, And, TRUE, FALSE)


def disj(*fs: Formula) -> Formula:
    return _join(fs, Or, FALSE, TRUE)


def _children(g: Formula) -> tuple[Formula, ...]:
    return (g.arg,) if isinstance(g, Not) else g.args if isinstance(g, (And, Or)) else ()


def _post_order(f: Formula, known: Callable[[Formula], bool]) -> Iterator[Formula]:
    """The subformulas of f whose result is not ``known`` yet, children first, each once
    (the caller records a result before asking for the next).  Iterative: guards may be
    deeper than the C stack."""
    stack: list[tuple[Formula, bool]] = [(f, False)]
    while stack:
        g, done = stack.pop()
        if isinstance(g, Const) or known(g):
            continue
        if not done:
            stack.append((g, True))
            stack.extend((k, False) for k in _children(g))
            continue
        yield g


def fold(f: Formula, attr: str, step: Callable[[Formula, list], object]) -> Any:
    """step(g, the values of g's children) for f and each subformula, kept on each formula
    object under ``attr``: guards share subformulas heavily, one path condition feeding
    many sites, and are asked again and again.

    Iterative (guards may be deeper than the C stack), and written out rather than over
    `_post_order`: a check folds some 2,000 new nodes, and the generator and the
    callbacks took half the time."""
    if isinstance(f, Const):
        return step(f, [])
    held = f.__dict__
    if attr in held:
        return held[attr]               # asked before: the common case, without a walk
    stack = [f]
    while stack:
        g = stack[-1]
        d = g.__dict__
        if attr in d:                   # reached again through another parent
            stack.pop()
            continue
        kids = (g.arg,) if isinstance(g, Not) else g.args if isinstance(g, (And, Or)) else ()
        todo = [k for k in kids if not isinstance(k, Const) and attr not in k.__dict__]
        if todo:                        # the children first; g is looked at again after
            stack.extend(todo)
            continue
        stack.pop()
        d[attr] = step(g, [step(k, []) if isinstance(k, Const) else k.__dict__[attr]
                           for k in kids])
    return held[attr]


def atoms(f: Formula) -> frozenset[str]:
    """Names of the atoms of f."""
    return fold(f, "_a", _atoms_step)


def _atoms_step(g: Formula, kids: list) -> frozenset[str]:
    return frozenset((g.name,)) if isinstance(g, Atom) else frozenset().union(*kids)


def substitute(f: Formula, env: Mapping[str, Formula]) -> Formula:
    """Replace atoms named in env by their formulas.

    The result is kept on each formula object, by env: the checks substitute the same
    few envs into guards that share most of their subformulas, over and over."""
    names = env.keys()
    if isinstance(f, Const) or names.isdisjoint(atoms(f)):
        return f            # nothing to replace: most guards hold none of the atoms
    key = frozenset(env.items())
    for g in _post_order(f, lambda g: names.isdisjoint(atoms(g))
                         or key in g.__dict__.setdefault("_s", {})):
        if isinstance(g, Atom):
            out = env.get(g.name, g)
        elif isinstance(g, Not):
            out = neg(_substituted(g.arg, key))
        elif isinstance(g, And):
            out = conj(*(_substituted(a, key) for a in g.args))
        else:
            out = disj(*(_substituted(a, key) for a in g.args))
        g.__dict__["_s"][key] = out
    return _substituted(f, key)


def _substituted(f: Formula, key: frozenset) -> Formula:
    """What substitute made of f (f itself where it holds none of the atoms)."""
    return f if isinstance(f, Const) else f.__dict__.get("_s", {}).get(key, f)


def expand(f: Formula, defs: Mapping[str, Formula], rounds: int = 3) -> Formula:
    """Substitute definitions that may refer to one another (vmcs02 controls), to a depth."""
    for _ in range(rounds):
        g = substitute(f, defs)
        if g == f:
            break
        f = g
    return f


def render(f: Formula) -> str:
    """Readable text, using each atom's C spelling where it has one (kept on each formula:
    guards share their subformulas, which a plain recursion renders again for every path
    to them)."""
    return fold(f, "_r", _render_step)


def _render_step(g: Formula, kids: list[str]) -> str:
    if isinstance(g, Atom):
        return g.label or g.name
    if isinstance(g, Not):
        inner = kids[0]
        simple = isinstance(g.arg, Atom) and re.fullmatch(r"[\w.>()\[\]-]*", inner.replace(
            "->", ">").replace(", ", ","))
        return f"!{inner}" if simple else f"!({inner})"
    if isinstance(g, (And, Or)):
        op = " && " if isinstance(g, And) else " || "
        return op.join(f"({k})" if isinstance(a, (And, Or)) else k
                       for a, k in zip(g.args, kids))
    return str(g)


def labelled(f: Formula) -> str:
    """A digest of f's structure with each atom's name and label: two formulas that are
    equal (atoms compare by name) and also read the same have the same one.  Kept on each
    formula object."""
    return fold(f, "_l", _labelled_step)


def structure(f: Formula) -> str:
    """A digest of f's structure and atom names, not their labels.  Kept on each formula
    object."""
    return fold(f, "_d", _structure_step)


def _labelled_step(g: Formula, kids: list[str]) -> str:
    if isinstance(g, Atom):
        return digest("a", g.name, "\1" if g.label is None else g.label)
    return _structure_step(g, kids)


def _structure_step(g: Formula, kids: list[str]) -> str:
    if isinstance(g, Const):
        return str(g)
    if isinstance(g, Atom):
        return "a:" + g.name
    return digest("!" if isinstance(g, Not) else "&" if isinstance(g, And) else "|", *kids)


def digest(*parts: str) -> str:
    """A short digest (128 bits of sha256) of strings."""
    return hashlib.sha256("\0".join(parts).encode("utf-8", "replace")).hexdigest()[:32]


# -- the condition language of rules/model/*.toml -------------------------------------

_TOKEN = LazyPattern(r"\s*(?:(\()|(\))|(\$?[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*))")


class ExprError(ValueError):
    """A model condition string does not parse."""


def parse_expr(text: str, params: Mapping[str, Formula] | None = None) -> Formula:
    """Parse ``a and not (b or c)`` into a formula; ``$name`` takes params[name]."""
    tokens: list[str] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ExprError(f"cannot read {text[pos:]!r} in condition {text!r}")
        tokens.append(m.group(m.lastindex or 0))
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return _ExprParser(text, tokens, params or {}).parse()


class _ExprParser:
    """Recursive descent over the tokens of one condition (methods, not nested functions:
    recursive closures are reference cycles the collector would have to find)."""

    def __init__(self, text: str, tokens: list[str], params: Mapping[str, Formula]) -> None:
        self.text, self.params = text, params
        self.tokens, self.at = tokens + [""], 0

    @property
    def cur(self) -> str:
        return self.tokens[self.at]

    def take(self) -> str:
        tok = self.tokens[self.at]
        self.at = min(self.at + 1, len(self.tokens) - 1)
        return tok

    def parse(self) -> Formula:
        result = self.p_or()
        if self.cur != "":
            raise ExprError(f"unexpected {self.cur!r} in condition {self.text!r}")
        return result

    def p_or(self) -> Formula:
        return self._chain("or", self.p_and, disj)

    def p_and(self) -> Formula:
        return self._chain("and", self.p_not, conj)

    def _chain(self, word: str, operand: Callable[[], Formula],
               join: Callable[..., Formula]) -> Formula:
        """Operands joined by WORD, left to right."""
        f = operand()
        while self.cur == word:
            self.take()
            f = join(f, operand())
        return f

    def p_not(self) -> Formula:
        if self.cur == "not":
            self.take()
            return neg(self.p_not())
        return self.p_atom()

    def p_atom(self) -> Formula:
        tok, text = self.take(), self.text
        if tok == "(":
            f = self.p_or()
            if self.take() != ")":
                raise ExprError(f"missing ')' in condition {text!r}")
            return f
        if tok in ("true", "false"):
            return TRUE if tok == "true" else FALSE
        if tok.startswith("$"):
            if tok[1:] not in self.params:
                raise ExprError(f"unknown parameter {tok} in condition {text!r}")
            return self.params[tok[1:]]
        if not tok or tok in (")", "and", "or"):
            raise ExprError(f"unexpected {tok or 'end'!r} in condition {text!r}")
        return Atom(tok)


# -- reasoning ------------------------------------------------------------------------

def bdd_class() -> type:
    """CUDD through ``dd.cudd`` where its wheel installed, else dd's pure-Python BDDs: the
    same answers, CUDD's several times faster.  ``VMXLINT_BDD=python`` forces the latter.
    Imported lazily: ``dd`` costs about 0.2 s to import."""
    if os.environ.get("VMXLINT_BDD") != "python":
        try:
            return _without_networkx("dd.cudd").BDD
        except ImportError:
            pass
    return _without_networkx("dd.autoref").BDD


def _without_networkx(module: str):
    """Import a ``dd`` module without networkx: dd imports it (when present) only for its
    graph export, which vmxlint does not use, and it costs 0.3 s and 20 MB."""
    from vmxlint.optional import import_without

    return import_without(module, "networkx")


SMALL_BDD = 64 * 1024 * 1024    # bytes CUDD may plan its tables for
ANSWERS_KEPT = 1 << 16          # answers of queries a solver keeps


class Solver:
    """Implication, satisfiability and counterexamples under background axioms."""

    def __init__(self, axioms: Iterable[Formula] = (),
                 per_atom: Callable[[str], Iterable[Formula]] | None = None) -> None:
        """``per_atom(name)``: axioms about an atom, added when a query first mentions it
        (an axiom about an atom a query does not mention cannot change its answer)."""
        cls = bdd_class()
        # CUDD's default tables take 11 MB a manager; guards have a few hundred atoms.
        self._bdd = cls(memory_estimate=SMALL_BDD, initial_cache_size=2 ** 12) \
            if cls.__module__ == "dd.cudd" else cls()
        # No dynamic reordering (CUDD's default): the guards' BDDs stay small in the order
        # atoms are first met, and sifting took half the time of the queries of a series.
        # No answer depends on the order (``_first_cube``).
        self._bdd.configure(reordering=False)
        self._vars: dict[str, str] = {}
        self._names: dict[str, str] = {}
        self._memo: dict[Formula, object] = {}
        self._answers: dict[object, bool] = {}
        self._axioms = self._bdd.true
        self._per_atom = per_atom
        for ax in axioms:
            n = self._node(ax)
            self._axioms = self._axioms & n

    def _var(self, name: str):
        v = self._vars.get(name)
        if v is None:
            v = f"v{len(self._vars)}"
            self._vars[name] = v
            self._names[v] = name
            self._bdd.declare(v)
            for ax in self._per_atom(name) if self._per_atom is not None else ():
                n = self._node(ax)
                self._axioms = self._axioms & n
        return self._bdd.var(v)

    def _node(self, f: Formula):
        hit = self._memo.get(f)
        if hit is not None:
            return hit
        b = self._bdd
        if isinstance(f, Const):
            u = b.true if f.value else b.false
        elif isinstance(f, Atom):
            u = self._var(f.name)
        elif isinstance(f, Not):
            u = ~self._node(f.arg)
        elif isinstance(f, And):
            u = reduce(lambda x, y: x & y, (self._node(a) for a in f.args), b.true)
        elif isinstance(f, Or):
            u = reduce(lambda x, y: x | y, (self._node(a) for a in f.args), b.false)
        else:  # pragma: no cover - all subclasses handled above
            raise TypeError(f)
        self._memo[f] = u
        return u

    # Each query builds its nodes before it reads the axioms: building may add some.  The
    # answers are kept: a field checked again for the next image asks mostly what it
    # asked before (the axioms only grow with atoms the formulas did not mention).
    def satisfiable(self, *fs: Formula) -> bool:
        """Whether the conjunction of FS can hold.  Its BDD is made from each part's: the
        conjunction of the parts as a formula would flatten them, and its BDD be made
        again from every conjunct of every guard."""
        hit = self._answers.get(fs)
        if hit is None:
            u = self._all(fs)
            # The conjunction meets the axioms unless it implies their negation: CUDD
            # tells that (``<=``) without making its conjunction with the axioms, a BDD
            # that would serve this one answer.
            hit = kept(self._answers, fs, not u <= ~self._axioms, ANSWERS_KEPT)
        return hit

    def implies(self, a: Formula, b: Formula) -> bool:
        return self.implies_some((a,), (b,))

    def implies_some(self, premises: tuple[Formula, ...], alternatives: tuple[Formula, ...]
                     ) -> bool:
        """Whether the conjunction of PREMISES implies the disjunction of ALTERNATIVES
        (made from each part's BDD, as ``satisfiable``)."""
        key = (premises, alternatives)
        hit = self._answers.get(key)
        if hit is None:
            u, w = self._all(premises), self._bdd.false
            for f in alternatives:
                w = w | self._node(f)
            hit = kept(self._answers, key, (u & ~w) <= ~self._axioms, ANSWERS_KEPT)
        return hit

    def _all(self, fs: tuple[Formula, ...]):
        """The BDD of the conjunction of FS, the axioms left out (the queries compare it
        with their negation)."""
        if len(fs) == 1:
            return self._node(fs[0])
        u = self._bdd.true
        for f in fs:
            u = u & self._node(f)
        return u

    def equivalent(self, a: Formula, b: Formula) -> bool:
        return self.implies(a, b) and self.implies(b, a)

    def counterexample(self, a: Formula, b: Formula) -> dict[str, bool] | None:
        """An assignment making a true and b false (None when a implies b)."""
        return self.model(conj(a, neg(b)))

    def model(self, f: Formula) -> dict[str, bool] | None:
        """A satisfying assignment of the atoms of f, or None."""
        u = self._node(f)
        u = self._axioms & u
        if u == self._bdd.false:
            return None
        relevant = [self._vars[n] for n in sorted(atoms(f)) if n in self._vars]
        care = set(relevant) | set(self._bdd.support(u))
        pick = self._bdd.pick(u, care_vars=care) or {}
        return {self._names[v]: bool(pick.get(v, False)) for v in relevant}

    def prime_implicant(self, f: Formula, keep: Iterable[str],
                        prefer: Iterable[str] = ()) -> dict[str, bool] | None:
        """A minimal set of conditions over the atoms in ``keep`` that makes f true for
        some value of every other atom (which is projected out), or None when f is
        unsatisfiable.  Atoms in ``prefer`` are the last ones a literal is dropped for."""
        b = self._bdd
        u = self._node(f)
        u = self._axioms & u
        if u == b.false:
            return None
        keep = {n for n in keep if n in self._vars}
        drop = [v for n, v in self._vars.items() if n not in keep]
        u = b.exist(drop, u) if drop else u
        ax = b.exist(drop, self._axioms) if drop else self._axioms
        lits = self._first_cube(u)
        first = set(prefer)
        for v in sorted(lits, key=lambda v: (self._names[v] in first, self._names[v])):
            trial = {k: x for k, x in lits.items() if k != v}
            if (ax & b.cube(trial) & ~u) == b.false:
                lits = trial
        return {self._names[v]: bool(x) for v, x in lits.items()}

    def _first_cube(self, u) -> dict[str, bool]:
        """The satisfying assignment of u's support that is least in atom-name order
        (false before true): it depends on the function only, never on the BDD's variable
        order, which follows the history of queries; so a field checked alone gets the
        counterexample it gets among all fields."""
        b = self._bdd
        lits: dict[str, bool] = {}
        for v in sorted(b.support(u), key=self._names.__getitem__):
            low = u & ~b.var(v)
            if low != b.false:
                u, lits[v] = low, False
            else:
                u, lits[v] = u & b.var(v), True
        return lits


def describe_assignment(assignment: Mapping[str, bool], labels: Mapping[str, str] = {}) -> str:
    """``l0.ept=1, l2.pae_paging=1, c:x=0`` in atom order, readable."""
    parts = []
    for name in sorted(assignment):
        shown = labels.get(name, name)
        parts.append(f"{shown}={'1' if assignment[name] else '0'}")
    return ", ".join(parts)
