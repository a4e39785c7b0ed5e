"""Suppression: per-function-ignores (config, command line) and audit baselines, on real trees."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vmxlint.findings import Finding
from vmxlint.suppress import (Ignore, SuppressError, parse_ignores, read_baseline,
                              without_ignored, write_baseline)

ROOT = Path(__file__).resolve().parent.parent
NESTED = "arch/x86/kvm/vmx/nested.c"
PDPTRS = {f"GUEST_PDPTR{i}" for i in range(4)}


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("VMXLINT_")}
    e["PYTHONPATH"] = str(ROOT)
    e["VMXLINT_CACHE_DIR"] = str(tmp_path_factory.mktemp("suppress-cache"))
    return e


def copy_tree(tree: Path, dest: Path) -> Path:
    """A plain-directory copy of the files vmxlint reads."""
    from vmxlint.analysis import inputs

    for rel in inputs():
        if (tree / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(tree / rel, dest / rel)
    return dest


def run(env, *args: str, cwd: Path | None = None,
        stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vmxlint", *args], cwd=cwd or ROOT, env=env,
                          input=stdin, capture_output=True, timeout=600)


def audit(env, tree: Path, *args: str) -> tuple[int, list[dict]]:
    proc = run(env, "audit", "--tree", str(tree), "--format", "json", *args)
    assert proc.returncode in (0, 1) and proc.stderr == b"", proc.stderr.decode()
    return proc.returncode, json.loads(proc.stdout)["findings"]


def fields(found: list[dict], code: str | None = None) -> set[str]:
    return {f["field"] for f in found if code is None or f["code"] == code}


def finding(code="VMX201", function="f", field="X", statement="s", occurrence=0, line=1):
    return Finding(code=code, name="n", severity="error", message="m", path=NESTED, line=line,
                   function=function, field=field, statement=statement, occurrence=occurrence)


# ---------------------------------------------------------------------- parsing

def test_parse_ignores_flake8_style():
    text = ("VMX201:nested_get_vmcs12_pages:APIC_ACCESS_ADDR,\n"
            "  VMX1:prepare_vmcs02_rare  \n# a comment line\nVMX3:prepare_*:GUEST_*")
    assert parse_ignores(text) == [
        Ignore("VMX201", "nested_get_vmcs12_pages", "APIC_ACCESS_ADDR"),
        Ignore("VMX1", "prepare_vmcs02_rare"),
        Ignore("VMX3", "prepare_*", "GUEST_*")]


@pytest.mark.parametrize("bad", ["VMX201", "VMX201:", "E501:f", "VMX201:f:X:Y", "VMX2:f;rm:X",
                                 "VMX201:../x"])
def test_parse_ignores_refuses_bad_entries(bad):
    with pytest.raises(SuppressError):
        parse_ignores(bad)


def test_ignores_match_code_prefix_function_and_field():
    found = [finding(field="APIC_ACCESS_ADDR"), finding(field="TPR_THRESHOLD"),
             finding(code="VMX101", field="APIC_ACCESS_ADDR"), finding(function="g")]
    kept = without_ignored(found, parse_ignores("VMX2:f:APIC_ACCESS_ADDR"))
    assert kept == found[1:]
    assert without_ignored(found, parse_ignores("VMX201:f")) == found[2:]


def test_baseline_matches_identity_never_the_line(tmp_path):
    path = tmp_path / "baseline.json"
    assert write_baseline(str(path), [finding(line=10), finding(occurrence=1, line=20)]) == 2
    keys = read_baseline(str(path))
    assert finding(line=999).key in keys and finding(occurrence=1, line=5).key in keys
    assert finding(occurrence=2).key not in keys
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["version"] == 1 and {e["line"] for e in doc["findings"]} == {10, 20}


@pytest.mark.parametrize("content", ["", "[]", '{"version": 2, "findings": []}',
                                     '{"version": 1, "findings": [{"code": 1}]}',
                                     '{"version": 1, "findings": [{"code": "VMX201", '
                                     '"function": null, "field": null, "statement": "", '
                                     '"occurrence": true}]}'])
def test_bad_baselines_are_refused(tmp_path, content):
    path = tmp_path / "b.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(SuppressError):
        read_baseline(str(path))


# ---------------------------------------------------------------------- per-function-ignores

@pytest.mark.kernel
def test_tree_config_per_function_ignores(kernel_tree, env, tmp_path):
    tree = copy_tree(kernel_tree, tmp_path / "linux")
    rc, before = audit(env, tree)
    assert fields(before, "VMX101") == PDPTRS and rc == 1
    (tree / "setup.cfg").write_text(
        "[vmxlint]\nper-function-ignores =\n"
        "    VMX101:prepare_vmcs02_rare:GUEST_PDPTR0, VMX101:prepare_vmcs02_rare:GUEST_PDPTR1\n"
        "    VMX1:prepare_vmcs02_rare:GUEST_PDPTR2\n", encoding="utf-8")
    rc, after = audit(env, tree)
    assert fields(after, "VMX101") == {"GUEST_PDPTR3"} and rc == 1
    assert fields(after, "VMX302") == fields(before, "VMX302")
    # The command line adds to the tree's entries.
    rc, none = audit(env, tree, "--per-function-ignores", "VMX101:prepare_vmcs02_*:GUEST_PDPTR3")
    assert fields(none, "VMX101") == set() and rc == 0


@pytest.mark.kernel
def test_per_function_ignores_in_check_hides_only_that_function(kernel_612, env, tmp_path):
    tree = copy_tree(kernel_612, tmp_path / "linux")
    old = (tree / NESTED).read_text(encoding="utf-8")
    new = re.sub(r"^\t+vmcs_write32\(GUEST_SYSENTER_CS, vmcs12->guest_sysenter_cs\);\n", "",
                 old, count=1, flags=re.M)
    import difflib
    diff = "".join(difflib.unified_diff(old.splitlines(True), new.splitlines(True),
                                        f"a/{NESTED}", f"b/{NESTED}"))
    mail = ("From: Test Dev <dev@example.org>\nSubject: [PATCH] KVM: nVMX: Drop a write\n\n---\n"
            f"diff --git a/{NESTED} b/{NESTED}\n{diff}").encode()
    shown = run(env, "check", "--tree", str(tree), "-", stdin=mail)
    assert shown.returncode == 1 and b"VMX201 [error]" in shown.stdout, shown.stderr
    function = "nested_vmx_enter_non_root_mode"
    other = run(env, "check", "--tree", str(tree), "--per-function-ignores",
                "VMX201:prepare_vmcs02:GUEST_SYSENTER_CS", "-", stdin=mail)
    assert other.returncode == 1 and b"VMX201" in other.stdout
    (tree / ".vmxlint").write_text(f"[vmxlint]\nper-function-ignores = "
                                   f"VMX201:{function}:GUEST_SYSENTER_CS\n", encoding="utf-8")
    hidden = run(env, "check", "--tree", str(tree), "-", stdin=mail)
    assert (hidden.returncode, hidden.stdout, hidden.stderr) == (0, b"", b"")


@pytest.mark.kernel
@pytest.mark.parametrize("value", ["VMX201", "W605:f", "VMX201:a b:X"])
def test_bad_per_function_ignores_exit_2(kernel_612, env, tmp_path, value):
    tree = copy_tree(kernel_612, tmp_path / "linux")
    (tree / "tox.ini").write_text(f"[vmxlint]\nper-function-ignores = {value}\n",
                                  encoding="utf-8")
    proc = run(env, "audit", "--tree", str(tree))
    err = proc.stderr.decode()
    assert proc.returncode == 2 and len(err.splitlines()) == 1 and "per-function-ignores" in err


# ---------------------------------------------------------------------- baselines

@pytest.mark.kernel
def test_baseline_hides_recorded_findings_and_shows_new_ones(kernel_tree, env, tmp_path):
    tree = copy_tree(kernel_tree, tmp_path / "linux")
    base = tmp_path / "vmxlint-baseline.json"
    proc = run(env, "audit", "--tree", str(tree), "--write-baseline", str(base))
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"", b"")
    recorded = json.loads(base.read_text(encoding="utf-8"))["findings"]
    assert {e["field"] for e in recorded if e["code"] == "VMX101"} == PDPTRS
    rc, left = audit(env, tree, "--baseline", str(base))
    assert (rc, left) == (0, [])
    # Lines move (a comment block above everything): identity, not line, still matches.
    nested = tree / NESTED
    text = nested.read_text(encoding="utf-8")
    text = "/*\n * moved\n * down\n */\n" + text
    # A new problem: GUEST_FS_BASE written from the wrong vmcs12 member.
    wrong = text.replace("vmcs_writel(GUEST_FS_BASE, vmcs12->guest_fs_base);",
                         "vmcs_writel(GUEST_FS_BASE, vmcs12->guest_gs_base);")
    assert wrong != text
    nested.write_text(wrong, encoding="utf-8")
    rc, left = audit(env, tree, "--baseline", str(base))
    assert [(f["code"], f["field"]) for f in left] == [("VMX203", "GUEST_FS_BASE")]
    assert rc == 1


@pytest.mark.kernel
def test_write_baseline_never_into_the_tree(kernel_612, env, tmp_path):
    tree = copy_tree(kernel_612, tmp_path / "linux")
    link = tmp_path / "link"
    link.symlink_to(tree)
    for target in (tree / "baseline.json", link / "baseline.json"):
        proc = run(env, "audit", "--tree", str(tree), "--write-baseline", str(target))
        assert proc.returncode == 2 and b"kernel tree" in proc.stderr
        assert not target.exists()


@pytest.mark.kernel
def test_unreadable_baseline_exit_2(kernel_612, env, tmp_path):
    missing = tmp_path / "nope.json"
    proc = run(env, "audit", "--tree", str(kernel_612), "--baseline", str(missing))
    err = proc.stderr.decode()
    assert proc.returncode == 2 and len(err.splitlines()) == 1 and "nope.json" in err
