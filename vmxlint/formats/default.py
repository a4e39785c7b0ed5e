"""flake8's default format: ``path:line:col: CODE message``, one line per finding.

Findings come sorted by path, line, column and code. A message's line breaks are
folded into spaces so that each finding stays on one line. The line is exactly
flake8's, except that a finding this patch resolves carries a trailing
`` [resolved]``, so that a reader does not take it for a problem the patch adds.
"""
from __future__ import annotations

from typing import TextIO

from vmxlint.findings import Report

from . import one_line, ordered


def write(report: Report, out: TextIO) -> None:
    """Write one flake8-style line per finding."""
    for f in ordered(report.findings):
        suffix = " [resolved]" if f.status == "resolved" else ""
        out.write(f"{f.path}:{f.line}:{f.col}: {f.code} {one_line(f.message)}{suffix}\n")
