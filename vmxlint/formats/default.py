"""flake8's default format: ``path:line:col: CODE [severity] message``, one line per finding.

Findings come sorted by path, line, column and code. A message's line breaks are
folded into spaces so that each finding stays on one line, and control characters
from the input are shown as ``\\xNN`` escapes. The severity follows the code
inside the text, so flake8's ``%(path)s:%(row)d:%(col)d: %(code)s %(text)s``
parsers still read every line. Lines are post-image lines, but for a finding this
patch resolves, which carries a trailing ``[resolved, pre-image line]``: a reader
does not take it for a problem the patch adds, nor look for it in the new file.
``quiet`` prints only ``path:line`` (once each); ``colour`` adds ANSI colours;
``show_source`` prints the finding's source line under it with a caret under its
column, or its first non-blank character (flake8's --show-source), from the image
the line counts in.
"""
from __future__ import annotations

from typing import TextIO

from vmxlint.findings import Finding, Report
from vmxlint.textsafe import escape_text

from . import ordered, safe, source_line

_COLOURS = {"error": "\033[1;31m", "warning": "\033[33m", "info": "\033[36m"}
_BOLD, _RESET = "\033[1m", "\033[0m"
# A source line longer than this is cut: the input decides its length.
MAX_SOURCE = 400
RESOLVED = " [resolved, pre-image line]"


def write(report: Report, out: TextIO, *, quiet: bool = False, colour: bool = False,
          show_source: bool = False) -> None:
    """Write one flake8-style line per finding."""
    seen: set[tuple[str, int]] = set()
    for f in ordered(report.findings):
        if quiet:
            if (f.path, f.line) not in seen:
                seen.add((f.path, f.line))
                out.write(f"{safe(f.path)}:{f.line}\n")
            continue
        suffix = RESOLVED if f.status == "resolved" else ""
        where = f"{safe(f.path)}:{f.line}:{f.col}:"
        code, sev = f.code, f"[{f.severity}]"
        if colour:
            where = f"{_BOLD}{where}{_RESET}"
            code = f"{_COLOURS.get(f.severity, '')}{code}{_RESET}"
        out.write(f"{where} {code} {sev} {safe(f.message)}{suffix}\n")
        if show_source:
            out.write(_source(report, f))


def _source(report: Report, f: Finding) -> str:
    """The source line and a caret under the finding's column, or nothing."""
    text = source_line(report, f)
    if text is None:
        return ""
    if len(text) > MAX_SOURCE:
        text = text[:MAX_SOURCE] + "..."
    shown = escape_text(text)
    # The caret goes under the column, or under the statement when the column is in
    # the indentation; as flake8 does, tabs before it stay tabs and the rest blanks.
    start = len(text) - len(text.lstrip(" \t"))
    head = escape_text(text[:max(f.col - 1, start)])
    indent = "".join(c if c == "\t" else " " for c in head)
    return f"{shown}\n{indent}^\n"
