"""checkpatch.pl's terse format: ``path:line: SEVERITY:CODE: message``.

This is what ``checkpatch.pl -q --terse --no-summary --showfile --show-types``
prints, so the output is safe as b4's ``am-perpatch-check-cmd``: b4 takes every
stdout line for one problem (``fail`` if it contains ``ERROR:``, ``warning``
otherwise). Hence nothing else is printed: no summary, no blank line, and no
resolved finding. Severities map to checkpatch's levels: error -> ERROR,
warning -> WARNING, info -> CHECK (checkpatch's lowest level).
"""
from __future__ import annotations

from typing import TextIO

from vmxlint.findings import Report

from . import one_line, ordered

LEVELS = {"error": "ERROR", "warning": "WARNING", "info": "CHECK"}


def write(report: Report, out: TextIO) -> None:
    """Write one checkpatch line per finding that is not resolved."""
    for f in ordered(report.findings):
        if f.status == "resolved":
            continue
        level = LEVELS.get(f.severity, "WARNING")
        out.write(f"{f.path}:{f.line}: {level}:{f.code}: {one_line(f.message)}\n")
