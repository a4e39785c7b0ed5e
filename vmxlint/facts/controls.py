"""Control-bit macros of ``vmx.h``: macro name -> (group, bit position), named by the model.

``CPU_BASED_TPR_SHADOW`` is ``VMCS_CONTROL_BIT(VIRTUAL_TPR)`` in 6.x (resolved through
``vmxfeatures.h``) and ``0x00200000`` in 4.x; both become ``("proc", "use_tpr_shadow")``.
The group comes from the macro's prefix and the name from ``rules/model/bits.toml``.
The one-bit helpers of ``nested.h`` (``nested_cpu_has_vid(vmcs12)``) are found from
their bodies.  Without those files the embedded tables of bits.toml stand in.
"""
from __future__ import annotations

import functools
import re

from msgspec import Struct, field

from vmxlint.facts._common import read_embedded, strip_comments
from vmxlint.memo import LazyPattern

VMX_H = "arch/x86/include/asm/vmx.h"
FEATURES_H = "arch/x86/include/asm/vmxfeatures.h"

_DEFINE = LazyPattern(r"^#define\s+([A-Z][A-Z0-9_]*)\s+(.+?)\s*$", re.M)
_FEATURE = LazyPattern(r"^#define\s+VMX_FEATURE_(\w+)\s+\(\s*\d+\s*\*\s*32\s*\+\s*(\d+)\s*\)", re.M)


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


NESTED_H = "arch/x86/kvm/vmx/nested.h"
_HELPER_BODY = LazyPattern(r"\{return(?:nested_cpu_has[23]?\(vmcs12,(\w+)\)|vmcs12->\w+&(\w+));\}")


class Controls(Struct, frozen=True):
    """The control bits of a tree and the helpers that test one of them."""

    bits: dict[str, tuple[str, str]] = field(default_factory=dict)   # macro -> (group, name)
    helpers: dict[str, str] = field(default_factory=dict)            # helper -> macro
    fallbacks: tuple[str, ...] = ()


def parse_helpers(nested_h: str) -> dict[str, str]:
    """``nested_cpu_has_vid`` -> ``SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY``, from the bodies."""
    from vmxlint.cfront import function_bodies

    out = {}
    for name, body in function_bodies(nested_h).items():
        m = _HELPER_BODY.fullmatch(body)
        if m and name not in ("nested_cpu_has", "nested_cpu_has2", "nested_cpu_has3"):
            out[name] = m.group(1) or m.group(2)
    return out


def _embedded() -> tuple[dict[str, tuple[str, str]], dict[str, str]]:
    doc, _ = read_embedded("bits.toml")
    doc = doc or {}
    bits = {}
    for macro, where in (doc.get("macros") or {}).items():
        group, _, pos = str(where).partition(".")
        bits[macro] = (group, (doc.get(group) or {}).get(pos, f"bit{pos}"))
    return bits, dict(doc.get("helpers") or {})


# The files `load` reads.
FILES = (VMX_H, FEATURES_H, NESTED_H)


def load(tree) -> Controls:
    """The control bits of a tree (the embedded tables when vmx.h or nested.h is missing)."""
    return _load(tree.read_or_none(VMX_H), tree.read_or_none(FEATURES_H),
                 tree.read_or_none(NESTED_H))


@functools.lru_cache(maxsize=4)
def _load(text: str | None, features: str | None, header: str | None) -> Controls:
    # Kept in process by content: each image of a series reads the same headers.
    bits = parse(text, features) if text else {}
    helpers = parse_helpers(header) if header else {}
    fallbacks = []
    if not bits or not helpers:
        emb_bits, emb_helpers = _embedded()
        if not bits:
            bits = emb_bits
            fallbacks.append(f"{VMX_H} has no control bits: using the embedded control-bit table")
        if not helpers:
            helpers = emb_helpers
    return Controls(bits, helpers, tuple(fallbacks))
