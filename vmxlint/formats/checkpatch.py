"""checkpatch.pl's terse format: ``path:line: SEVERITY:CODE: message``.

This is what ``checkpatch.pl -q --terse --no-summary --showfile --show-types``
prints, so the output is safe as b4's ``am-perpatch-check-cmd``: b4 takes every
stdout line for one problem (``fail`` if it contains ``ERROR:``, ``warning``
otherwise). Hence nothing else is printed: no summary, no blank line, and no
resolved finding. Severities map to checkpatch's levels: error -> ERROR,
warning -> WARNING. Info findings would be checkpatch's CHECK level, which checkpatch
prints only with --strict; like checkpatch by default, this format leaves them out, so
a patch that only triggers info (a repaired archive diff, say) prints nothing.
Control characters from the input (path, message) are shown as ``\\xNN`` escapes.
"""
from __future__ import annotations

from typing import TextIO

from vmxlint.findings import Report

from . import ordered, safe

LEVELS = {"error": "ERROR", "warning": "WARNING"}


def write(report: Report, out: TextIO) -> None:
    """Write one checkpatch line per finding that is not resolved."""
    for f in ordered(report.findings):
        if f.status == "resolved" or f.severity not in LEVELS:
            continue
        level = LEVELS[f.severity]
        out.write(f"{safe(f.path)}:{f.line}: {level}:{f.code}: {safe(f.message)}\n")
