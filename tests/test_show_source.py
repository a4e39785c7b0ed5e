"""--show-source: each finding's line from the image it counts in, with a caret under it."""
from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import pytest

from vmxlint.cli import main
from vmxlint.findings import Finding, PatchRef, Report
from vmxlint.formats import default

ROOT = Path(__file__).resolve().parent.parent
SHAPE = ROOT / "fixtures" / "trees" / "shape-modern"
NESTED = "arch/x86/kvm/vmx/nested.c"
TSC = "\tvmcs_write64(TSC_OFFSET, vmx->vcpu.arch.tsc_offset);"
SPACE = " "     # a blank context line
SYSENTER = "\tvmcs_write32(GUEST_SYSENTER_CS, vmcs12->guest_sysenter_cs);"

# Two lines added at the top of prepare_vmcs02_rare() shift the post-image by two; the
# TSC_OFFSET write (pre-image line 41) becomes a second GUEST_SYSENTER_CS write.
PATCH = f"""\
From: Dev Eloper <dev@example.org>
Subject: [PATCH] KVM: nVMX: Rewrite GUEST_SYSENTER_CS instead of TSC_OFFSET

---
diff --git a/{NESTED} b/{NESTED}
--- a/{NESTED}
+++ b/{NESTED}
@@ -34,9 +34,11 @@
 static void prepare_vmcs02_rare(struct vcpu_vmx *vmx, struct vmcs12 *vmcs12)
 {{
+\t/* two lines added */
+\t/* above the writes */
 \tvmcs_write16(GUEST_ES_SELECTOR, vmcs12->guest_es_selector);
 \tvmcs_write32(GUEST_ES_LIMIT, vmcs12->guest_es_limit);
 \tvmx_segment_cache_clear(vmx);
{SPACE}
{SYSENTER.replace(chr(9), ' ' + chr(9), 1)}
-{TSC}
+{SYSENTER}
 }}
"""


@pytest.fixture(autouse=True)
def _no_cache(monkeypatch):
    monkeypatch.setenv("VMXLINT_NO_CACHE", "1")
    monkeypatch.delenv("NO_COLOR", raising=False)


@pytest.fixture()
def tree(tmp_path) -> Path:
    dest = tmp_path / "linux"
    shutil.copytree(SHAPE, dest)
    return dest


def run(capsys, *argv: str) -> tuple[int, list[str]]:
    rc = main(list(argv))
    out = capsys.readouterr().out
    return rc, out.splitlines()


def blocks(lines: list[str]) -> dict[str, tuple[str, str]]:
    """Finding line -> (source line, caret line), for output where each finding has both."""
    assert len(lines) % 3 == 0, lines
    return {lines[i]: (lines[i + 1], lines[i + 2]) for i in range(0, len(lines), 3)}


def test_check_shows_post_image_lines_and_pre_image_for_resolved(tree, tmp_path, capsys):
    patch = tmp_path / "p.patch"
    patch.write_text(PATCH)
    rc, lines = run(capsys, "check", "--tree", str(tree), str(patch), "--show-source", "--all")
    assert rc == 1
    shown = blocks(lines)
    (resolved,) = [k for k in shown if "[resolved, pre-image line]" in k]
    assert resolved.startswith(f"{NESTED}:41:") and "TSC_OFFSET" in resolved
    assert shown[resolved] == (TSC, "\t^")          # the pre-image line, not the post-image's
    pre = (tree / NESTED).read_text().split("\n")
    assert pre[40] == TSC
    post = pre[:35] + ["\t/* two lines added */", "\t/* above the writes */"] + pre[35:40] + [
        SYSENTER] + pre[41:]
    for finding, (src, caret) in shown.items():
        if finding != resolved:
            assert src == post[int(finding.split(":")[1]) - 1], finding
            assert caret.strip() == "^"
    news = [k for k in shown if k.startswith(f"{NESTED}:42:") and "VMX101" in k]
    assert news and shown[news[0]][0] == SYSENTER     # post-image line 42 (pre-image 40)


def test_without_the_flag_one_line_per_finding(tree, tmp_path, capsys):
    patch = tmp_path / "p.patch"
    patch.write_text(PATCH)
    rc, lines = run(capsys, "check", "--tree", str(tree), str(patch))
    assert rc == 1 and lines
    assert all(line.startswith(f"{NESTED}:") for line in lines), lines


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=T", "-c", "user.email=t@e.org",
                    *args], check=True, capture_output=True)


