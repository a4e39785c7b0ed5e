"""flake8's default format: ``path:line:col: CODE [severity] message``, one line per finding.

Findings come sorted by path, line, column and code. A message's line breaks are
folded into spaces so that each finding stays on one line. The severity follows the
code inside the text, so flake8's ``%(path)s:%(row)d:%(col)d: %(code)s %(text)s``
parsers still read every line; a finding this patch resolves carries a trailing
`` [resolved]``, so that a reader does not take it for a problem the patch adds.
``quiet`` prints only ``path:line`` (once each); ``colour`` adds ANSI colours.
"""
from __future__ import annotations

from typing import TextIO

from vmxlint.findings import Report

from . import one_line, ordered

_COLOURS = {"error": "\033[1;31m", "warning": "\033[33m", "info": "\033[36m"}
_BOLD, _RESET = "\033[1m", "\033[0m"


def write(report: Report, out: TextIO, *, quiet: bool = False, colour: bool = False) -> None:
    """Write one flake8-style line per finding."""
    seen: set[tuple[str, int]] = set()
    for f in ordered(report.findings):
        if quiet:
            if (f.path, f.line) not in seen:
                seen.add((f.path, f.line))
                out.write(f"{f.path}:{f.line}\n")
            continue
        suffix = " [resolved]" if f.status == "resolved" else ""
        where = f"{f.path}:{f.line}:{f.col}:"
        code, sev = f.code, f"[{f.severity}]"
        if colour:
            where = f"{_BOLD}{where}{_RESET}"
            code = f"{_COLOURS.get(f.severity, '')}{code}{_RESET}"
        out.write(f"{where} {code} {sev} {one_line(f.message)}{suffix}\n")
