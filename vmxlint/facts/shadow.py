"""Shadow-VMCS field lists from ``vmcs_shadow_fields.h``.

``SHADOW_FIELD_RW(NAME, member)`` fields L1 may VMWRITE without a VM exit (they do not
set ``dirty_vmcs12``); ``SHADOW_FIELD_RO`` fields L1 may only VMREAD without one.
Trees before 4.20 kept the file as ``arch/x86/kvm/vmx_shadow_fields.h`` and used the
one-argument form ``SHADOW_FIELD_RO(NAME)``; both are read.
"""
from __future__ import annotations

import re

from vmxlint.facts import SHADOW_PATHS
from vmxlint.facts._common import FIELD_NAME, IDENT, Loaded, load_source, read_embedded, \
    strip_comments, table

PATHS = SHADOW_PATHS
TOML = "shadow.toml"

_ENTRY_RE = re.compile(
    rf"\bSHADOW_FIELD_(RO|RW)\s*\(\s*({FIELD_NAME})\s*(?:,\s*({IDENT})\s*)?\)")

Shadow = dict[str, dict[str, str]]      # {"rw": {name: member}, "ro": {name: member}}


def parse(text: str) -> tuple[Shadow, list[str]]:
    """{"rw": {...}, "ro": {...}} mapping field names to members ("" in the old form)."""
    lists: Shadow = {"rw": {}, "ro": {}}
    notes: list[str] = []
    for m in _ENTRY_RE.finditer(strip_comments(text)):
        kind, name, member = m.group(1).lower(), m.group(2), m.group(3) or ""
        other = "ro" if kind == "rw" else "rw"
        if name in lists[other]:
            notes.append(f"vmcs_shadow_fields.h: {name} is both RO and RW; kept RW")
            if kind == "ro":
                continue
            del lists[other][name]
        lists[kind].setdefault(name, member)
    if not lists["rw"] and not lists["ro"]:
        return {}, notes
    return lists, notes


def kinds(lists: Shadow) -> dict[str, str]:
    """{field name: "rw" | "ro"}."""
    out = {n: "ro" for n in lists.get("ro", {})}
    out.update({n: "rw" for n in lists.get("rw", {})})
    return out


def embedded() -> tuple[Shadow, str | None]:
    doc, problem = read_embedded(TOML)
    lists = {"rw": table(doc, "rw", str), "ro": table(doc, "ro", str)}
    if doc is not None and not (lists["rw"] or lists["ro"]):
        problem = f"rules/model/{TOML} has no [rw] or [ro]"
    return lists, problem


def load(tree) -> Loaded[Shadow]:
    return load_source(tree, PATHS, parse, embedded, "SHADOW_FIELD_RO/RW entries",
                       "shadow field lists", TOML)