def test_git_range_reads_each_commit_and_its_parent(tree, tmp_path, capsys):
    git(tree, "init", "-q")
    git(tree, "add", ".")
    git(tree, "commit", "-q", "-m", "base")
    patch = tmp_path / "p.patch"
    patch.write_text(PATCH)
    git(tree, "apply", str(patch))
    git(tree, "commit", "-q", "-a", "-m", "KVM: nVMX: Rewrite GUEST_SYSENTER_CS")
    rc, lines = run(capsys, "check", "--tree", str(tree), "--git", "HEAD~1..HEAD",
                    "--show-source")
    shown = blocks(lines)
    (resolved,) = [k for k in shown if "[resolved, pre-image line]" in k]
    assert shown[resolved] == (TSC, "\t^")
    assert all(src for src, _ in shown.values())


def test_audit_shows_the_tree_and_escapes_control_characters(tree, capsys):
    nested = tree / NESTED
    text = nested.read_text()
    nested.write_text(text.replace(TSC, TSC + " /* \x1b]0;title\x07 */"))
    rc, lines = run(capsys, "audit", "--tree", str(tree), "--show-source")
    shown = blocks(lines)
    (tsc,) = [k for k in shown if "TSC_OFFSET" in k and "VMX202" in k]
    src, caret = shown[tsc]
    assert src == TSC + " /* \\x1b]0;title\\x07 */" and caret == "\t^"
    assert not any("\x1b" in line or "\x07" in line for line in lines)


# ------------------------------------------------------------------ the formatter alone

def finding(line: int, col: int = 1, status: str = "new", path: str = "f.c") -> Finding:
    return Finding("VMX101", "redundant-write", "warning", "m", path, line, col,
                   status=status, patch=PatchRef("s"))


def render(findings: list[Finding], files: dict[tuple[str, str], str] | None) -> list[str]:
    def source(patch, image, path):
        return files.get((image, path)) if files is not None else None
    out = io.StringIO()
    report = Report(findings, source=source if files is not None else None)
    default.write(report, out, show_source=True)
    return out.getvalue().splitlines()


def test_caret_under_the_column_keeps_tabs():
    files = {("post", "f.c"): "\tx = y;\n\t\tz = w;\n"}
    assert render([finding(1, 6)], files)[1:] == ["\tx = y;", "\t    ^"]
    # A column inside the indentation points at the statement.
    assert render([finding(2, 1)], files)[1:] == ["\t\tz = w;", "\t\t^"]


def test_image_by_status_and_nothing_when_unknown():
    files = {("pre", "f.c"): "old\n", ("post", "f.c"): "new\n"}
    assert render([finding(1, status="resolved")], files)[1] == "old"
    assert render([finding(1, status="existing")], files)[1] == "new"
    assert len(render([finding(5)], files)) == 1            # past the end of the file
    assert len(render([finding(1, path="g.c")], files)) == 1   # file not in the image
    assert len(render([finding(1)], None)) == 1             # the report cannot read sources


def test_long_lines_are_cut():
    files = {("post", "f.c"): "x" * 10_000}
    src = render([finding(1)], files)[1]
    assert len(src) == default.MAX_SOURCE + 3 and src.endswith("...")


def test_source_lookup_stays_inside_the_tree(tmp_path):
    import os

    from vmxlint.api import _lookup
    from vmxlint.tree import Tree

    top = tmp_path / "linux"
    (top / "sub").mkdir(parents=True)
    (top / "sub" / "a.c").write_text("int a;\n")
    (tmp_path / "secret.txt").write_text("secret\n")
    os.symlink(tmp_path / "secret.txt", top / "sub" / "link.c")
    os.mkfifo(top / "sub" / "fifo.c")
    read = _lookup({None: (Tree(top), Tree(top).with_overlay({"sub/new.c": "int b;\n"}))})
    assert read(None, "pre", "sub/a.c") == "int a;\n"
    assert read(None, "post", "sub/new.c") == "int b;\n"
    for bad in ("../secret.txt", str(tmp_path / "secret.txt"), "sub/../../secret.txt",
                "sub/link.c", "sub/fifo.c", "sub", "", "-"):
        assert read(None, "pre", bad) is None, bad
