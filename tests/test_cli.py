"""End-to-end command line on the real Debian 6.12 tree: ``python -m vmxlint`` in a subprocess."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest

import vmxlint

ROOT = Path(__file__).resolve().parent.parent
NESTED = "arch/x86/kvm/vmx/nested.c"
PDPTR0_64 = "vmcs_write64(GUEST_PDPTR0,"
WRITE_KEYS = {"kind", "function", "field", "path", "line", "accessor", "guard"}


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory) -> dict[str, str]:
    """This checkout first on the path, and a private vmxlint cache shared by the module."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VMXLINT_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env["VMXLINT_CACHE_DIR"] = str(tmp_path_factory.mktemp("cli-cache"))
    return env


def vmxlint_run(env: dict[str, str], *args: str, cwd: Path | None = None,
                stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vmxlint", *args], cwd=cwd or ROOT, env=env,
                          input=stdin, capture_output=True, timeout=600)


def text(proc: subprocess.CompletedProcess) -> tuple[str, str]:
    return proc.stdout.decode(), proc.stderr.decode()


def wrong_width_patch(tree: Path) -> tuple[str, int]:
    """A git-style patch turning prepare_vmcs02()'s GUEST_PDPTR0 write into vmcs_write32()."""
    import difflib

    old = (tree / NESTED).read_text(encoding="utf-8")
    start = old.index("static int prepare_vmcs02(struct kvm_vcpu *vcpu")
    at = old.index(PDPTR0_64, start)
    new = old[:at] + "vmcs_write32(GUEST_PDPTR0," + old[at + len(PDPTR0_64):]
    diff = "".join(difflib.unified_diff(old.splitlines(True), new.splitlines(True),
                                        f"a/{NESTED}", f"b/{NESTED}"))
    mail = ("From: Test Dev <dev@example.org>\n"
            "Subject: [PATCH] KVM: nVMX: Write GUEST_PDPTR0 with vmcs_write32\n\n"
            "Signed-off-by: Test Dev <dev@example.org>\n---\n"
            f"diff --git a/{NESTED} b/{NESTED}\n{diff}")
    return mail, old.count("\n", 0, at) + 1


@pytest.fixture(scope="module")
def bad_patch(kernel_612, tmp_path_factory) -> tuple[Path, int]:
    mail, line = wrong_width_patch(kernel_612)
    path = tmp_path_factory.mktemp("patches") / "wrong-width.patch"
    path.write_text(mail, encoding="utf-8")
    return path, line


# ---------------------------------------------------------------------- simple commands

def test_version(cli_env):
    proc = vmxlint_run(cli_env, "--version")
    out, err = text(proc)
    assert proc.returncode == 0, err
    assert out.strip() == f"vmxlint {vmxlint.__version__}"
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", vmxlint.__version__)


def test_rules_lists_every_code(cli_env):
    proc = vmxlint_run(cli_env, "rules")
    out, err = text(proc)
    assert proc.returncode == 0, err
    codes = re.findall(r"^(VMX\d{3})\s+(\S+)\s+(error|warning|info)\b", out, re.M)
    by_code = {c: (name, sev) for c, name, sev in codes}
    assert by_code["VMX101"] == ("redundant-write", "warning")
    assert by_code["VMX401"] == ("accessor-width", "error")
    assert {"VMX001", "VMX002", "VMX201", "VMX202", "VMX301", "VMX403"} <= set(by_code)


