"""Control characters from the input never reach the output raw, in any format (DESIGN §8)."""
from __future__ import annotations

import io
import json
import re

import pytest

from vmxlint.findings import Evidence, Finding, PatchRef, Report
from vmxlint.formats import FORMAT_NAMES, write_report

# ESC (a CSI clear-screen and an OSC 8 hyperlink ended by BEL), a bare CR, C1 CSI, DEL.
HOSTILE = "\x1b[2J\x1b]8;;https://evil.example/\x07click\x1b]8;;\x07\rok\x9b31m\x7f"
PATH = f"arch/x86/kvm/vmx/nes{HOSTILE}ted.c"
PATCH = PatchRef(f"[PATCH] KVM: nVMX: {HOSTILE}\r\nBcc: victim@example.org", "1/1",
                 "<m@example.org>", "Dev <dev@example.org>")
MAIL = f"""\
From: Dev <dev@example.org>
Subject: [PATCH] KVM: nVMX: plain subject
Message-ID: <m@example.org>

---
diff --git a/{PATH} b/{PATH}
--- a/{PATH}
+++ b/{PATH}
@@ -1,2 +1,2 @@
 x();
-y();
+z();{HOSTILE}
"""
FINDINGS = [
    Finding("VMX201", "missing-write", "error", f"GUEST_RIP {HOSTILE} is not written", PATH, 2,
            1, "f", "GUEST_RIP", status, (Evidence(PATH, 1, "f", "consumer"),), PATCH)
    for status in ("new", "existing", "resolved")
] + [Finding("VMX101", "redundant-write", "warning", f"tree {HOSTILE}", PATH, 1, 1)]

# What a terminal or a log viewer acts on: C0 but tab and newline, DEL, C1.
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
JSON_FORMATS = {"json", "sarif", "rdjson", "b4-json", "patchwork", "gitlab"}
# Formats whose text fields keep the input as found: a program reads them.
DATA_FORMATS = {"json"}


def render(fmt: str) -> str:
    out = io.StringIO()
    write_report(Report(list(FINDINGS), mails={PATCH: MAIL}, tree="t"), fmt, out)
    return out.getvalue()


def texts(fmt: str, text: str) -> list[str]:
    """The fields of a JSON format that a person reads (paths stay data, as in json)."""
    if fmt == "patchwork":
        checks = [json.loads(line) for line in text.splitlines()]
        return [c["description"] for c in checks] + [c["patch"]["subject"] for c in checks
                                                     if c["patch"]]
    doc = json.loads(text)
    if fmt == "gitlab":
        return [i["description"] for i in doc] + [i["check_name"] for i in doc]
    if fmt == "rdjson":
        return [d["message"] for d in doc["diagnostics"]] + [
            r["message"] for d in doc["diagnostics"] for r in d.get("relatedLocations", [])]
    if fmt == "b4-json":
        return [r["summary"] for r in doc] + [d["description"] for r in doc
                                              for d in json.loads(r.get("details", "[]"))]
    assert fmt == "sarif"
    (run,) = doc["runs"]
    return [r["message"]["text"] for r in run["results"]] + [
        r["message"] for r in run["properties"]["resolved"]]


@pytest.mark.parametrize("fmt", FORMAT_NAMES)
def test_no_raw_control_character_in_the_output(fmt):
    text = render(fmt)
    assert text.strip()
    assert not RAW.search(text), RAW.findall(text)


@pytest.mark.parametrize("fmt", sorted(JSON_FORMATS - DATA_FORMATS))
def test_no_control_character_in_the_text_json_formats_carry(fmt):
    found = texts(fmt, render(fmt))
    assert len(found) >= 2 and any("\\x1b" in t for t in found)
    assert [t for t in found if RAW.search(t)] == []


@pytest.mark.parametrize("fmt", ["default", "checkpatch", "github", "b4-json"])
def test_escapes_stay_visible(fmt):
    text = render(fmt)
    assert "\\x1b" in text and "click" in text


def test_github_property_and_message():
    lines = render("github").splitlines()
    assert lines and all(line.startswith("::error file=arch/x86/kvm/vmx/nes\\x1b") or
                         line.startswith("::warning file=arch/x86/kvm/vmx/nes\\x1b")
                         for line in lines), lines
    assert "%0D" not in "".join(lines)      # a CR from the input is shown, never encoded


def test_email_subject_stays_one_header():
    text = render("email")
    assert not re.search(r"^Bcc:", text, re.M)
    assert text.count("\nSubject: ") == 2        # the reply to the patch, the tree's message


def test_patchwork_description_and_subject():
    checks = [json.loads(line) for line in render("patchwork").splitlines()]
    subjects = [c["patch"]["subject"] for c in checks if c["patch"]]
    assert subjects and all("\\x1b" in s and "\r" not in s for s in subjects)
