"""The generic guarded walk of the C front end: path conditions without any VMX meaning."""
from __future__ import annotations

from vmxlint.cfront import parse_unit
from vmxlint.cfront.walk import GuardedWalk
from vmxlint.logic import TRUE, Atom, Formula, Solver, atoms, conj, neg

SOURCE = """
static bool helper(int x)
{
    if (x > 3)
        return false;
    return true;
}

static int root(struct thing *t, bool flag)
{
    bool ready = t->ready && flag;
    int n = t->n;

    if (!ready)
        return -1;
    if (helper(n))
        record(t, 1);
    n = t->m;
    if (n & 4)
        record(t, 2);
    t->count = 0;
    return 0;
}
"""


class Recorder(GuardedWalk):
    """Records every call of record() and every store, with its path condition."""

    def __init__(self, functions) -> None:
        super().__init__(functions)
        self.events: dict[str, Formula] = {}

    def on_call(self, node, pc, fr) -> None:
        name = node.name.name
        if name == "record":
            self.events[self.text(node.args.exprs[1])] = conj(fr.entry, pc)
        elif name in self.functions:
            self.walk_call(node, name, list(node.args.exprs), conj(fr.entry, pc), fr, pc)

    def on_store(self, node, pc, fr) -> None:
        self.events[self.text(node.lvalue)] = conj(fr.entry, pc)


def _events() -> dict[str, Formula]:
    rec = Recorder(parse_unit(SOURCE, "walk.c").functions)
    rec.enter("root", TRUE, {}, ())
    return rec.events


READY = conj(Atom("c:t->ready"), Atom("c:flag"))


def test_early_return_and_local_booleans_guard_what_follows() -> None:
    events, solver = _events(), Solver()
    # `ready = t->ready && flag` and the early `return -1` under !ready guard every event.
    for g in events.values():
        assert solver.implies(g, READY)
    # record(t, 1) runs when helper(n) returned true: not when its x > 3 exit was taken.
    assert solver.implies(events["1"], neg(Atom("c:x>3")))
    assert not solver.implies(events["2"], neg(Atom("c:x>3")))


def test_a_reassigned_local_is_a_new_atom() -> None:
    events = _events()
    assert atoms(events["2"]) == atoms(READY) | {"c:n&4@n#2"}


def test_stores_reach_the_hook() -> None:
    events, solver = _events(), Solver()
    assert solver.equivalent(events["t->count"], READY)
