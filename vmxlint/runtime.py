"""Runtime writers: writes of VMCS fields that KVM makes outside the nested entry path.

``vmx.c`` and the other files of ``arch/x86/kvm/vmx/`` write fields of whatever VMCS is
loaded (vmcs02 while L2 runs): event injection, the MSR autoload lists, host state on a
VMCS load, registers flushed before the VM entry.  Such a writer keeps a ``runtime``
value current, and a writer that runs before every VM entry (``every_entry`` in
``rules/model/entry.toml``) gives the field a value on any entry, restore and RSM included.
"""
from __future__ import annotations


from typing import TYPE_CHECKING

from msgspec import Struct

from vmxlint.memo import LazyPattern, kept
from vmxlint.model import PerModel
from vmxlint.sites import WRITE_ACCESSORS

if TYPE_CHECKING:  # pragma: no cover
    from typing import Mapping, Sequence

    from vmxlint.model import Model
    from vmxlint.tree import Tree


class Writer(Struct, frozen=True, forbid_unknown_fields=True):
    """One write of a field by KVM outside the nested entry path."""

    field: str
    function: str
    path: str
    line: int
    every_entry: bool      # runs before every VM entry with the VMCS loaded
    on_restore: bool       # runs when userspace restores vCPU state (or RSM loads it)


def scan(tree: "Tree", model: "Model") -> dict[str, list[Writer]]:
    """Every runtime writer of each field, from the tree's files named in entry.toml."""
    from vmxlint.cfront import scan_calls

    out: dict[str, list[Writer]] = {}
    every, restore = set(model.entry.every_entry), set(model.entry.restore_writers)
    for rel in model.entry.runtime_files:
        text = tree.read_or_none(rel)
        if not text:
            continue
        for c in scan_calls(text, rel, set(WRITE_ACCESSORS)):
            if c.first_arg.isidentifier():
                out.setdefault(c.first_arg, []).append(
                    Writer(c.first_arg, c.function, rel, c.line, c.function in every,
                           c.function in restore))
    return out


def absent_caches(tree: "Tree", model: "Model") -> set[str]:
    """Caches the tree predates: its marker files exist but hold no marker of the cache."""
    texts = tuple(t for t in (tree.read_or_none(rel) for rel in model.caches.marker_files)
                  if t)
    if not texts:
        return set()
    seen = _absent(model)
    hit = seen.get(texts)
    if hit is None:
        hit = kept(seen, texts, frozenset(
            kind for kind, rx in model.caches.present.items()
            if not any(rx.search(t) for t in texts)), 8)
    return set(hit)


# The answer for the marker files' texts, by model: every image of a series asks it of
# the same headers, and a marker that is absent is searched for through all of them.
_absent = PerModel(lambda model: dict[tuple[str, ...], frozenset[str]]())


# A store ``lhs=rhs`` (``|=``, ``&=``) in a body with whitespace removed; it starts where
# a run of name characters starts (a later start could only match less, slowly).
_STORE = LazyPattern(r"(?<![\w>.\-\[\]])[\w>.\-\[\]]+[&|]?=[^=;][^;]*")


def cache_helpers(tree: "Tree", model: "Model", per_file=None,
                  within: "Mapping[str, Sequence[str]] | None" = None) -> dict[str, str]:
    """Helpers whose body stores an effect of caches.toml: name -> the cache it keeps
    right (``vmx_segment_cache_clear`` and ``vmx_switch_vmcs`` in 6.x, whatever the name).
    ``per_file(rel, compute)`` may cache each file's part by its content; ``within[rel]``
    are the parts of a file to look at instead of all of it (the texts of the functions a
    path calls, each looked at once per process)."""
    within = within or {}
    out: dict[str, str] = {}
    for rel in model.caches.helper_files:
        if rel in within:
            found = {}
            for part in within[rel]:
                for name, kind in _helpers_in_part(part, model).items():
                    found.setdefault(name, kind)
        else:
            text = tree.read_or_none(rel) or ""
            found = per_file(rel, lambda: helpers_in(text, model)) if per_file is not None \
                else helpers_in(text, model)
        for name, kind in found.items():
            out.setdefault(name, kind)
    return out


def _helpers_in_part(text: str, model: "Model") -> dict[str, str]:
    key = (id(model), text)
    hit = _PARTS.get(key)
    if hit is None:
        if len(_PARTS) >= PARTS_MEMO:
            _PARTS.clear()
        hit = _PARTS[key] = helpers_in(text, model)
    return hit


# helpers_in of a function's text, by (model, text), in this process: a patch changes one
# function, and the path calls the same helpers image after image.
_PARTS: dict[tuple[int, str], dict[str, str]] = {}
PARTS_MEMO = 4096


def helpers_in(text: str, model: "Model") -> dict[str, str]:
    """The cache helpers one file defines."""
    from vmxlint.cfront import function_bodies

    out: dict[str, str] = {}
    for name, body in function_bodies(text).items():
        for store in _STORE.findall(body):
            kind = model.caches.cache_of(store)
            if kind is not None:
                out.setdefault(name, kind)
    return out
