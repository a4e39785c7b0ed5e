"""SARIF 2.1.0: one run whose driver is vmxlint, for GitHub code scanning and reviewdog.

Rules are the codes present in the report. A result's ``baselineState`` tells what
the patch did: new -> ``new``, existing -> ``unchanged``, resolved -> ``absent``
(that one's location is in the pre-image). Evidence becomes ``relatedLocations``
whose message is the evidence's role. ``partialFingerprints`` hold the finding's
identity (code, function, field), which, unlike a line hash, survives edits
elsewhere in the file.
"""
from __future__ import annotations

import json
from typing import TextIO
from urllib.parse import quote

from vmxlint import __version__
from vmxlint.findings import Finding, Report

from . import ordered

SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
LEVELS = {"error": "error", "warning": "warning", "info": "note"}
BASELINE = {"new": "new", "existing": "unchanged", "resolved": "absent"}
FINGERPRINT = "vmxlintKey/v1"


def write(report: Report, out: TextIO) -> None:
    """Write the report as a SARIF 2.1.0 log."""
    findings = ordered(report.findings)
    rules = _rules(findings)
    index = {rule["id"]: i for i, rule in enumerate(rules)}
    log = {
        "$schema": SCHEMA_URI,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "vmxlint", "version": __version__, "rules": rules}},
            "results": [_result(f, index[f.code]) for f in findings],
        }],
    }
    json.dump(log, out, indent=2)
    out.write("\n")


def _rules(findings: list[Finding]) -> list[dict[str, object]]:
    """Describe each code once, from its first finding."""
    first: dict[str, Finding] = {}
    for f in findings:
        first.setdefault(f.code, f)
    rules = []
    for code, f in sorted(first.items()):
        text = f.name.replace("-", " ").replace("_", " ")
        rules.append({
            "id": code,
            "name": f.name,
            "shortDescription": {"text": text},
            "fullDescription": {"text": f"{code} {text}"},
            "help": {"text": f"Run `vmxlint explain {code}` for what this rule checks and why."},
            "defaultConfiguration": {"level": LEVELS.get(f.severity, "warning")},
        })
    return rules


def _location(path: str, line: int, col: int | None, function: str | None) -> dict[str, object]:
    region: dict[str, int] = {"startLine": max(line, 1)}
    if col:
        region["startColumn"] = max(col, 1)
    loc: dict[str, object] = {
        "physicalLocation": {"artifactLocation": {"uri": quote(path)}, "region": region},
    }
    if function:
        loc["logicalLocations"] = [{"name": function, "kind": "function"}]
    return loc


def _result(f: Finding, rule_index: int) -> dict[str, object]:
    related = []
    for i, e in enumerate(f.evidence):
        loc = _location(e.path, e.line, None, e.function)
        loc.update({"id": i, "message": {"text": e.role}})
        related.append(loc)
    patch = f.to_dict().get("patch")
    result: dict[str, object] = {
        "ruleId": f.code,
        "ruleIndex": rule_index,
        "level": LEVELS.get(f.severity, "warning"),
        "message": {"text": f.message},
        "locations": [_location(f.path, f.line, f.col, f.function)],
        "baselineState": BASELINE.get(f.status, "unchanged"),
        "partialFingerprints": {FINGERPRINT: f"{f.code}:{f.function or ''}:{f.field or ''}"},
        "properties": {"field": f.field, "function": f.function, "patch": patch},
    }
    if related:
        result["relatedLocations"] = related
    return result
