"""b4's review check JSON, for ``b4.review-perpatch-check-cmd`` (b4 0.15 and later).

b4 pipes one patch mail to the command and reads a JSON array of
``{"tool", "status": "pass"|"warn"|"fail", "summary", "url", "details"}`` objects
(``b4/review/checks.py:_run_external_cmd``; ``[]`` means nothing to report).
``details`` is a string; like b4's built-in checkpatch check, it holds a JSON
list of ``{"status", "description"}`` entries, which b4's review screen shows
one per line. So this format writes one object per patch (one more for
findings outside any patch):

- ``status`` comes from the worst severity among the patch's new findings:
  error -> fail, warning -> warn, info or none -> pass (as vmxlint's exit status,
  info alone does not fail a patch);
- ``summary`` counts them, and the findings the patch resolves;
- each ``details`` entry is a checkpatch-style line plus evidence, with status
  fail/warn/info by severity, ``pass`` for a resolved finding and ``info`` for
  one that was there before the patch.

Control characters from the input are shown as ``\\xNN`` escapes.
"""
from __future__ import annotations

import json
from typing import TextIO

from vmxlint.findings import Finding, PatchRef, Report

from . import by_patch, counts_against, evidence_text, safe, worst

STATUS = {"error": "fail", "warning": "warn"}
_LEVELS = {"error": "ERROR", "warning": "WARNING", "info": "CHECK"}
_NOUNS = (("error", "error"), ("warning", "warning"), ("info", "note"))


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def summary(findings: list[Finding]) -> str:
    """Say in one line what counts against the patch and what it resolves."""
    counted = [f for f in findings if counts_against(f)]
    parts = [_plural(n, noun) for sev, noun in _NOUNS
             if (n := sum(1 for f in counted if f.severity == sev))]
    text = ", ".join(parts) if parts else "passed all checks"
    resolved = sum(1 for f in findings if f.status == "resolved")
    if resolved:
        text += f"; resolves {_plural(resolved, 'finding')}"
    return text


def _detail(f: Finding) -> dict[str, str]:
    if f.status == "resolved":
        status = "pass"
    elif counts_against(f):
        status = STATUS.get(f.severity, "info")
    else:
        status = "info"
    level = _LEVELS.get(f.severity, "WARNING")
    line = f"{safe(f.path)}:{f.line}: {level}:{f.code}: {safe(f.message)}"
    if f.status != "new" and f.patch is not None:
        line += f" [{f.status}]"
    if f.evidence:
        line += " (" + "; ".join(safe(evidence_text(e)) for e in f.evidence) + ")"
    return {"status": status, "description": line}


def _label(patch: PatchRef | None) -> str:
    if patch is None:
        return "tree"
    return safe(patch.index or patch.subject)


def write(report: Report, out: TextIO) -> None:
    """Write a JSON array with one b4 check result per patch."""
    groups = by_patch(report)
    results = []
    for patch, findings in groups:
        text = summary(findings)
        if len(groups) > 1:
            text = f"{_label(patch)}: {text}"
        entry = {"tool": "vmxlint", "status": STATUS.get(worst(findings) or "", "pass"),
                 "summary": text}
        if findings:
            entry["details"] = json.dumps([_detail(f) for f in findings])
        results.append(entry)
    json.dump(results, out, indent=2)
    out.write("\n")
