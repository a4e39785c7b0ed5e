"""The networkx graph of the nested VM-entry path: sites as nodes, program order as edges.

For one field (``--field``), ``reaches`` edges go from each write to each VM entry after
it, labelled with the write's condition, and the DOT output has a legend.

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
    if field is not None:
        _coverage(g, path, field)
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


def _coverage(g: "networkx.DiGraph", path: "EntryPath", field: str) -> None:
    """For one field: an edge from each write to each VM entry after it that it may give
    its value to, labelled with the write's condition (the last write on a path wins)."""
    writes = [s for s in path.sites if s.kind == "write" and s.field == field]
    for entry in (s for s in path.sites if s.kind == "entry"):
        for w in writes:
            if w.order < entry.order and f"n{w.order}" in g and f"n{entry.order}" in g:
                cond = render(w.shown)
                g.add_edge(f"n{w.order}", f"n{entry.order}", kind="reaches",
                           label=cond if len(cond) <= 120 else cond[:120] + " ...")


def to_json(g: "networkx.DiGraph") -> dict:
    """networkx node-link data."""
    import networkx as nx

    return nx.node_link_data(g, edges="links")


def _legend(q, colours: dict[str, str], reaches: bool) -> list[str]:
    """A legend cluster: what the node colours and edge styles mean."""
    out = ["  subgraph cluster_legend {", '    label="legend"; fontsize=10;']
    for kind, colour in colours.items():
        out.append(f"    legend_{kind} [label={q(kind)}, style=filled, fillcolor={colour}];")
    out.append('    legend_a [label="program order", shape=plaintext];')
    if reaches:
        out.append('    legend_b [label="write may reach the VM entry (label: its condition)", '
                   "shape=plaintext, fontcolor=blue];")
    out.append("  }")
    return out


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
        if a.get("kind") == "reaches":
            lines.append(f"  {u} -> {v} [style=bold, color=blue, fontcolor=blue, "
                         f"label={q(a.get('label', ''))}];")
            continue
        style = "dashed" if a.get("kind") == "calls" else "solid"
        lines.append(f"  {u} -> {v} [style={style}];")
    lines += _legend(q, colours, any(a.get("kind") == "reaches" for *_, a in g.edges(data=True)))
    lines.append("}")
    return "\n".join(lines) + "\n"
