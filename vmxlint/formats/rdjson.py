"""reviewdog's rdjson: one ``DiagnosticResult`` (``reviewdog -f=rdjson``).

Each finding the patch did not resolve becomes a ``Diagnostic``; its evidence
becomes ``relatedLocations`` with the evidence's role as message. The result's
own ``severity`` is the worst one among the diagnostics (``UNKNOWN_SEVERITY``
when there are none). Control characters from the input in a message are shown
as ``\\xNN`` escapes (line breaks stay): reviewdog posts the message as is.
"""
from __future__ import annotations

import json
from typing import TextIO

from vmxlint.findings import Finding, Report
from vmxlint.textsafe import escape_text

from . import ordered

SEVERITIES = {"error": "ERROR", "warning": "WARNING", "info": "INFO"}
_ORDER = ("ERROR", "WARNING", "INFO")


def write(report: Report, out: TextIO) -> None:
    """Write the unresolved findings as one rdjson DiagnosticResult."""
    diagnostics = [_diagnostic(f) for f in ordered(report.findings) if f.status != "resolved"]
    present = {d["severity"] for d in diagnostics}
    overall = next((s for s in _ORDER if s in present), "UNKNOWN_SEVERITY")
    result = {"source": {"name": "vmxlint"}, "severity": overall, "diagnostics": diagnostics}
    json.dump(result, out, indent=2)
    out.write("\n")


def _position(line: int, col: int | None = None) -> dict[str, object]:
    start: dict[str, int] = {"line": line}
    if col:
        start["column"] = col
    return {"start": start}


def _diagnostic(f: Finding) -> dict[str, object]:
    diag: dict[str, object] = {
        "message": escape_text(f.message, keep="\t\n"),
        "location": {"path": f.path, "range": _position(f.line, f.col)},
        "severity": SEVERITIES.get(f.severity, "UNKNOWN_SEVERITY"),
        "code": {"value": f.code},
    }
    if f.evidence:
        diag["relatedLocations"] = [
            {"message": e.role, "location": {"path": e.path, "range": _position(e.line)}}
            for e in f.evidence
        ]
    return diag
