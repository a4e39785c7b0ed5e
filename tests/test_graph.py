"""`vmxlint graph --field`: which write reaches which VM entry, with a legend."""
from __future__ import annotations

from pathlib import Path

from vmxlint import api
from vmxlint.analysis import entry_path
from vmxlint.dataflow import build_graph, to_dot, to_json

SHAPE = Path(__file__).resolve().parent.parent / "fixtures" / "trees" / "shape-modern"


def _graph(field: str):
    _, path = entry_path(api.open_tree(str(SHAPE)))
    return build_graph(path, field)


def test_each_write_reaches_the_entry_with_its_condition() -> None:
    data = to_json(_graph("VM_ENTRY_INTR_INFO_FIELD"))
    nodes = {n["id"]: n for n in data["nodes"]}
    reaches = [e for e in data["links"] if e["kind"] == "reaches"]
    writes = {n["id"] for n in data["nodes"] if n["kind"] == "write"}
    assert {e["source"] for e in reaches} == writes and len(writes) == 2
    assert all(nodes[e["target"]]["kind"] == "entry" for e in reaches)
    labels = sorted(e["label"] for e in reaches)
    assert labels == ["!vmx->nested.nested_run_pending", "vmx->nested.nested_run_pending"]


def test_dot_has_a_legend_and_labelled_edges() -> None:
    dot = to_dot(_graph("VM_ENTRY_INTR_INFO_FIELD"))
    assert "cluster_legend" in dot and "write may reach the VM entry" in dot
    assert 'label="!vmx->nested.nested_run_pending"' in dot
