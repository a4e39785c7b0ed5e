"""eVMCS clean-field groups.

The group of each field comes from ``vmcs_field_to_evmcs_1[]``
(``EVMCS1_FIELD(NAME, member, HV_VMX_ENLIGHTENED_CLEAN_FIELD_<GROUP>)``) in
``hyperv_evmcs.c`` (6.5 and later) or ``evmcs.c`` (older); group names lose the
prefix, NONE (no clean bit) and ALL (every bit) are kept.  The bit of each group
comes from ``HV_VMX_ENLIGHTENED_CLEAN_FIELD_*`` in ``asm/hyperv-tlfs.h``.
"""
from __future__ import annotations

import re

from vmxlint.facts import EVMCS_PATHS, EVMCS_BITS_PATHS
from vmxlint.facts._common import FIELD_NAME, IDENT, Loaded, braced_body, load_source, \
    read_embedded, strip_comments, table

PATHS = EVMCS_PATHS
BITS_PATHS = EVMCS_BITS_PATHS
TOML = "evmcs.toml"
PREFIX = "HV_VMX_ENLIGHTENED_CLEAN_FIELD_"

_ENTRY_RE = re.compile(rf"\bEVMCS1_FIELD\s*\(\s*({FIELD_NAME})\s*,\s*({IDENT})\s*,"
                       rf"\s*([^,()]*?)\s*\)")
_GROUP_RE = re.compile(rf"^{PREFIX}([A-Z0-9_]+)$")
_BIT_RE = re.compile(rf"^[ \t]*#[ \t]*define[ \t]+{PREFIX}([A-Z0-9_]+)[ \t]+"
                     r"(?:BIT\(\s*(\d+)\s*\)|\(?\s*(0[xX][0-9a-fA-F]+|\d+)[uUlL]*\s*\)?)"
                     r"[ \t]*$", re.M)


def parse(text: str) -> tuple[dict[str, str], list[str]]:
    """{field name: group} from the ``vmcs_field_to_evmcs_1`` table."""
    clean = strip_comments(text)
    body = braced_body(clean, r"\bvmcs_field_to_evmcs_1\s*\[\s*\]\s*=")
    groups: dict[str, str] = {}
    notes: list[str] = []
    for m in _ENTRY_RE.finditer(body if body is not None else clean):
        name, _member, group = m.groups()
        g = _GROUP_RE.match(group)
        if g is None:
            notes.append(f"eVMCS table: skipped {name} (group {group[:40]!r} is not "
                         f"{PREFIX}*)")
            continue
        if name in groups and groups[name] != g.group(1):
            notes.append(f"eVMCS table: {name} listed twice; kept {groups[name]}")
            continue
        groups[name] = g.group(1)
    return groups, notes


def parse_bits(text: str) -> tuple[dict[str, int], list[str]]:
    """{group: mask} from the ``HV_VMX_ENLIGHTENED_CLEAN_FIELD_*`` definitions."""
    bits: dict[str, int] = {}
    for m in _BIT_RE.finditer(strip_comments(text)):
        name, bit, value = m.groups()
        mask = 1 << int(bit) if bit is not None else int(value, 0)
        if 0 <= mask <= 0xFFFFFFFF:
            bits.setdefault(name, mask)
    return bits, []


def embedded() -> tuple[dict[str, str], str | None]:
    doc, problem = read_embedded(TOML)
    groups = table(doc, "groups", str)
    if doc is not None and not groups:
        problem = f"rules/model/{TOML} has no [groups]"
    return groups, problem


def embedded_bits() -> tuple[dict[str, int], str | None]:
    doc, problem = read_embedded(TOML)
    bits = table(doc, "group_bits", int)
    if doc is not None and not bits:
        problem = f"rules/model/{TOML} has no [group_bits]"
    return bits, problem


def load(tree) -> Loaded[dict[str, str]]:
    return load_source(tree, PATHS, parse, embedded, "EVMCS1_FIELD() entries",
                       "eVMCS group table", TOML)


def load_bits(tree) -> Loaded[dict[str, int]]:
    return load_source(tree, BITS_PATHS, parse_bits, embedded_bits,
                       f"{PREFIX}* definitions", "eVMCS clean-bit table", TOML)
