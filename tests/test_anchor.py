"""A finding a patch causes by deleting a line lands on the patch's hunk in every format,
its own place kept as a related location."""
from __future__ import annotations

import difflib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from vmxlint.series import check
from vmxlint.mail import read_mails
from vmxlint.tree import NESTED_C, Tree

ROOT = Path(__file__).resolve().parent.parent
SHAPE = ROOT / "fixtures" / "trees" / "shape-modern"
DELETED = "\tvmcs_write32(GUEST_SYSENTER_CS, vmcs12->guest_sysenter_cs);\n"


@pytest.fixture(scope="module")
def patch(tmp_path_factory) -> Path:
    before = (SHAPE / NESTED_C).read_text()
    after = before.replace(DELETED, "", 1)
    body = "".join(difflib.unified_diff(before.splitlines(True), after.splitlines(True),
                                        f"a/{NESTED_C}", f"b/{NESTED_C}"))
    path = tmp_path_factory.mktemp("anchor") / "delete.patch"
    path.write_text("From: T <t@example.org>\nSubject: [PATCH] drop a write\n"
                    "Message-ID: <anchor@example.org>\n\n---\n"
                    f"diff --git a/{NESTED_C} b/{NESTED_C}\n{body}")
    return path


def _hunk_lines(patch: Path) -> set[int]:
    """Post-image lines the hunk covers."""
    m = re.search(r"^@@ -\d+(?:,\d+)? \+(\d+)(?:,(\d+))? @@", patch.read_text(), re.M)
    start, count = int(m.group(1)), int(m.group(2) or 1)
    return set(range(start, start + count))


def test_the_finding_moves_onto_the_hunk(patch: Path, monkeypatch) -> None:
    monkeypatch.setenv("VMXLINT_NO_CACHE", "1")
    result = check(read_mails(patch.read_bytes(), "p"), Tree.open(SHAPE))
    (f,) = [f for f in result.findings if f.status == "new"]
    assert (f.code, f.field) == ("VMX201", "GUEST_SYSENTER_CS")
    assert f.line in _hunk_lines(patch)
    assert f.evidence[0].role == "site" and f.evidence[0].line not in _hunk_lines(patch)


def _run(patch: Path, fmt: str) -> str:
    env = dict(os.environ, VMXLINT_NO_CACHE="1", PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "vmxlint", "check", "--tree", str(SHAPE),
                           "--format", fmt, str(patch)], capture_output=True, env=env)
    assert proc.returncode == 1, proc.stderr
    return proc.stdout.decode()


def _lines(fmt: str, out: str) -> list[int]:
    if fmt in ("default", "checkpatch"):
        return [int(m) for m in re.findall(rf"{NESTED_C}:(\d+):", out)]
    if fmt == "github":
        return [int(m) for m in re.findall(r",line=(\d+)", out)]
    if fmt == "json":
        return [f["line"] for f in json.loads(out)["findings"]]
    if fmt == "sarif":
        runs = json.loads(out)["runs"]
        return [r["locations"][0]["physicalLocation"]["region"]["startLine"]
                for r in runs[0]["results"]]
    if fmt == "rdjson":
        return [d["location"]["range"]["start"]["line"] for d in json.loads(out)["diagnostics"]]
    if fmt == "gitlab":
        return [i["location"]["lines"]["begin"] for i in json.loads(out)]
    raise AssertionError(fmt)


@pytest.mark.parametrize("fmt", ["default", "checkpatch", "github", "json", "sarif", "rdjson",
                                 "gitlab"])
def test_every_format_places_it_in_the_hunk(patch: Path, fmt: str) -> None:
    lines = _lines(fmt, _run(patch, fmt))
    assert lines and set(lines) <= _hunk_lines(patch), (fmt, lines)


def test_sarif_keeps_the_site_as_a_related_location(patch: Path) -> None:
    (result,) = json.loads(_run(patch, "sarif"))["runs"][0]["results"]
    related = [r["physicalLocation"]["region"]["startLine"]
               for r in result.get("relatedLocations", [])]
    assert any(n not in _hunk_lines(patch) for n in related)


def test_the_email_reply_comments_under_the_quoted_hunk(patch: Path) -> None:
    body = _run(patch, "email")
    deleted = body.index("> -" + DELETED.rstrip("\n"))
    assert deleted < body.index("VMX201 (error)") < body.index("\n-- \n")
