"""SARIF 2.1.0: one run whose driver is vmxlint, for GitHub code scanning and reviewdog.

Results are the findings a reviewer must act on (new and existing, post-image
lines); ``baselineState`` says which (``new`` / ``unchanged``). Resolved findings
are not alerts and are not results: GitHub code scanning treats every result as
an alert (it knows only the levels note, warning and error) and closes an alert
when a later analysis no longer reports it, and reviewdog posts every result
whatever its ``kind``. They are listed in the run's ``properties.resolved``
(pre-image lines) so the log still says what the patch fixed.

Rules carry their text from the rule catalogue (``rules/``): summary, rationale,
known limits and references. ``partialFingerprints`` hash the finding's identity
(path and ``Finding.key``, never the line), so an alert follows its finding
through edits elsewhere in the file; GitHub reads ``primaryLocationLineHash``.
"""
from __future__ import annotations

import json
from typing import TextIO
from urllib.parse import quote

from vmxlint import __version__
from vmxlint.findings import Finding, Report
from vmxlint.model import Rule, load_model
from vmxlint.textsafe import escape_text

from . import SDM_NOTE, alerts, identity, ordered, safe

SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
# Where users read about vmxlint; the distribution's PyPI page until the project has a home.
INFORMATION_URI = "https://pypi.org/project/vmxlint/"
LEVELS = {"error": "error", "warning": "warning", "info": "note"}
BASELINE = {"new": "new", "existing": "unchanged"}
FINGERPRINT = "vmxlintIdentity/v1"

_Json = dict[str, object]


def write(report: Report, out: TextIO) -> None:
    """Write the report as a SARIF 2.1.0 log."""
    findings = ordered(report.findings)
    catalogue = load_model().rules
    rules = [_rule(code, f, catalogue.get(code)) for code, f in _first_by_code(findings)]
    index = {rule["id"]: i for i, rule in enumerate(rules)}
    seen: dict[str, int] = {}
    results = []
    for f in alerts(findings):
        digest = identity(f)
        seen[digest] = seen.get(digest, 0) + 1
        results.append(_result(f, index[f.code], f"{digest}:{seen[digest]}"))
    driver = {"name": "vmxlint", "version": __version__, "semanticVersion": __version__,
              "informationUri": INFORMATION_URI, "rules": rules}
    run: _Json = {"tool": {"driver": driver}, "results": results,
                  "properties": {"lines": "post-image",
                                 "resolved": [_resolved(f) for f in findings
                                              if f.status == "resolved"]}}
    json.dump({"$schema": SCHEMA_URI, "version": "2.1.0", "runs": [run]}, out, indent=2)
    out.write("\n")


def _first_by_code(findings: list[Finding]) -> list[tuple[str, Finding]]:
    first: dict[str, Finding] = {}
    for f in findings:
        first.setdefault(f.code, f)
    return sorted(first.items())


def _paragraphs(text: str) -> str:
    """Unwrap hard-wrapped TOML text: one line per paragraph."""
    paras = (" ".join(p.split()) for p in text.strip().split("\n\n"))
    return "\n\n".join(p for p in paras if p)


def _rule(code: str, f: Finding, rule: Rule | None) -> _Json:
    """Describe one code: from the catalogue, or from its finding when the code is not there."""
    level = {"level": LEVELS.get(f.severity, "warning")}
    if rule is None:
        text = f.name.replace("-", " ").replace("_", " ")
        return {"id": code, "name": f.name, "shortDescription": {"text": text},
                "fullDescription": {"text": f"{code} {text}"},
                "help": {"text": f"Run `vmxlint explain {code}` for what this rule checks."},
                "defaultConfiguration": level}
    rationale, limits = _paragraphs(rule.rationale), _paragraphs(rule.limits)
    refs = list(rule.references)
    text = [rule.summary, rationale]
    markdown = [rule.summary, "## Rationale", rule.rationale.strip()]
    if limits:
        text.append(f"Known limits: {limits}")
        markdown += ["## Known limits", rule.limits.strip()]
    if refs:
        note = [SDM_NOTE] if any("SDM" in r for r in refs) else []
        text.append("References:\n" + "\n".join(f"- {r}" for r in refs))
        markdown += ["## References", "\n".join(f"- {r}" for r in refs)]
        text += note
        markdown += note
    return {"id": code, "name": rule.name,
            "shortDescription": {"text": rule.summary},
            "fullDescription": {"text": rationale or rule.summary},
            "help": {"text": "\n\n".join(text), "markdown": "\n\n".join(markdown)},
            "defaultConfiguration": {**level, "enabled": rule.default}}


def _location(path: str, line: int, col: int | None, function: str | None) -> _Json:
    region: dict[str, int] = {"startLine": max(line, 1)}
    if col:
        region["startColumn"] = max(col, 1)
    loc: _Json = {
        "physicalLocation": {"artifactLocation": {"uri": quote(path)}, "region": region},
    }
    if function:
        loc["logicalLocations"] = [{"name": function, "kind": "function"}]
    return loc


def _result(f: Finding, rule_index: int, fingerprint: str) -> _Json:
    related = []
    for i, e in enumerate(f.evidence):
        loc = _location(e.path, e.line, None, e.function)
        loc.update({"id": i, "message": {"text": e.role}})
        related.append(loc)
    result: _Json = {
        "ruleId": f.code,
        "ruleIndex": rule_index,
        "level": LEVELS.get(f.severity, "warning"),
        "message": {"text": escape_text(f.message, keep="\t\n")},
        "locations": [_location(f.path, f.line, f.col, f.function)],
        "baselineState": BASELINE.get(f.status, "unchanged"),
        "partialFingerprints": {FINGERPRINT: fingerprint, "primaryLocationLineHash": fingerprint},
        "properties": {"field": f.field, "function": f.function,
                       "patch": f.to_dict().get("patch")},
    }
    if related:
        result["relatedLocations"] = related
    return result


def _resolved(f: Finding) -> _Json:
    """What the run says about a finding the patch resolves (pre-image line)."""
    return {"ruleId": f.code, "message": safe(f.message), "path": f.path, "preImageLine": f.line,
            "function": f.function, "field": f.field, "fingerprint": identity(f)}
