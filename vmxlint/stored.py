"""An analysis as the disk cache keeps it: each long string of its findings' details once.

The rendered guards in the details of VMX101, VMX201 and VMX302 findings run to 15 KB on
a kernel tree, and the findings of a field repeat them (a write's guard is also another
write's covering guard); they made an analysis entry 250-470 KB.  Here each string of
``LONG`` characters or more is written once, in ``strings``, and in its places a
reference: NUL, then its index.  A string that starts with NUL is always written as a
reference, whatever its length, so that a reference is never taken for text.  Only the
values of details and the strings of list values are looked at; everything else is
stored as it is, and an entry read back is the analysis a plain entry gave.
"""
from __future__ import annotations

from typing import Any

from msgspec import Struct, structs

from vmxlint.analysis import Analysis

LONG = 256
_MARK = "\0"


class Stored(Struct, forbid_unknown_fields=True):
    """An analysis with its long detail strings in ``strings``."""

    analysis: Analysis
    strings: list[str]


def stored(analysis: Analysis) -> Stored:
    """ANALYSIS with its long detail strings replaced by references."""
    index: dict[str, int] = {}
    strings: list[str] = []

    def ref(v: Any) -> Any:
        if type(v) is not str or (len(v) < LONG and not v.startswith(_MARK)):
            return v
        k = index.get(v)
        if k is None:
            k = index[v] = len(strings)
            strings.append(v)
        return f"{_MARK}{k}"

    findings = []
    for f in analysis.findings:
        if f.details:
            details = tuple((key, [ref(x) for x in v] if type(v) in (list, tuple) else ref(v))
                            for key, v in f.details)
            f = structs.replace(f, details=details)
        findings.append(f)
    return Stored(structs.replace(analysis, findings=findings), strings)


def restored(entry: Stored) -> Analysis | None:
    """The analysis an entry stores; None when a reference points nowhere (a damaged
    entry: the caller analyses again)."""
    strings = entry.strings

    def deref(v: Any) -> Any:
        if type(v) is str and v.startswith(_MARK):
            k = v[1:]
            if not (k.isascii() and k.isdigit()) or int(k) >= len(strings):
                raise _Dangling(v)
            return strings[int(k)]
        return v

    try:
        findings = [structs.replace(f, details=tuple(
            (key, [deref(x) for x in v] if type(v) is list else deref(v))
            for key, v in f.details)) if f.details else f for f in entry.analysis.findings]
    except _Dangling:
        return None
    return structs.replace(entry.analysis, findings=findings)


class _Dangling(Exception):
    """A reference to no string of the entry."""
