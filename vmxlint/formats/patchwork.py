"""Patchwork checks: one JSON line per patch, in the shape of ``POST /api/patches/{id}/checks/``.

Each line has the API's fields ``state`` (success/warning/fail, from the worst
severity among the patch's new findings; info alone is a success),
``context`` (``vmxlint``), ``description`` (at most 255 characters, in the
manner of checkpatch's ``total:`` line) and ``target_url`` (empty: vmxlint has
no log to point at). One more key, ``patch`` (subject, index, message_id), is
not part of the API body: it lets the poster find the patch (patchwork looks
patches up by Message-ID) and should be dropped before posting. Findings
outside any patch get a line whose ``patch`` is null. Text from the input
(the subject) has its control characters shown as ``\\xNN`` escapes.
"""
from __future__ import annotations

import json
from typing import TextIO

from vmxlint.findings import Finding, Report

from vmxlint.textsafe import escape_text

from . import by_patch, counts_against, worst

STATES = {"error": "fail", "warning": "warning"}
MAX_DESCRIPTION = 255


def description(findings: list[Finding]) -> str:
    """Summarise in checkpatch's words, naming the codes; cut to 255 characters."""
    counted = [f for f in findings if counts_against(f)]
    n = {s: sum(1 for f in counted if f.severity == s) for s in ("error", "warning", "info")}
    text = f"total: {n['error']} errors, {n['warning']} warnings, {n['info']} checks"
    codes = sorted({f.code for f in counted})
    if codes:
        text += f" ({', '.join(codes)})"
    resolved = sorted({f.code for f in findings if f.status == "resolved"})
    if resolved:
        text += f"; resolves {', '.join(resolved)}"
    text = escape_text(text, keep="")
    if len(text) > MAX_DESCRIPTION:
        text = text[:MAX_DESCRIPTION - 3] + "..."
    return text


def write(report: Report, out: TextIO) -> None:
    """Write one check per patch as JSON lines."""
    for patch, findings in by_patch(report):
        check = {
            "state": STATES.get(worst(findings) or "", "success"),
            "context": "vmxlint",
            "description": description(findings),
            "target_url": "",
            "patch": None if patch is None else {
                "subject": escape_text(patch.subject, keep=""), "index": patch.index,
                "message_id": patch.message_id,
            },
        }
        out.write(json.dumps(check) + "\n")
