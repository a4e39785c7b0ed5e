"""The walk's summaries on disk: a new process starts from the calls an earlier one walked.

A check of one patch runs in a process of its own (b4, a pre-commit hook), so the walk's
summaries (``vmxlint.cfront.walk``) would be empty in each.  An audit or a check leaves
them in the cache (``vmxlint.cache``), one entry per walk scope: the rules, the code,
pycparser and the shim, the control bits and the file.  A summary loaded from disk holds
exactly when it would have held in the process that made it, as it is checked before
every replay: its function's fingerprint, the names it asked about, the parameters of the
callees it bound, and the result and state of each callee's summary it refers to.

With the summaries go two facts about the functions they read, by fingerprint, so that a
replayed call needs no parse of its callee: which of its parameters the walk tracks, and
that its text parses to its one definition.

An entry is one JSON document: a table of formulas (each refers to earlier ones only), and
the summaries with their formulas as indices into the table.  Anything that is not exactly
that shape is a miss.
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Iterable

from msgspec import structs

from vmxlint.cfront.walk import Call, Label, Summary, Visit, summary_key
from vmxlint.logic import FALSE, TRUE, And, Atom, Const, Formula, Not, Or
from vmxlint.sites import Provenance, Site, Request, Spelling

if TYPE_CHECKING:  # pragma: no cover
    from vmxlint.model import Model

FORMAT = "vmxlint-walk 2"
# Formulas nest a few levels (10 in 6.12); a deeper one in an entry is not the walk's and
# would only exhaust the stack of whatever hashes it.
MAX_DEPTH = 256
_SITE_FIELDS = Site.__struct_fields__
_FORMULAS = ("guard", "local", "shown")
# Where a site's values sit in its row (a site is built from its row as it stands).
_FORMULA_AT = tuple(_SITE_FIELDS.index(n) for n in _FORMULAS)
_CHAIN_AT, _ORIGIN_AT, _ORDER_AT, _LINE_AT = (
    _SITE_FIELDS.index(n) for n in ("chain", "origin", "order", "line"))
_PROVENANCE = {p.value: p for p in Provenance}


class _Bad(Exception):
    """The entry is not what `encode` writes."""


# -- writing ------------------------------------------------------------------------------

class _Table:
    """Formulas as a table, each node once, children before parents."""

    def __init__(self) -> None:
        self.rows: list[list] = []
        self._index: dict[int, int] = {}
        self._keep: list[Formula] = []      # ids stay theirs while the table lives

    def ref(self, f: Formula) -> int:
        hit = self._index.get(id(f))
        if hit is not None:
            return hit
        stack: list[tuple[Formula, bool]] = [(f, False)]
        while stack:                          # iterative: guards may be deep
            g, ready = stack.pop()
            if id(g) in self._index:
                continue
            kids = (g.arg,) if isinstance(g, Not) else g.args if isinstance(g, (And, Or)) \
                else ()
            if not ready and kids:
                stack.append((g, True))
                stack.extend((k, False) for k in kids)
                continue
            self._index[id(g)] = len(self.rows)
            self._keep.append(g)
            self.rows.append(self._row(g))
        return self._index[id(f)]

    def _row(self, g: Formula) -> list:
        if isinstance(g, Const):
            return ["t" if g.value else "f"]
        if isinstance(g, Atom):
            return ["a", g.name, g.label]
        if isinstance(g, Not):
            return ["n", self._index[id(g.arg)]]
        return ["&" if isinstance(g, And) else "|", [self._index[id(a)] for a in g.args]]


def encode(summaries: Iterable[tuple[tuple, Summary]], params: dict[str, tuple],
           fine: set[str]) -> str:
    """The entry for these summaries, with the tracked parameters and the parse results
    of the functions they read."""
    table = _Table()
    out = []
    read: set[str] = set()
    for key, s in summaries:
        read.update(d for d in s.deps.values() if d)
        read.update(mark for mark, defined in s.known.values() if mark and defined)
        out.append(_key(key, table) + [s.deps, [_effect(e, table) for e in s.effects],
                                       table.ref(s.returns), _state(s.state),
                                       {n: list(v) for n, v in s.known.items()},
                                       {n: [list(p) for p in v] for n, v in s.binds.items()}])
    return json.dumps({
        "format": FORMAT, "formulas": table.rows, "summaries": out,
        "params": {d: [list(p) for p in params[d]] for d in sorted(read) if d in params},
        "fine": sorted(read & fine)}, separators=(",", ":"))


def _key(key: tuple, table: _Table) -> list:
    name, env, chain, state = key
    return [name, [[k, table.ref(v)] for k, v, _ in env], list(chain), _state(state)]


def _state(state: Any) -> list:
    vmcs, context = state
    return [vmcs, sorted(context)]


def _effect(e: Any, table: _Table) -> list:
    if isinstance(e, Site):
        values = list(structs.astuple(e))   # the row _read_effect builds a site from
        for k in _FORMULA_AT:
            values[k] = table.ref(values[k])
        values[_CHAIN_AT] = list(values[_CHAIN_AT])
        values[_ORIGIN_AT] = values[_ORIGIN_AT].value
        return ["s"] + values
    if isinstance(e, Label):
        return ["L", e.name, e.spelled]
    if isinstance(e, Visit):
        return ["V", e.name]
    if isinstance(e, Request):
        return ["R", table.ref(e.guard), e.deferred.request]
    if isinstance(e, Spelling):
        return ["S", table.ref(e.known), e.spelled]
    if isinstance(e, Call):
        return ["C", _key(e.key, table), table.ref(e.entry), table.ref(e.shown),
                table.ref(e.returns), _state(e.state)]
    raise TypeError(type(e).__name__)


# -- reading ------------------------------------------------------------------------------

def decode(text: str, model: "Model") -> tuple[list[tuple[tuple, Summary]], dict, set]:
    """(summaries by key, tracked parameters by fingerprint, fingerprints that parse
    fine) of an entry; raises ValueError on anything `encode` does not write."""
    try:
        doc = json.loads(text)
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise _Bad("format")
        formulas = _formulas(doc["formulas"])
        requests = {d.request: d for d in model.entry.deferred}
        out = [_summary(row, formulas, requests) for row in doc["summaries"]]
        params = {_str(d): tuple((_int(k), _str(n)) for k, n in p)
                  for d, p in doc["params"].items()}
        fine = {_str(d) for d in doc["fine"]}
    except (_Bad, KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise ValueError(f"not a walk entry: {exc}") from None
    return out, params, fine


def _formulas(rows: list) -> list[Formula]:
    out: list[Formula] = []
    depth: list[int] = []

    def earlier(i: Any) -> Formula:
        if type(i) is not int or not 0 <= i < len(out):
            raise _Bad("formula reference")
        return out[i]

    def deeper(refs: list) -> int:
        d = 1 + max((depth[i] for i in refs), default=0)
        if d > MAX_DEPTH:
            raise _Bad("formula depth")
        return d

    for row in rows:
        kind = row[0]
        if kind == "t" or kind == "f":
            out.append(TRUE if kind == "t" else FALSE)
            depth.append(1)
        elif kind == "a":
            label = row[2]
            if label is not None:
                _str(label)
            out.append(Atom(_str(row[1]), label=label))
            depth.append(1)
        elif kind == "n":
            out.append(Not(earlier(row[1])))
            depth.append(deeper([row[1]]))
        elif kind in ("&", "|"):
            args = tuple(earlier(i) for i in row[1])
            out.append(And(args) if kind == "&" else Or(args))
            depth.append(deeper(row[1]))
        else:
            raise _Bad(f"formula kind {kind!r}")
    return out


def _summary(row: list, formulas: list[Formula], requests: dict) -> tuple[tuple, Summary]:
    name, env, chain, state, deps, effects, returns, after, known, binds = row
    key = _read_key([name, env, chain, state], formulas)
    if not isinstance(deps, dict) or not all(isinstance(d, str) for d in deps.values()):
        raise _Bad("deps")
    if not isinstance(known, dict) or not all(
            type(v) is list and len(v) == 2 and (v[0] is None or type(v[0]) is str)
            and type(v[1]) is bool for v in known.values()):
        raise _Bad("known")
    return key, Summary({_str(k): v for k, v in deps.items()},
                        [_read_effect(e, formulas, requests) for e in effects],
                        _at(formulas, returns), _read_state(after),
                        {_str(k): (v[0], v[1]) for k, v in known.items()},
                        {_str(k): tuple((_int(i), _str(n)) for i, n in v)
                         for k, v in binds.items()})


def _read_key(row: list, formulas: list[Formula]) -> tuple:
    name, env, chain, state = row
    env_map = {_str(k): _at(formulas, i) for k, i in env}
    return summary_key(_str(name), env_map, tuple(map(_str, chain)), _read_state(state))


def _read_state(state: list) -> tuple:
    vmcs, context = state
    return _str(vmcs), frozenset(map(_str, context))


def _read_effect(e: list, formulas: list[Formula], requests: dict) -> Any:
    kind = e[0]
    if kind == "s":
        values = e[1:]
        if len(values) != len(_SITE_FIELDS):
            raise _Bad("site")
        for k in _FORMULA_AT:
            values[k] = _at(formulas, values[k])
        values[_CHAIN_AT] = tuple(map(_str, values[_CHAIN_AT]))
        values[_ORIGIN_AT] = _PROVENANCE[values[_ORIGIN_AT]]
        _int(values[_ORDER_AT])
        _int(values[_LINE_AT])
        return Site(*values)
    if kind == "L":
        return Label(_str(e[1]), _str(e[2]))
    if kind == "V":
        return Visit(_str(e[1]))
    if kind == "R":
        return Request(_at(formulas, e[1]), requests[e[2]])
    if kind == "S":
        return Spelling(_at(formulas, e[1]), _str(e[2]))
    if kind == "C":
        return Call(_read_key(e[1], formulas), _at(formulas, e[2]), _at(formulas, e[3]),
                    _at(formulas, e[4]), _read_state(e[5]))
    raise _Bad(f"effect kind {kind!r}")


def _at(formulas: list[Formula], i: Any) -> Formula:
    if type(i) is not int or not 0 <= i < len(formulas):
        raise _Bad("formula reference")
    return formulas[i]


def _str(x: Any) -> str:
    if type(x) is not str:
        raise _Bad("string")
    return x


def _int(x: Any) -> int:
    if type(x) is not int:
        raise _Bad("integer")
    return x
