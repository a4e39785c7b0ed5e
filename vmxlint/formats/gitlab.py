"""GitLab Code Quality: a JSON array of issues (``artifacts:reports:codequality``).

Each finding to act on (new or existing; resolved ones are left out) becomes one
issue with GitLab's fields: ``description`` (the message, one line, control
characters escaped), ``check_name`` (``VMX201 missing-write``), ``fingerprint``,
``severity`` and ``location`` (``path``, ``lines.begin``: a post-image line).
Severities map error -> major, warning -> minor, info -> info.

GitLab matches issues of two reports by fingerprint, and shows only the first of
several issues sharing one, so the fingerprint hashes the finding's identity
(path and ``Finding.key``, never the line, as the SARIF format does) and numbers
repeats of one identity. ``type`` and ``categories`` come from the Code Climate
spec; GitLab ignores them.
"""
from __future__ import annotations

import json
from typing import TextIO

from vmxlint.findings import Finding, Report

from . import alerts, identity, ordered, safe

SEVERITIES = {"error": "major", "warning": "minor", "info": "info"}
_Json = dict[str, object]


def write(report: Report, out: TextIO) -> None:
    """Write the unresolved findings as a GitLab Code Quality report."""
    seen: dict[str, int] = {}
    issues = []
    for f in alerts(ordered(report.findings)):
        digest = identity(f)
        seen[digest] = seen.get(digest, 0) + 1
        issues.append(_issue(f, digest if seen[digest] == 1 else f"{digest}:{seen[digest]}"))
    json.dump(issues, out, indent=2)
    out.write("\n")


def _issue(f: Finding, fingerprint: str) -> _Json:
    return {
        "type": "issue",
        "description": safe(f.message),
        "check_name": f"{f.code} {f.name}",
        "categories": ["Bug Risk"],
        "fingerprint": fingerprint,
        "severity": SEVERITIES.get(f.severity, "minor"),
        "location": {"path": f.path, "lines": {"begin": max(f.line, 1)}},
    }
