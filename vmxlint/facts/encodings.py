"""Field encodings from ``enum vmcs_field`` in ``arch/x86/include/asm/vmx.h``.

Width, type and the ``_HIGH`` flag are decoded from the encoding bits (SDM App. B,
hwmodel.md §1.1), never from the name.
"""
from __future__ import annotations

import re

from vmxlint.facts import ENCODINGS_PATHS
from vmxlint.facts._common import FIELD_NAME, Loaded, braced_body, load_source, \
    read_embedded, strip_comments, table

PATHS = ENCODINGS_PATHS
TOML = "encodings.toml"

WIDTHS = ("16", "64", "32", "natural")                  # bits 14:13
TYPES = ("control", "exit-info", "guest", "host")       # bits 11:10

_ENUMERATOR_RE = re.compile(rf"^\s*({FIELD_NAME})\s*(?:=\s*(.*?))?\s*$", re.S)
_INT_RE = re.compile(r"^(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)[uUlL]*$")


def decode(enc: int) -> tuple[str, str, bool]:
    """(width, type, high) of an encoding; a ``_HIGH`` alias has width "32"."""
    high = bool(enc & 1)
    width = "32" if high else WIDTHS[(enc >> 13) & 3]
    return width, TYPES[(enc >> 10) & 3], high


def invalid(enc: int) -> str | None:
    """Why an encoding is not a VMCS field encoding, or None when it is one."""
    if enc < 0 or enc >> 15:
        return "bits 31:15 are not clear"
    if enc & 0x1000:
        return "reserved bit 12 is set"
    if enc & 1 and (enc >> 13) & 3 != 1:
        return "bit 0 (high access) is set on a field that is not 64-bit"
    return None


def _int(literal: str) -> int | None:
    """Value of a C integer literal (hex, octal or decimal, optional suffix), else None."""
    lit = literal.strip()
    while lit.startswith("(") and lit.endswith(")"):
        lit = lit[1:-1].strip()
    if not _INT_RE.match(lit):
        return None
    digits = lit.rstrip("uUlL")
    if digits[:2] in ("0x", "0X"):
        return int(digits, 16)
    return int(digits, 8) if len(digits) > 1 and digits[0] == "0" else int(digits)


def parse(text: str) -> tuple[dict[str, int], list[str]]:
    """Enumerators of ``enum vmcs_field``: {name: encoding}, in order, and notes."""
    notes: list[str] = []
    body = braced_body(strip_comments(text), r"\benum\s+vmcs_field\b")
    if body is None:
        return {}, notes
    fields: dict[str, int] = {}
    for item in body.split(","):
        if not item.strip():
            continue
        m = _ENUMERATOR_RE.match(item)
        if m is None or m.group(2) is None:
            notes.append(f"enum vmcs_field: skipped {' '.join(item.split())[:60]!r} "
                         "(not NAME = number)")
            continue
        name, value = m.group(1), _int(m.group(2))
        if value is None:
            notes.append(f"enum vmcs_field: skipped {name} (value {m.group(2).strip()[:40]!r} "
                         "is not a number)")
            continue
        why = invalid(value)
        if why:
            notes.append(f"enum vmcs_field: skipped {name} = {value:#x} ({why})")
            continue
        if name in fields:
            notes.append(f"enum vmcs_field: {name} defined twice; kept the first")
            continue
        fields[name] = value
    return fields, notes


def embedded() -> tuple[dict[str, int], str | None]:
    doc, problem = read_embedded(TOML)
    fields = {k: v for k, v in table(doc, "fields", int).items() if invalid(v) is None}
    if doc is not None and not fields:
        problem = f"rules/model/{TOML} has no [fields]"
    return fields, problem


def load(tree) -> Loaded[dict[str, int]]:
    return load_source(tree, PATHS, parse, embedded, "enum vmcs_field",
                       "encoding table", TOML)
