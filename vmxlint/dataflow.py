"""The networkx graph of the nested VM-entry path: sites as nodes, program order as edges.

Node ids are ``n<order>``.  Every node has ``kind`` (write, read, call, store, entry),
``function``, ``path``, ``line`` and ``guard`` (readable C text of the enclosing
conditions along the call chain); writes add ``field``, ``accessor``, ``origin``,
``vmcs`` and ``via``.  Edges: ``next`` between consecutive sites in program order, and
``calls`` from a call node to the first site inside the callee.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from vmxlint.logic import render

if TYPE_CHECKING:  # pragma: no cover
    import networkx

    from vmxlint.sites import EntryPath


def build_graph(path: "EntryPath", field: str | None = None) -> "networkx.DiGraph":
    """The graph of one entry path, optionally only the sites of one field."""
    import networkx as nx

    g = nx.DiGraph(root=path.root)
    prev = None
    for s in path.sites:
        if field is not None and s.kind in ("write", "read") and s.field != field:
            continue
        if field is not None and s.kind in ("call", "store"):
            continue
        node = f"n{s.order}"
        attrs = dict(kind=s.kind, function=s.function, path=s.path, line=s.line,
                     guard=render(s.shown), chain=" > ".join(s.chain))
        if s.kind in ("write", "read"):
            attrs.update(field=s.field or "", accessor=s.accessor or "", vmcs=s.vmcs)
        if s.kind == "write":
            attrs.update(origin=s.origin.value, via=s.via or "", value=s.value or "")
        if s.kind == "store":
            attrs.update(value=s.value or "")
        if s.kind in ("call", "entry") and s.callee:
            attrs.update(callee=s.callee)
        if s.kind == "entry" and not s.callee:
            # Reached when none of the path's early exits was taken; the full condition
            # is in the checks' evidence, too long to show on a node.
            attrs.update(label="VM entry", guard="no early exit taken")
        g.add_node(node, **attrs)
        if prev is not None:
            g.add_edge(prev, node, kind="next")
        prev = node
    if field is None:
        by_fn: dict[tuple, str] = {}
        for s in path.sites:
            by_fn.setdefault(s.chain, f"n{s.order}")
        for s in path.sites:
            if s.kind == "call" and s.callee:
                first = by_fn.get(s.chain + (s.callee,))
                if first is not None:
                    g.add_edge(f"n{s.order}", first, kind="calls")
    return g


def to_json(g: "networkx.DiGraph") -> dict:
    """networkx node-link data."""
    import networkx as nx

    return nx.node_link_data(g, edges="links")


def to_dot(g: "networkx.DiGraph") -> str:
    """Graphviz DOT text, written by hand so no pydot/pygraphviz is needed."""
    def q(text: object) -> str:
        text = str(text).replace("\\", "\\\\").replace('"', '\\"')
        return '"' + text.replace("\n", "\\n") + '"'

    lines = [f"digraph {q(g.graph.get('root', 'vmxlint'))} {{", "  rankdir=TB;",
             "  node [shape=box, fontname=monospace, fontsize=10];"]
    colours = {"write": "lightblue", "read": "lightyellow", "call": "white", "entry": "salmon"}
    for n, a in g.nodes(data=True):
        if a["kind"] == "write":
            head = f"{a['field']} ({a['via'] or a['accessor']})"
        elif a["kind"] == "entry":
            head = a.get("callee") or "VM entry"
        else:
            head = a.get("field") or a.get("callee") or a["kind"]
        guard = a["guard"] if len(a["guard"]) <= 400 else a["guard"][:400] + " ..."
        label = f"{head}\n{a['function']}:{a['line']}\nif {guard}"
        lines.append(f"  {n} [label={q(label)}, style=filled, "
                     f"fillcolor={colours.get(a['kind'], 'white')}];")
    for u, v, a in g.edges(data=True):
        style = "dashed" if a.get("kind") == "calls" else "solid"
        lines.append(f"  {u} -> {v} [style={style}];")
    lines.append("}")
    return "\n".join(lines) + "\n"
