"""Output formats: each turns a Report into text for one consumer (DESIGN.md section 5).

Every format lives in its own module with ``write(report, out)`` and knows only
``vmxlint.findings``. This package holds the few helpers they share.
"""
from __future__ import annotations

import hashlib
import importlib
import re
from typing import Iterable, TextIO

from vmxlint.findings import Evidence, Finding, PatchRef, Report, sort_key
from vmxlint.textsafe import escape_text

FORMAT_NAMES: tuple[str, ...] = (
    "default", "checkpatch", "json", "sarif", "rdjson", "github", "email", "b4-json", "patchwork",
    "gitlab",
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
    "gitlab": "gitlab",
}

_RANK = {"error": 0, "warning": 1, "info": 2}
# Said wherever a rule's references are shown and one of them is an SDM section.
SDM_NOTE = ("Intel SDM section numbers are those of the 2016 edition (Vol. 3C, Vol. 3D "
            "appendices); other editions number chapters differently, so look sections up "
            "by title.")
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


def safe(text: str) -> str:
    """Text from the input as one line with its control characters escaped (DESIGN §8)."""
    return escape_text(one_line(text))


def line_image(f: Finding) -> str:
    """Which image the finding's line counts in: ``pre`` for resolved findings, else ``post``."""
    return "pre" if f.status == "resolved" else "post"


def identity(f: Finding) -> str:
    """The sha256 of the finding's identity: its path and ``Finding.key``, not its line."""
    return hashlib.sha256(repr((f.path, f.key)).encode("utf-8")).hexdigest()


def alerts(findings: Iterable[Finding]) -> list[Finding]:
    """Findings to act on: not resolved, each place once (a series repeats existing ones)."""
    out: dict[tuple[object, ...], Finding] = {}
    for f in findings:
        if f.status != "resolved":
            out.setdefault((f.path, f.line, f.col, f.key, f.status, f.message), f)
    return list(out.values())


def source_line(report: Report, f: Finding) -> str | None:
    """The text of the finding's line in the image it refers to, when the report can read it."""
    if report.source is None or f.line < 1:
        return None
    text = report.source(f.patch, line_image(f), f.path)
    if text is None:
        return None
    lines = text.split("\n")
    return lines[f.line - 1] if f.line <= len(lines) else None


def write_counts(report: Report, out: TextIO, *, statistics: bool, count: bool) -> None:
    """flake8's --statistics (a count per code) and --count (the total) for a report."""
    if statistics:
        names = {f.code: f.name for f in report.findings}
        for code, n in report.summary()["by_code"].items():
            print(f"{n:<5} {code} {escape_text(names[code])}", file=out)
    if count:
        print(len(report.findings), file=out)
