"""The vmcs12 member of each field, from ``vmcs12_field_offsets[]`` in ``vmcs12.c``.

``FIELD(NAME, member)`` maps NAME; ``FIELD64(NAME, member)`` maps NAME and NAME_HIGH
(the upper half of the same member).
"""
from __future__ import annotations

import re

from vmxlint.facts import VMCS12_PATHS
from vmxlint.facts._common import FIELD_NAME, IDENT, Loaded, braced_body, load_source, \
    read_embedded, strip_comments, table

PATHS = VMCS12_PATHS
TOML = "vmcs12.toml"

_ENTRY_RE = re.compile(rf"\b(FIELD|FIELD64)\s*\(\s*({FIELD_NAME})\s*,\s*({IDENT})\s*\)")


def parse(text: str) -> tuple[dict[str, str], list[str]]:
    """{field name: vmcs12 member}, ``_HIGH`` aliases of FIELD64 entries included."""
    clean = strip_comments(text)
    body = braced_body(clean, r"\bvmcs12_field_offsets\s*\[\s*\]\s*=")
    members: dict[str, str] = {}
    notes: list[str] = []
    for m in _ENTRY_RE.finditer(body if body is not None else clean):
        kind, name, member = m.groups()
        names = (name, name + "_HIGH") if kind == "FIELD64" else (name,)
        for n in names:
            if n in members and members[n] != member:
                notes.append(f"vmcs12.c: {n} mapped twice; kept {members[n]}")
                continue
            members[n] = member
    return members, notes


def embedded() -> tuple[dict[str, str], str | None]:
    doc, problem = read_embedded(TOML)
    members = table(doc, "members", str)
    if doc is not None and not members:
        problem = f"rules/model/{TOML} has no [members]"
    return members, problem


def load(tree) -> Loaded[dict[str, str]]:
    return load_source(tree, PATHS, parse, embedded, "FIELD()/FIELD64() entries",
                       "vmcs12 map", TOML)
