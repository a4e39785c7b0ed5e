"""Rule documentation cites what a user has: the Intel SDM and the kernel, never project notes."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from vmxlint.cli import main

ROOT = Path(__file__).resolve().parent.parent
RULE_FILES = sorted((ROOT / "rules").glob("VMX*.toml"))
DOC_KEYS = ("summary", "rationale", "limits", "references")
# Files and notes of the project's own development, which an installed vmxlint lacks.
FORBIDDEN = re.compile(r"DESIGN\.md|DESIGN §|research/|hwmodel|\bseed\b|\bissue \d+",
                       re.IGNORECASE)
SDM = re.compile(r"Intel SDM Vol\. 3[A-D] (§\d+(\.\d+)*|App\. [A-C](\.\d+)?) [A-Z][\w-]")
COMMIT = re.compile(r"Linux commits? (([0-9a-f]{12}) )?[('](KVM|kvm|x86)")


def docs(path: Path) -> dict[str, object]:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return {k: data.get(k) for k in DOC_KEYS}


def text_of(path: Path) -> str:
    d = docs(path)
    return "\n".join([str(d["summary"]), str(d["rationale"]), str(d["limits"]),
                      *(d["references"] or [])])


def params():
    for path in RULE_FILES:
        yield pytest.param(path, id=path.name[:6])


@pytest.mark.parametrize("path", list(params()))
def test_rule_text_cites_nothing_a_user_lacks(path):
    assert FORBIDDEN.findall(text_of(path)) == []


@pytest.mark.parametrize("path", RULE_FILES, ids=[p.name[:6] for p in RULE_FILES])
def test_references_name_section_and_title(path):
    refs = docs(path)["references"] or []
    assert refs, "a rule names where its reasoning comes from"
    for ref in refs:
        if "SDM" in ref:
            assert SDM.match(ref), f"SDM reference without section number and title: {ref}"
        if re.match(r"Linux commits? ", ref):
            assert COMMIT.match(ref), f"commit reference without its title: {ref}"


@pytest.mark.parametrize("path", list(params()))
def test_explain_prints_the_rule_and_nothing_a_user_lacks(path, capsys):
    code = path.name[:6]
    assert main(["explain", code]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{code} ")
    for ref in docs(path)["references"] or []:
        assert ref in out
    assert FORBIDDEN.findall(out) == []
    if "Intel SDM" in out:
        assert "look sections up by title" in out
