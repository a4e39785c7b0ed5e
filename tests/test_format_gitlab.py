"""The gitlab format: GitLab's Code Quality report, fingerprints from the finding identity."""
from __future__ import annotations

import io
import json

import jsonschema
import pytest

from vmxlint.cli import build_parser
from vmxlint.findings import Evidence, Finding, PatchRef, Report
from vmxlint.formats import FORMAT_NAMES, write_report

NESTED = "arch/x86/kvm/vmx/nested.c"
PATCH = PatchRef("[PATCH] KVM: nVMX: Drop a write", None, "<p@example.org>", "D <d@example.org>")
COVER = Evidence(NESTED, 2782, "prepare_vmcs02", "covering write")

# The fields GitLab documents for a custom tool's Code Quality report
# (doc/ci/testing/code_quality.md, "Code Quality report format"): a JSON array of
# objects with description, check_name, fingerprint, severity and location.path plus
# location.lines.begin (or location.positions.begin.line).
SCHEMA = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["description", "check_name", "fingerprint", "severity", "location"],
        "properties": {
            "description": {"type": "string", "minLength": 1},
            "check_name": {"type": "string", "minLength": 1},
            "fingerprint": {"type": "string", "minLength": 1},
            "severity": {"enum": ["info", "minor", "major", "critical", "blocker"]},
            "location": {
                "type": "object",
                "required": ["path", "lines"],
                "properties": {
                    "path": {"type": "string", "minLength": 1},
                    "lines": {
                        "type": "object",
                        "required": ["begin"],
                        "properties": {"begin": {"type": "integer", "minimum": 1}},
                    },
                },
            },
        },
    },
}


def finding(field: str, status: str, line: int, severity: str = "error",
            occurrence: int = 0) -> Finding:
    return Finding("VMX201", "missing-write", severity, f"{field} is not written", NESTED, line,
                   2, "prepare_vmcs02", field, status, (COVER,), PATCH,
                   statement=f"vmcs_write64({field}, x)", occurrence=occurrence)


def render(report: Report) -> list[dict]:
    out = io.StringIO()
    write_report(report, "gitlab", out)
    text = out.getvalue()
    assert not text.startswith("\ufeff")          # GitLab refuses a BOM
    return json.loads(text)


MIXED = Report([finding("GUEST_RIP", "new", 2700), finding("GUEST_RSP", "existing", 2710,
                                                           "warning"),
                finding("GUEST_CR3", "resolved", 2600),
                finding("GUEST_PAT", "new", 2720, "info")])


@pytest.mark.parametrize("report", [MIXED, Report()], ids=["mixed", "empty"])
def test_report_matches_gitlabs_documented_fields(report):
    doc = render(report)
    jsonschema.validate(doc, SCHEMA)
    assert len({i["fingerprint"] for i in doc}) == len(doc)


def test_issues_leave_resolved_findings_out_and_map_severities():
    doc = render(MIXED)
    assert [(i["location"]["lines"]["begin"], i["severity"]) for i in doc] == [
        (2700, "major"), (2710, "minor"), (2720, "info")]
    first = doc[0]
    assert first["check_name"] == "VMX201 missing-write"
    assert first["description"] == "GUEST_RIP is not written"
    assert first["location"]["path"] == NESTED


def test_fingerprint_follows_the_identity_never_the_line():
    before = render(Report([finding("GUEST_RIP", "new", 2700)]))
    moved = render(Report([finding("GUEST_RIP", "new", 2750).with_(message="reworded")]))
    other = render(Report([finding("GUEST_RSP", "new", 2700)]))
    assert before[0]["fingerprint"] == moved[0]["fingerprint"]
    assert before[0]["fingerprint"] != other[0]["fingerprint"]


def test_repeats_of_one_identity_keep_distinct_fingerprints():
    # --all over a series repeats an existing finding per patch: one issue, not two.
    same = finding("GUEST_RIP", "existing", 2700)
    assert len(render(Report([same, same.with_(patch=None)]))) == 1
    # Two findings of one identity at two places stay two issues GitLab can tell apart.
    twice = render(Report([same, same.with_(line=2800, message="again")]))
    assert len(twice) == 2 and twice[0]["fingerprint"] != twice[1]["fingerprint"]


def test_control_characters_in_the_message_are_escaped():
    odd = finding("GUEST_RIP", "new", 2700).with_(message="a\x1b]0;pwn\x07b\rc")
    (issue,) = render(Report([odd]))
    assert issue["description"] == "a\\x1b]0;pwn\\x07b c"


def test_gitlab_is_a_format_of_check_and_audit():
    assert "gitlab" in FORMAT_NAMES
    parser = build_parser()
    for command in ("check", "audit"):
        args = parser.parse_args([command, "--format", "gitlab"])
        assert args.format == "gitlab"
