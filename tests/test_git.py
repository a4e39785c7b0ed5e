"""``check --git A..B`` and patches the tree already holds, on scratch git repos of a real tree.

Each repo holds a copy of the files vmxlint reads from Debian's 6.12 tree
(``vmxlint.analysis.inputs()``); the patches are made at test time by editing and
committing them.  Nothing of the kernel is committed to this project.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vmxlint.gitrange import index_lines

ROOT = Path(__file__).resolve().parent.parent
NESTED = "arch/x86/kvm/vmx/nested.c"
IDENT = ["-c", "user.name=Test Dev", "-c", "user.email=dev@example.org",
         "-c", "commit.gpgsign=false", "-c", "init.defaultBranch=master"]
SYSENTER_CS = re.compile(r"^\t+vmcs_write32\(GUEST_SYSENTER_CS, vmcs12->guest_sysenter_cs\);\n",
                         re.M)


def git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(["git", *IDENT, *args], cwd=repo, capture_output=True, text=True,
                          env=env)
    assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def scratch_repo(tree: Path, dest: Path) -> Path:
    """A git repo with the files vmxlint reads from tree, committed once."""
    from vmxlint.analysis import inputs

    for rel in inputs():
        if (tree / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(tree / rel, dest / rel)
    git(dest, "init", "-q")
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "-m", "Import the files vmxlint reads from Debian linux-6.12")
    return dest


def drop_sysenter_cs(text: str) -> str:
    new, n = SYSENTER_CS.subn("", text, count=1)
    assert n == 1
    return new


def add_comment(text: str) -> str:
    at = text.index("static int prepare_vmcs02(struct kvm_vcpu *vcpu")
    return text[:at] + "/* Builds vmcs02 from vmcs12 on every nested entry. */\n" + text[at:]


def commit_edit(repo: Path, edit, subject: str) -> None:
    nested = repo / NESTED
    nested.write_text(edit(nested.read_text(encoding="utf-8")), encoding="utf-8")
    git(repo, "commit", "-q", "-a", "-m", subject, "-m", "Signed-off-by: Test Dev "
        "<dev@example.org>")


def run(repo: Path, env: dict[str, str], *args: str,
        stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vmxlint", *args], cwd=repo, env=env,
                          input=stdin, capture_output=True, timeout=600)


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    import os

    e = {k: v for k, v in os.environ.items() if not k.startswith(("VMXLINT_", "GIT_"))}
    e["PYTHONPATH"] = str(ROOT)
    e["VMXLINT_CACHE_DIR"] = str(tmp_path_factory.mktemp("git-cache"))
    return e


@pytest.fixture()
def repo(tmp_path, kernel_612) -> Path:
    return scratch_repo(kernel_612, tmp_path / "linux")


def findings(proc: subprocess.CompletedProcess) -> list[dict]:
    assert proc.stderr == b"", proc.stderr.decode()
    return json.loads(proc.stdout)["findings"]


# ---------------------------------------------------------------------- index lines

def test_index_lines_name_each_file_and_its_blobs():
    diff = ("diff --git a/x.c b/x.c\nindex 1234567..89abcde 100644\n--- a/x.c\n+++ b/x.c\n"
            "@@ -1 +1 @@\n-a\n+b\n"
            "diff --git a/new.c b/new.c\nnew file mode 100644\nindex 0000000..fedcba9\n"
            "--- /dev/null\n+++ b/new.c\n@@ -0,0 +1 @@\n+c\n"
            "diff --git a/old.c b/old.c\ndeleted file mode 100644\nindex 7654321..0000000\n"
            "--- a/old.c\n+++ /dev/null\n@@ -1 +0,0 @@\n-d\n")
    got = [(e.old, e.new, e.pre, e.post) for e in index_lines(diff)]
    assert got == [("x.c", "x.c", "1234567", "89abcde"), (None, "new.c", "0000000", "fedcba9"),
                   ("old.c", None, "7654321", "0000000")]


def test_index_lines_ignore_hunk_text_that_looks_like_a_header():
    diff = ("diff --git a/x.c b/x.c\nindex 1234567..89abcde\n--- a/x.c\n+++ b/x.c\n"
            "@@ -1,2 +1,2 @@\n-index 1111111..2222222\n+diff --git a/y b/y\n")
    assert [(e.old, e.pre) for e in index_lines(diff)] == [("x.c", "1234567")]


def test_a_diff_without_index_lines_is_applied_to_the_tree_without_asking_git(
        tmp_path, monkeypatch):
    """No pre-image can be named without index lines, so git is not run at all (it was a
    process of its own, 2 ms of a check); a series of which one diff has them is no
    different."""
    from vmxlint import gitrange
    from vmxlint.mail import read_mails
    from vmxlint.tree import Tree

    def no_git(*args, **kwargs):
        raise AssertionError(f"git was run: {args[1:]}")

    monkeypatch.setattr(gitrange, "git", no_git)
    bare = "--- a/x.c\n+++ b/x.c\n@@ -1 +1 @@\n-a\n+b\n"
    named = "diff --git a/y.c b/y.c\nindex 1234567..89abcde 100644\n" + bare.replace("x.c", "y.c")
    tree = Tree(tmp_path)
    for diffs in ([bare], [named, bare]):
        mails = [read_mails(f"Subject: [PATCH {i + 1}/{len(diffs)}] x\n\n---\n{d}".encode(),
                            "t")[0] for i, d in enumerate(diffs)]
        assert all(m.diff for m in mails)
        assert gitrange.base_for(tree, mails) is tree
    with pytest.raises(AssertionError, match="git was run"):
        gitrange.base_for(tree, mails[:1])      # index lines only: git is asked


# ---------------------------------------------------------------------- --git A..B

@pytest.mark.kernel
def test_git_range_reports_a_deleted_write_and_leaves_the_work_tree(repo, env):
    commit_edit(repo, drop_sysenter_cs, "KVM: nVMX: Drop the GUEST_SYSENTER_CS write")
    # A dirty work tree that restores the write: --git reads git objects, never this.
    nested = repo / NESTED
    dirty = nested.read_text(encoding="utf-8") + "/* local edit */\n"
    nested.write_text(dirty, encoding="utf-8")
    proc = run(repo, env, "check", "--git", "HEAD~1..HEAD", "--format", "json")
    assert proc.returncode == 1, proc.stderr.decode()
    new = [(f["code"], f["field"]) for f in findings(proc) if f["status"] == "new"]
    assert ("VMX201", "GUEST_SYSENTER_CS") in new
    assert nested.read_text(encoding="utf-8") == dirty
    assert git(repo, "status", "--porcelain") == f" M {NESTED}\n"


@pytest.mark.kernel
def test_git_range_checks_each_commit_against_its_parent(repo, env):
    commit_edit(repo, add_comment, "KVM: nVMX: Comment prepare_vmcs02()")
    commit_edit(repo, drop_sysenter_cs, "KVM: nVMX: Drop the GUEST_SYSENTER_CS write")
    commit_edit(repo, add_comment, "KVM: nVMX: Comment prepare_vmcs02() again")
    proc = run(repo, env, "check", "--git", "HEAD~3..HEAD", "--format", "json")
    assert proc.returncode == 1, proc.stderr.decode()
    new = [f for f in findings(proc) if f["status"] == "new"]
    assert new, "the deleted write is reported"
    assert {f["patch"]["index"] for f in new} == {"2/3"}
    assert {f["patch"]["subject"] for f in new} == {
        "[PATCH] KVM: nVMX: Drop the GUEST_SYSENTER_CS write"}


@pytest.mark.kernel
def test_git_range_of_harmless_commits_passes(repo, env):
    commit_edit(repo, add_comment, "KVM: nVMX: Comment prepare_vmcs02()")
    proc = run(repo, env, "check", "--git", "HEAD~1..HEAD")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"", b"")
    empty = run(repo, env, "check", "--git", "HEAD..HEAD")
    assert (empty.returncode, empty.stdout, empty.stderr) == (0, b"", b"")


@pytest.mark.kernel
@pytest.mark.parametrize("spec", ["nonsense..HEAD", "-p..HEAD", "HEAD", "HEAD~1..HEAD x"])
def test_git_range_refuses_bad_ranges_in_one_line(repo, env, spec):
    proc = run(repo, env, "check", "--git", spec)
    err = proc.stderr.decode()
    assert proc.returncode == 2 and proc.stdout == b""
    assert len(err.splitlines()) == 1 and err.startswith("vmxlint: ") and "Traceback" not in err


@pytest.mark.kernel
def test_git_range_outside_a_repository_is_refused(kernel_612, env):
    proc = run(kernel_612, env, "check", "--git", "HEAD~1..HEAD")
    assert proc.returncode == 2
    assert b"not a git repository" in proc.stderr


# ---------------------------------------------------------------------- held patches

@pytest.mark.kernel
def test_held_patch_on_stdin_is_checked_against_its_index_blobs(repo, env):
    commit_edit(repo, drop_sysenter_cs, "KVM: nVMX: Drop the GUEST_SYSENTER_CS write")
    patch = subprocess.run(["git", "format-patch", "-1", "--stdout", "HEAD"], cwd=repo,
                           capture_output=True, check=True).stdout
    proc = run(repo, env, "check", "--format", "json", "-", stdin=patch)
    assert proc.returncode == 1, proc.stderr.decode()
    got = findings(proc)
    assert not [f for f in got if f["code"] == "VMX003"]
    assert ("VMX201", "GUEST_SYSENTER_CS") in {(f["code"], f["field"]) for f in got
                                               if f["status"] == "new"}


@pytest.mark.kernel
def test_earlier_patch_of_a_held_series(repo, env):
    """b4 prep --check pipes commit 1 of 2 while the work tree is at commit 2."""
    commit_edit(repo, drop_sysenter_cs, "KVM: nVMX: Drop the GUEST_SYSENTER_CS write")
    commit_edit(repo, add_comment, "KVM: nVMX: Comment prepare_vmcs02()")
    first = subprocess.run(["git", "format-patch", "-1", "--stdout", "HEAD~1"], cwd=repo,
                           capture_output=True, check=True).stdout
    second = subprocess.run(["git", "format-patch", "-1", "--stdout", "HEAD"], cwd=repo,
                            capture_output=True, check=True).stdout
    proc = run(repo, env, "check", "--format", "json", "-", stdin=first)
    assert ("VMX201", "GUEST_SYSENTER_CS") in {(f["code"], f["field"]) for f in findings(proc)
                                               if f["status"] == "new"}
    later = run(repo, env, "check", "-", stdin=second)
    assert (later.returncode, later.stdout, later.stderr) == (0, b"", b"")


@pytest.mark.kernel
def test_patch_the_tree_does_not_hold_applies_to_the_tree(repo, env):
    nested = repo / NESTED
    original = nested.read_text(encoding="utf-8")
    nested.write_text(drop_sysenter_cs(original), encoding="utf-8")
    diff = git(repo, "diff", "--no-color")
    nested.write_text(original, encoding="utf-8")
    mail = ("From: Test Dev <dev@example.org>\nSubject: [PATCH] KVM: nVMX: Drop a write\n\n"
            "Signed-off-by: Test Dev <dev@example.org>\n---\n" + diff)
    proc = run(repo, env, "check", "--format", "json", "-", stdin=mail.encode())
    assert ("VMX201", "GUEST_SYSENTER_CS") in {(f["code"], f["field"]) for f in findings(proc)
                                               if f["status"] == "new"}


@pytest.mark.kernel
def test_staged_uses_the_pre_push_range_pre_commit_sets(repo, env):
    commit_edit(repo, drop_sysenter_cs, "KVM: nVMX: Drop the GUEST_SYSENTER_CS write")
    pushed = dict(env, PRE_COMMIT_FROM_REF="HEAD~1", PRE_COMMIT_TO_REF="HEAD")
    proc = run(repo, pushed, "check", "--staged")
    assert proc.returncode == 1, proc.stderr.decode()
    assert re.search(rb"^arch/x86/kvm/vmx/nested.c:\d+:\d+: VMX201 \[error\] .*GUEST_SYSENTER_CS",
                     proc.stdout, re.M), proc.stdout
    # At the commit stage nothing is staged: nothing to say.
    staged = run(repo, env, "check", "--staged")
    assert (staged.returncode, staged.stdout, staged.stderr) == (0, b"", b"")