def test_commands_import_msgspec_without_typing_extensions(cli_env):
    """msgspec then takes get_type_hints from typing (`cli._import_msgspec`), and
    typing_extensions stays importable for whatever else wants it."""
    pytest.importorskip("typing_extensions")
    probe = ("import sys, typing\n"
             "from vmxlint import cli\n"
             "assert cli.main(['rules']) == 0\n"
             "import msgspec._utils as u\n"
             "import typing_extensions\n"
             "print(u._get_type_hints is typing.get_type_hints, typing_extensions.__name__)\n")
    proc = subprocess.run([sys.executable, "-c", probe], env=cli_env, capture_output=True,
                          timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode().splitlines()[-1] == "True typing_extensions"


def test_explain(cli_env):
    proc = vmxlint_run(cli_env, "explain", "VMX101")
    out, err = text(proc)
    assert proc.returncode == 0, err
    assert out.startswith("VMX101 redundant-write (warning)")
    assert len(out.splitlines()) > 3
    proc = vmxlint_run(cli_env, "explain", "VMX999")
    assert proc.returncode == 2
    assert len(text(proc)[1].splitlines()) == 1


# ---------------------------------------------------------------------- graph

@pytest.mark.kernel
def test_graph_json_is_node_link(cli_env, kernel_612):
    proc = vmxlint_run(cli_env, "graph", "--tree", str(kernel_612), "--format", "json")
    out, err = text(proc)
    assert proc.returncode == 0, err
    doc = json.loads(out)
    assert doc["directed"] is True
    g = nx.node_link_graph(doc, edges="links")
    assert isinstance(g, nx.DiGraph) and g.number_of_edges() > 0
    writes = [d for _, d in g.nodes(data=True) if d.get("kind") == "write"]
    assert len(writes) > 50
    missing = [sorted(WRITE_KEYS - set(d)) for d in writes if not WRITE_KEYS <= set(d)]
    assert missing == []
    src = (kernel_612 / NESTED).read_text(encoding="utf-8").splitlines()
    rare = [d for d in writes if d["field"] == "GUEST_PDPTR0"
            and d["function"] == "prepare_vmcs02_rare"]
    assert len(rare) == 1, rare
    (w,) = rare
    assert w["path"] == NESTED and w["accessor"] == "vmcs_write64"
    assert "vmcs_write64(GUEST_PDPTR0" in src[w["line"] - 1]
    assert "enable_ept" in w["guard"]


@pytest.mark.kernel
def test_graph_field_filter(cli_env, kernel_612):
    proc = vmxlint_run(cli_env, "graph", "--tree", str(kernel_612), "--field", "GUEST_PDPTR0")
    out, err = text(proc)
    assert proc.returncode == 0, err
    writes = [n for n in json.loads(out)["nodes"] if n.get("kind") == "write"]
    assert writes and {n["field"] for n in writes} == {"GUEST_PDPTR0"}
    assert {n["function"] for n in writes} >= {"prepare_vmcs02_rare", "prepare_vmcs02"}


@pytest.mark.kernel
def test_graph_dot_renders(cli_env, kernel_612, tmp_path):
    dot = shutil.which("dot")
    if dot is None:
        pytest.fail("Graphviz 'dot' is not installed (apt-get install graphviz)")
    proc = vmxlint_run(cli_env, "graph", "--tree", str(kernel_612), "--format", "dot",
                       "--field", "GUEST_PDPTR0")
    out, err = text(proc)
    assert proc.returncode == 0, err
    assert out.lstrip().startswith(("digraph", "strict digraph"))
    svg = subprocess.run([dot, "-Tsvg"], input=out.encode(), capture_output=True, timeout=600)
    assert svg.returncode == 0, svg.stderr.decode()
    assert b"<svg" in svg.stdout and b"GUEST_PDPTR0" in svg.stdout


# ---------------------------------------------------------------------- check

@pytest.mark.kernel
def test_check_seed_resolves_the_pdptr_findings(cli_env, kernel_612, seed_path):
    proc = vmxlint_run(cli_env, "check", "--tree", str(kernel_612), "--format", "json",
                       str(seed_path))
    out, err = text(proc)
    assert proc.returncode == 0, err
    doc = json.loads(out)
    assert doc["version"] == 1
    resolved = {f["field"] for f in doc["findings"]
                if f["code"] == "VMX101" and f["status"] == "resolved"}
    assert resolved == {f"GUEST_PDPTR{i}" for i in range(4)}
    for f in doc["findings"]:
        if f["code"] == "VMX101":
            assert f["function"] == "prepare_vmcs02_rare"
            assert f["patch"]["index"] == "2/5"
    new = [(f["code"], f["severity"]) for f in doc["findings"] if f["status"] == "new"]
    # The seed comes from a web archive that lost its leading whitespace, so the
    # repair notice (VMX002, info) is the one new finding it may carry.
    assert [c for c, _ in new if c != "VMX002"] == []
    assert all(sev == "info" for _, sev in new)


@pytest.mark.kernel
def test_check_seed_on_stdin_from_the_tree(cli_env, kernel_612, seed_path):
    proc = vmxlint_run(cli_env, "check", "--format", "checkpatch", "-", cwd=kernel_612,
                       stdin=seed_path.read_bytes())
    out, err = text(proc)
    assert (proc.returncode, out, err) == (0, "", "")


@pytest.mark.kernel
def test_check_wrong_width(cli_env, kernel_612, bad_patch):
    path, line = bad_patch
    proc = vmxlint_run(cli_env, "check", "--tree", str(kernel_612), "--format", "checkpatch",
                       str(path))
    out, err = text(proc)
    assert proc.returncode == 1, err
    assert err == ""
    assert re.fullmatch(rf"{re.escape(NESTED)}:{line}: ERROR:VMX401: .*GUEST_PDPTR0.*\n", out)


# ---------------------------------------------------------------------- bad input

def _seed_or_junk(seed: Path | None, tmp: Path) -> Path:
    if seed is not None and seed.exists():
        return seed
    p = tmp / "x.patch"
    p.write_text(f"--- a/{NESTED}\n+++ b/{NESTED}\n@@ -1 +1 @@\n-a\n+b\n", encoding="utf-8")
    return p


BAD_INPUTS = ["binary", "empty", "no-diff", "nonexistent", "tree-nonexistent",
              "tree-without-nested", "select-garbage", "unknown-subcommand",
              "unknown-option", "no-command"]


@pytest.mark.kernel
@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_exits_2_with_one_line(case, cli_env, kernel_612, tmp_path):
    from conftest import SEED

    tree = str(kernel_612)
    seed = str(_seed_or_junk(SEED, tmp_path))
    junk = tmp_path / "junk.bin"
    junk.write_bytes(bytes(range(256)) * 8 + os.urandom(512))
    empty = tmp_path / "empty.patch"
    empty.write_bytes(b"")
    nodiff = tmp_path / "nodiff.eml"
    nodiff.write_text("From: a@example.org\nSubject: [PATCH] hello\n\nNo diff here.\n",
                      encoding="utf-8")
    (tmp_path / "notree" / "arch" / "x86").mkdir(parents=True)
    args = {
        "binary": ["check", "--tree", tree, str(junk)],
        "empty": ["check", "--tree", tree, str(empty)],
        "no-diff": ["check", "--tree", tree, str(nodiff)],
        "nonexistent": ["check", "--tree", tree, str(tmp_path / "missing.patch")],
        "tree-nonexistent": ["check", "--tree", "/nonexistent", seed],
        "tree-without-nested": ["check", "--tree", str(tmp_path / "notree"), seed],
        "select-garbage": ["check", "--tree", tree, "--select", "garbage!!", seed],
        "unknown-subcommand": ["frobnicate"],
        "unknown-option": ["check", "--no-such-option", seed],
        "no-command": [],
    }[case]
    proc = vmxlint_run(cli_env, *args, cwd=tmp_path)
    out, err = text(proc)
    assert proc.returncode == 2, (out, err)
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    assert err.startswith("vmxlint: ")
    assert out == ""


# ---------------------------------------------------------------------- report options

@pytest.mark.kernel
def test_output_file(cli_env, kernel_612, bad_patch, tmp_path):
    path, line = bad_patch
    dest = tmp_path / "report.txt"
    proc = vmxlint_run(cli_env, "check", "--tree", str(kernel_612), "--output-file", str(dest),
                       str(path))
    out, err = text(proc)
    assert (proc.returncode, out, err) == (1, "", "")
    lines = dest.read_text(encoding="utf-8").splitlines()
    assert any(re.match(rf"{re.escape(NESTED)}:{line}:\d+: VMX401 ", ln) for ln in lines), lines


@pytest.mark.kernel
def test_count(cli_env, kernel_612, bad_patch):
    path, _ = bad_patch
    proc = vmxlint_run(cli_env, "check", "--tree", str(kernel_612), "--count", str(path))
    out, err = text(proc)
    assert proc.returncode == 1, err
    *findings, last = out.splitlines()
    assert findings and last.strip().isdigit()
    assert int(last) == len(findings)
    assert any(" VMX401 " in ln for ln in findings)


@pytest.mark.kernel
def test_exit_zero(cli_env, kernel_612, bad_patch):
    path, _ = bad_patch
    plain = vmxlint_run(cli_env, "check", "--tree", str(kernel_612), str(path))
    zero = vmxlint_run(cli_env, "check", "--tree", str(kernel_612), "--exit-zero", str(path))
    assert plain.returncode == 1
    assert zero.returncode == 0, text(zero)[1]
    assert zero.stdout == plain.stdout and b"VMX401" in zero.stdout


@pytest.mark.kernel
def test_select_and_ignore(cli_env, kernel_612, bad_patch):
    path, _ = bad_patch
    ignored = vmxlint_run(cli_env, "check", "--tree", str(kernel_612), "--ignore", "VMX4",
                          str(path))
    assert b"VMX401" not in ignored.stdout
    assert ignored.returncode == 0, text(ignored)
    selected = vmxlint_run(cli_env, "check", "--tree", str(kernel_612), "--select", "VMX401",
                           str(path))
    assert selected.returncode == 1
    codes = set(re.findall(rb" (VMX\d{3}) ", selected.stdout))
    assert codes == {b"VMX401"}
