"""Control-bit macros of ``vmx.h``: macro name -> (group, bit position), named by the model.

``CPU_BASED_TPR_SHADOW`` is ``VMCS_CONTROL_BIT(VIRTUAL_TPR)`` in 6.x (resolved through
``vmxfeatures.h``) and ``0x00200000`` in 4.x; both become ``("proc", "use_tpr_shadow")``.
The group comes from the macro's prefix and the name from ``rules/model/bits.toml``.
"""
from __future__ import annotations

import re

from vmxlint.facts._common import read_embedded, strip_comments

VMX_H = "arch/x86/include/asm/vmx.h"
FEATURES_H = "arch/x86/include/asm/vmxfeatures.h"

_DEFINE = re.compile(r"^#define\s+([A-Z][A-Z0-9_]*)\s+(.+?)\s*$", re.M)
_FEATURE = re.compile(r"^#define\s+VMX_FEATURE_(\w+)\s+\(\s*\d+\s*\*\s*32\s*\+\s*(\d+)\s*\)", re.M)


def _position(value: str, features: dict[str, int]) -> int | None:
    """Bit position of a single-bit macro value, or None for anything else."""
    value = value.strip()
    while value.startswith("(") and value.endswith(")"):
        value = value[1:-1].strip()
    m = re.fullmatch(r"VMCS_CONTROL_BIT\((\w+)\)", value)
    if m:
        return features.get(m.group(1))
    m = re.fullmatch(r"(?:BIT|BIT_ULL)\((\d+)\)|1U?L*\s*<<\s*(\d+)", value)
    if m:
        return int(m.group(1) or m.group(2))
    m = re.fullmatch(r"0x([0-9a-fA-F]+)[uUlL]*", value)
    if m:
        n = int(m.group(1), 16)
        return n.bit_length() - 1 if n and n & (n - 1) == 0 else None
    return None


def parse(vmx_h: str, features_h: str | None) -> dict[str, tuple[str, str]]:
    """Every control-bit macro of vmx.h with its (group, model name)."""
    doc, _ = read_embedded("bits.toml")
    doc = doc or {}
    prefixes: dict[str, str] = doc.get("prefixes", {})
    features = {m.group(1): int(m.group(2))
                for m in _FEATURE.finditer(strip_comments(features_h or ""))}
    out: dict[str, tuple[str, str]] = {}
    for m in _DEFINE.finditer(strip_comments(vmx_h)):
        name, value = m.group(1), m.group(2)
        group = next((g for p, g in prefixes.items() if name.startswith(p)), None)
        if group is None:
            continue
        pos = _position(value, features)
        if pos is None:
            continue
        names = doc.get(group, {})
        out[name] = (group, names.get(str(pos), f"bit{pos}"))
    return out


def load(tree) -> dict[str, tuple[str, str]]:
    """The control bits of a tree; empty when it has no vmx.h (bit tests stay opaque)."""
    def read(rel: str) -> str | None:
        try:
            return tree.read(rel)
        except Exception:          # an unreadable file counts as a missing one
            return None
    text = read(VMX_H)
    return parse(text, read(FEATURES_H)) if text else {}
