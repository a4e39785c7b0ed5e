"""Facts from the kernel tree: VMCS field encodings, vmcs12 members, shadow lists, eVMCS groups.

Each fact source is read from the tree under review (overlay first, so a patch's
post-image counts); when the tree lacks the file, or the file yields nothing, the
embedded table in ``rules/model/`` is used instead and ``Facts.fallbacks`` says so.
Importing this package is cheap: the parsers load on the first ``load_facts``.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

from msgspec import Struct, field

if TYPE_CHECKING:
    from vmxlint.tree import Tree

__all__ = ("FieldInfo", "Facts", "accessor_width", "fact_files", "load_facts")


class FieldInfo(Struct, frozen=True, forbid_unknown_fields=True):
    """One ``enum vmcs_field`` enumerator and what the tree says about it."""

    name: str                  # "GUEST_PDPTR0"
    encoding: int              # 0x280a
    width: str                 # "16" | "32" | "64" | "natural" (a _HIGH alias is "32")
    type: str                  # "control" | "exit-info" | "guest" | "host" (bits 11:10)
    high: bool                 # a _HIGH alias (bit 0 set)
    vmcs12_member: str | None  # "guest_pdptr0"
    shadow: str | None         # "rw" | "ro" | None
    evmcs_group: str | None    # "GUEST_GRP1", ..., "NONE", "ALL", or None (not in eVMCS)

    @property
    def read_only(self) -> bool:
        """A VM-exit information field (VMWRITE fails without "VMWRITE to any field")."""
        return self.type == "exit-info"


class Facts(Struct, dict=True, forbid_unknown_fields=True):
    """The field table of one tree, and how it was obtained."""

    fields: dict[str, FieldInfo]
    fallbacks: list[str]                                   # one message per embedded source
    notes: list[str] = field(default_factory=list)         # skipped or odd entries
    sources: dict[str, str] = field(default_factory=dict)  # fact source -> path or embedded
    evmcs_group_bits: dict[str, int] = field(default_factory=dict)  # "GUEST_GRP1" -> 0x800

    def get(self, name: str) -> FieldInfo | None:
        return self.fields.get(name)

    def by_member(self, member: str) -> FieldInfo | None:
        """The field whose vmcs12 member this is (``guest_es_selector``), not a _HIGH alias."""
        if not hasattr(self, "_members"):
            self._members = {i.vmcs12_member: i for i in self.fields.values()
                             if i.vmcs12_member and not i.high}
        return self._members.get(member)

    def by_encoding(self, encoding: int) -> FieldInfo | None:
        """The field with this encoding (the first enumerator, should two share it)."""
        for info in self.fields.values():
            if info.encoding == encoding:
                return info
        return None


# The files each fact module reads, kept here (the modules take theirs from here) so
# that an analysis whose facts are in the cache imports none of the modules (2 ms a
# process): ``fact_files`` needs only the names.
ENCODINGS_PATHS = ("arch/x86/include/asm/vmx.h",)
VMCS12_PATHS = ("arch/x86/kvm/vmx/vmcs12.c",)
SHADOW_PATHS = ("arch/x86/kvm/vmx/vmcs_shadow_fields.h", "arch/x86/kvm/vmx_shadow_fields.h")
EVMCS_PATHS = ("arch/x86/kvm/vmx/hyperv_evmcs.c", "arch/x86/kvm/vmx/evmcs.c")
EVMCS_BITS_PATHS = ("arch/x86/include/asm/hyperv-tlfs.h",)


def fact_files() -> tuple[str, ...]:
    """The files of a tree the facts are read from."""
    return ENCODINGS_PATHS + VMCS12_PATHS + SHADOW_PATHS + EVMCS_PATHS + EVMCS_BITS_PATHS


def load_facts(tree: Tree) -> Facts:
    """Read every fact source from ``tree``; never raises on malformed files."""
    from vmxlint.facts import encodings, evmcs, shadow, vmcs12

    loaded = {
        "encodings": encodings.load(tree),
        "vmcs12": vmcs12.load(tree),
        "shadow": shadow.load(tree),
        "evmcs": evmcs.load(tree),
        "evmcs_bits": evmcs.load_bits(tree),
    }
    members = loaded["vmcs12"].data
    shadow_kind = shadow.kinds(loaded["shadow"].data)
    groups = loaded["evmcs"].data
    fields: dict[str, FieldInfo] = {}
    for name, enc in loaded["encodings"].data.items():
        width, ftype, high = encodings.decode(enc)
        fields[name] = FieldInfo(name, enc, width, ftype, high, members.get(name),
                                 shadow_kind.get(name), groups.get(name))
    notes = [n for ld in loaded.values() for n in ld.notes]
    for source, names in (("vmcs12", members), ("shadow", shadow_kind), ("evmcs", groups)):
        unknown = sorted(set(names) - set(fields))
        if unknown:
            notes.append(f"{loaded[source].origin} names fields not in enum vmcs_field: "
                         + ", ".join(unknown))
    return Facts(
        fields=fields,
        fallbacks=[ld.fallback for ld in loaded.values() if ld.fallback],
        notes=notes,
        sources={k: ld.origin for k, ld in loaded.items()},
        evmcs_group_bits=dict(loaded["evmcs_bits"].data),
    )


_ACCESSOR_RE = re.compile(r"^vmcs_(?:read|write)(16|32|64|l)$")
_SUFFIX_WIDTH = {"16": "16", "32": "32", "64": "64", "l": "natural"}


def accessor_width(accessor: str) -> str | None:
    """Width an accessor works at: ``vmcs_write16`` -> "16", ``vmcs_readl`` -> "natural".

    ``vmcs_set_bits``/``vmcs_clear_bits`` take a u32 mask -> "32" (KVM's build check
    only rejects 64-bit fields for them).  Anything else, including the unchecked
    ``__vmcs_writel``, gives None.
    """
    if accessor in ("vmcs_set_bits", "vmcs_clear_bits"):
        return "32"
    m = _ACCESSOR_RE.match(accessor)
    return _SUFFIX_WIDTH[m.group(1)] if m else None
