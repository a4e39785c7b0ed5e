"""What the analysis could not take from the tree is said once; an input over the size
bound is a VMX006 finding (exit 1), read no further than the bound."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHAPE = ROOT / "fixtures" / "trees" / "shape-4.20"


def _run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, VMXLINT_NO_CACHE="1", PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "vmxlint", *args], input=stdin, env=env,
                          capture_output=True, cwd=ROOT)


def test_fallbacks_are_in_the_summary_once_and_not_on_a_piped_stderr() -> None:
    proc = _run("audit", "--tree", str(SHAPE), "--format", "json")
    notes = json.loads(proc.stdout)["summary"]["notes"]
    assert any("embedded" in n and "vmcs12" in n for n in notes)
    assert len(notes) == len(set(notes))
    assert proc.stderr == b""


def test_input_over_the_bound_is_vmx006() -> None:
    from vmxlint.mail import MAX_INPUT

    proc = _run("check", "--tree", str(SHAPE), "--format", "json", "-",
                stdin=b"x" * (MAX_INPUT + 10))
    assert proc.returncode == 1, proc.stderr
    (finding,) = json.loads(proc.stdout)["findings"]
    assert finding["code"] == "VMX006" and "not analysed" in finding["message"]
