"""GitHub Actions workflow commands: ``::error file=P,line=N,title=CODE::message``.

error -> ``::error``, warning -> ``::warning``, info -> ``::notice``. Evidence
follows the message on lines of its own. Escaping is that of
``@actions/core``: ``%``, CR and LF in the message; additionally ``:`` and ``,``
in property values. Control characters from the input (other than the line
breaks that command escaping encodes) are shown as ``\\xNN`` escapes first, so
the job log a reviewer reads holds no terminal escape. Resolved findings are
not annotated.
"""
from __future__ import annotations

from typing import TextIO

from vmxlint.findings import Finding, Report
from vmxlint.textsafe import escape_text

from . import evidence_text, ordered

COMMANDS = {"error": "error", "warning": "warning", "info": "notice"}


def escape_data(text: str) -> str:
    """Escape a command's message."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """Escape a command property's value."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def command(f: Finding) -> str:
    """Return the workflow command annotating one finding."""
    path = escape_text(f.path, keep="")
    props = f"file={escape_property(path)},line={f.line},title={escape_property(f.code)}"
    parts = [f.message] + [evidence_text(e) for e in f.evidence]
    message = "\n".join(escape_text(p, keep="\t\n") for p in parts)
    return f"::{COMMANDS.get(f.severity, 'warning')} {props}::{escape_data(message)}"


def write(report: Report, out: TextIO) -> None:
    """Write one workflow command per unresolved finding."""
    for f in ordered(report.findings):
        if f.status != "resolved":
            out.write(command(f) + "\n")
