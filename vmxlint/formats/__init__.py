"""Output formats: each turns a Report into text for one consumer (DESIGN.md section 5).

Every format lives in its own module with ``write(report, out)`` and knows only
``vmxlint.findings``. This package holds the few helpers they share.
"""
from __future__ import annotations

import importlib
import re
from typing import Iterable, TextIO

from vmxlint.findings import Evidence, Finding, PatchRef, Report, sort_key

FORMAT_NAMES: tuple[str, ...] = (
    "default", "checkpatch", "json", "sarif", "rdjson", "github", "email", "b4-json", "patchwork",
)

# Format name -> module; modules whose natural name would shadow the stdlib are renamed.
_MODULES = {
    "default": "default",
    "checkpatch": "checkpatch",
    "json": "jsonfmt",
    "sarif": "sarif",
    "rdjson": "rdjson",
    "github": "github",
    "email": "mailreply",
    "b4-json": "b4json",
    "patchwork": "patchwork",
}

_RANK = {"error": 0, "warning": 1, "info": 2}
_NEWLINES = re.compile(r"[ \t]*(?:\r\n|\r|\n)[ \t]*")


def write_report(report: Report, fmt: str, out: TextIO) -> None:
    """Write ``report`` to ``out`` in format ``fmt`` (one of FORMAT_NAMES)."""
    try:
        name = _MODULES[fmt]
    except KeyError:
        choices = ", ".join(FORMAT_NAMES)
        raise ValueError(f"unknown format {fmt!r} (choose from {choices})") from None
    module = importlib.import_module(f"{__name__}.{name}")
    module.write(report, out)


def ordered(findings: Iterable[Finding]) -> list[Finding]:
    """Return findings in the stable output order: path, line, col, code, field."""
    return sorted(findings, key=sort_key)


def one_line(text: str) -> str:
    """Fold line breaks (and the blanks around them) into single spaces."""
    return _NEWLINES.sub(" ", text).strip()


def evidence_text(e: Evidence) -> str:
    """Describe one piece of evidence as ``role: path:line (function)``."""
    where = f"{e.path}:{e.line}"
    if e.function:
        where += f" ({e.function})"
    return f"{e.role}: {where}"


def counts_against(f: Finding) -> bool:
    """Whether a finding decides a verdict: new ones, or any unresolved one outside a patch."""
    return f.status == "new" or (f.patch is None and f.status == "existing")


def worst(findings: Iterable[Finding]) -> str | None:
    """Return the worst severity among the findings that count against a patch, or None."""
    sevs = [f.severity for f in findings if counts_against(f)]
    return min(sevs, key=lambda s: _RANK.get(s, len(_RANK)), default=None)


def by_patch(report: Report) -> list[tuple[PatchRef | None, list[Finding]]]:
    """Group findings by patch: mailed patches in mail order, then others, then no patch."""
    groups: dict[PatchRef | None, list[Finding]] = {p: [] for p in report.mails}
    for f in ordered(report.findings):
        groups.setdefault(f.patch, []).append(f)
    return sorted(groups.items(), key=lambda kv: kv[0] is None)
