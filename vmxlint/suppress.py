"""Suppression without touching kernel code: per-function-ignores and baselines.

``per-function-ignores`` (config or command line), flake8-style: entries separated by
commas or new lines, each ``CODE:FUNCTION[:FIELD]``; CODE may be a prefix (``VMX2``),
FUNCTION and FIELD may be shell globs.  A baseline is a JSON file recording findings
by their identity (``Finding.key``: code, function, field, statement, occurrence),
never by line, so it survives edits elsewhere in the file.
"""
from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path
from typing import Iterable

from msgspec import Struct

from vmxlint.errors import VmxlintError
from vmxlint.findings import Finding
from vmxlint.memo import LazyPattern

__all__ = ["SuppressError", "Ignore", "parse_ignores", "without_ignored", "read_baseline",
           "write_baseline", "without_baselined"]

BASELINE_VERSION = 1
MAX_BASELINE_BYTES = 16 * 1024 * 1024
_CODE = LazyPattern(r"^V(M(X\d{0,3})?)?$")
_NAME = LazyPattern(r"^[A-Za-z0-9_*?\[\]]+$")


class SuppressError(VmxlintError):
    """A per-function-ignores entry, a baseline file or a config file cannot be used."""


class Ignore(Struct, frozen=True):
    """One per-function-ignores entry."""

    code: str                 # a code or prefix: VMX201, VMX2
    function: str             # a function name or glob
    field: str | None = None  # a field name or glob; None: any field

    def matches(self, f: Finding) -> bool:
        if not f.code.startswith(self.code):
            return False
        if not fnmatch.fnmatchcase(f.function or "", self.function):
            return False
        return self.field is None or fnmatch.fnmatchcase(f.field or "", self.field)


def parse_ignores(text: str | None) -> list[Ignore]:
    """Read ``VMX201:nested_get_vmcs12_pages:APIC_ACCESS_ADDR, VMX1:prepare_vmcs02_rare``."""
    out = []
    for entry in re.split(r"[,\n]", text or ""):
        entry = entry.strip()
        if not entry or entry.startswith("#"):
            continue
        parts = [p.strip() for p in entry.split(":")]
        if len(parts) not in (2, 3) or not all(parts):
            raise SuppressError(f"per-function-ignores: {entry!r} is not CODE:FUNCTION or "
                                "CODE:FUNCTION:FIELD")
        if not _CODE.match(parts[0]):
            raise SuppressError(f"per-function-ignores: {parts[0]!r} is not a vmxlint code "
                                "or prefix (VMX, VMX2, VMX201, ...)")
        for name in parts[1:]:
            if not _NAME.match(name):
                raise SuppressError(f"per-function-ignores: {name!r} is not a C name or glob")
        out.append(Ignore(parts[0], parts[1], parts[2] if len(parts) == 3 else None))
    return out


def without_ignored(findings: Iterable[Finding], ignores: list[Ignore]) -> list[Finding]:
    """The findings no per-function-ignores entry matches."""
    return [f for f in findings if not any(i.matches(f) for i in ignores)]


# -- baselines -----------------------------------------------------------------------------

Key = tuple[str, "str | None", "str | None", str, int]


def _entry(f: Finding) -> dict[str, object]:
    code, function, field, statement, occurrence = f.key
    return {"code": code, "function": function, "field": field, "statement": statement,
            "occurrence": occurrence, "path": f.path, "line": f.line, "message": f.message}


def write_baseline(path: str, findings: Iterable[Finding]) -> int:
    """Record the findings' identities in path (JSON); return how many."""
    entries = sorted((_entry(f) for f in findings),
                     key=lambda e: (e["code"], e["function"] or "", e["field"] or "",
                                    e["statement"], e["occurrence"]))
    doc = {"version": BASELINE_VERSION, "tool": "vmxlint",
           "comment": "findings recorded by vmxlint audit --write-baseline; matched by "
                      "code, function, field, statement and occurrence (path, line and "
                      "message are for the reader)",
           "findings": entries}
    try:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=1, sort_keys=True)
            fh.write("\n")
    except OSError as exc:
        raise SuppressError(f"{path}: cannot write the baseline: {exc.strerror or exc}") from None
    return len(entries)


def _opt_str(v: object) -> bool:
    return v is None or isinstance(v, str)


def read_baseline(path: str) -> set[Key]:
    """The finding identities recorded in a baseline file."""
    try:
        p = Path(path)
        if p.stat().st_size > MAX_BASELINE_BYTES:
            raise SuppressError(f"{path}: baseline larger than {MAX_BASELINE_BYTES} bytes")
        doc = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SuppressError(f"{path}: cannot read the baseline: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise SuppressError(f"{path}: not a vmxlint baseline (invalid JSON: "
                            f"{str(exc).splitlines()[0]})") from None
    if not isinstance(doc, dict) or doc.get("version") != BASELINE_VERSION or not isinstance(
            doc.get("findings"), list):
        raise SuppressError(f"{path}: not a vmxlint baseline (version {BASELINE_VERSION} "
                            "object with a findings list expected)")
    keys: set[Key] = set()
    for n, e in enumerate(doc["findings"]):
        ok = (isinstance(e, dict) and isinstance(e.get("code"), str)
              and _opt_str(e.get("function")) and _opt_str(e.get("field"))
              and isinstance(e.get("statement"), str)
              and type(e.get("occurrence")) is int)
        if not ok:
            raise SuppressError(f"{path}: baseline entry {n} lacks code, function, field, "
                                "statement or occurrence")
        keys.add((e["code"], e["function"], e["field"], e["statement"], e["occurrence"]))
    return keys


def without_baselined(findings: Iterable[Finding], keys: set[Key]) -> list[Finding]:
    """The findings whose identity the baseline does not record."""
    return [f for f in findings if f.key not in keys]
