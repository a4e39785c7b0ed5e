"""The integrations of docs/, with the real clients where they run here (b4, pre-commit, git).

Commands are read from the docs pages themselves, so a page that drifts from the code
fails here.  Repositories are scratch copies of the files vmxlint reads from Debian's
6.12 tree; every patch is made at test time.
"""
from __future__ import annotations

import gzip
import json
import os
import pty
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from test_clients import client_env, project_hook_config
from test_git import add_comment, commit_edit, drop_sysenter_cs, git, scratch_repo

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
NESTED = "arch/x86/kvm/vmx/nested.c"
FLAKE8 = re.compile(r"^(?P<path>.+?):(?P<row>\d+):(?P<col>\d+): (?P<code>[A-Z]+\d+) (?P<text>.*)$")


def fenced(page: str) -> list[str]:
    """The lines of a docs page's fenced code blocks."""
    text = (DOCS / page).read_text(encoding="utf-8")
    return [ln for block in re.findall(r"^```\w*\n(.*?)^```", text, re.S | re.M)
            for ln in block.splitlines()]


def vmxlint_commands(page: str) -> list[list[str]]:
    """Each ``vmxlint ...`` invocation in a page's code blocks, as argv after ``vmxlint``."""
    out = []
    for line in fenced(page):
        m = re.search(r"(?:^|\s|- |\")vmxlint (check|audit)\b(.*)", line)
        if m:
            cmd = (m.group(1) + m.group(2)).split("|")[0].split(">")[0].strip()
            if cmd.count('"') % 2:          # inside a quoted b4 command: drop its end
                cmd = cmd.rstrip('"')
            out.append(shlex.split(cmd))
    return out


def b4_config_lines(prefix: str) -> list[list[str]]:
    """The ``git config --add b4.<prefix>...`` lines of docs/b4.md that name vmxlint or a
    b4 built-in (checkpatch.pl is not in a scratch repo)."""
    lines = [ln for ln in fenced("b4.md") if ln.startswith(f"git config --add b4.{prefix}")]
    return [shlex.split(ln)[1:] for ln in lines if "checkpatch.pl" not in ln]


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("integrations-cache")


@pytest.fixture()
def repo_env(tmp_path, kernel_612, cache) -> tuple[Path, dict[str, str]]:
    env = client_env(tmp_path, cache)
    repo = scratch_repo(kernel_612, tmp_path / "linux")
    return repo, env


def vmxlint(env, *args: str, cwd: Path, stdin: bytes | None = None):
    return subprocess.run(["vmxlint", *args], cwd=cwd, env=env, input=stdin,
                          capture_output=True, timeout=600)


# ---------------------------------------------------------------------- the pages

def test_every_integration_has_a_page_with_commands():
    from vmxlint.cli import build_parser

    pages = ["b4.md", "pre-commit.md", "github-code-scanning.md", "reviewdog.md",
             "gitlab-code-quality.md", "patchwork.md", "suppression.md"]
    parser = build_parser()
    for page in pages:
        commands = vmxlint_commands(page)
        assert commands, page
        for argv in commands:
            parser.parse_args(argv)


def test_readme_style_b4_lines_use_add():
    for line in fenced("b4.md"):
        if line.startswith("git config"):
            assert line.startswith("git config --add "), line


# ---------------------------------------------------------------------- b4

@pytest.mark.clients
@pytest.mark.kernel
def test_b4_prep_check_shows_the_missing_write(repo_env):
    repo, env = repo_env
    # b4 looks for its cover commit with --since=1.year: keep git's own dates.
    env = {k: v for k, v in env.items() if k not in ("GIT_AUTHOR_DATE", "GIT_COMMITTER_DATE")}
    for argv in b4_config_lines("prep-perpatch-check-cmd"):
        git(repo, *argv, env=env)
    git(repo, "config", "user.name", "Test Dev", env=env)
    git(repo, "config", "user.email", "dev@example.org", env=env)
    proc = subprocess.run(["b4", "prep", "-n", "drop-sysenter", "-f", "master"], cwd=repo,
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    commit_edit(repo, drop_sysenter_cs, "KVM: nVMX: Drop the GUEST_SYSENTER_CS write")
    proc = subprocess.run(["b4", "prep", "--check", "--no-cache"], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert re.search(r"vmxlint: arch/x86/kvm/vmx/nested.c:\d+: ERROR:VMX201: .*GUEST_SYSENTER_CS",
                     out), out
    assert "does not apply" not in out and "Error: 1" in out, out


@pytest.mark.clients
@pytest.mark.kernel
def test_b4_review_checks_patch_and_cover_letter(repo_env, monkeypatch):
    from email import message_from_bytes
    from email.policy import default

    from b4.review.checks import run_perpatch_checks, run_series_checks

    repo, env = repo_env
    monkeypatch.setenv("PATH", env["PATH"])
    monkeypatch.setenv("VMXLINT_CACHE_DIR", env["VMXLINT_CACHE_DIR"])
    perpatch = [argv[-1] for argv in b4_config_lines("review-perpatch-check-cmd")]
    series = [argv[-1] for argv in b4_config_lines("review-series-check-cmd")]
    assert "vmxlint check --format b4-json -" in perpatch and series
    commit_edit(repo, drop_sysenter_cs, "KVM: nVMX: Drop the GUEST_SYSENTER_CS write")
    raw = subprocess.run(["git", "format-patch", "-1", "--stdout", "HEAD"], cwd=repo,
                         capture_output=True, check=True).stdout
    patch = message_from_bytes(raw.split(b"\n", 1)[1], policy=default)
    cmds = [c for c in perpatch if not c.startswith("_builtin")]
    results = run_perpatch_checks([("p1@example.org", patch)], cmds, str(repo))["p1@example.org"]
    (result,) = results
    assert result["tool"] == "vmxlint" and result["status"] == "fail", result
    assert "VMX201" in result["details"] and "GUEST_SYSENTER_CS" in result["details"]
    cover = message_from_bytes(
        b"From: Test Dev <dev@example.org>\nSubject: [PATCH 0/2] KVM: nVMX: a series\n"
        b"Message-ID: <cover@example.org>\n\nThe cover letter.\n", policy=default)
    assert run_series_checks(("cover@example.org", cover), series, str(repo)) == []


# ---------------------------------------------------------------------- pre-commit

def pre_commit(repo: Path, env, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["pre-commit", *args, "--color", "never"], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=900)


@pytest.mark.clients
@pytest.mark.kernel
def test_pre_commit_pre_push_stage_blocks_a_missing_write(repo_env, tmp_path):
    repo, env = repo_env
    (repo / ".pre-commit-config.yaml").write_text(project_hook_config(tmp_path, env),
                                                  encoding="utf-8")
    git(repo, "add", ".pre-commit-config.yaml", env=env)
    git(repo, "commit", "-q", "-m", "Add the pre-commit config", env=env)
    commit_edit(repo, add_comment, "KVM: nVMX: Comment prepare_vmcs02()")
    good = pre_commit(repo, env, "run", "--hook-stage", "pre-push", "--from-ref", "HEAD~1",
                      "--to-ref", "HEAD")
    assert good.returncode == 0 and "Passed" in good.stdout, good.stdout + good.stderr
    commit_edit(repo, drop_sysenter_cs, "KVM: nVMX: Drop the GUEST_SYSENTER_CS write")
    bad = pre_commit(repo, env, "run", "--hook-stage", "pre-push", "--from-ref", "HEAD~1",
                     "--to-ref", "HEAD")
    out = bad.stdout + bad.stderr
    assert bad.returncode == 1 and "Failed" in out, out
    assert re.search(r"nested.c:\d+:\d+: VMX201 \[error\] .*GUEST_SYSENTER_CS", out), out
    # The same through git push and the installed hook: the push is refused.
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote), env=env)
    inst = pre_commit(repo, env, "install", "--hook-type", "pre-commit", "--hook-type",
                      "pre-push")
    assert inst.returncode == 0, inst.stdout + inst.stderr
    git(repo, "push", "-q", str(remote), "HEAD~1:refs/heads/master", env=env)
    push = subprocess.run(["git", "push", str(remote), "HEAD:refs/heads/master"], cwd=repo,
                          env=env, capture_output=True, text=True, timeout=900)
    assert push.returncode != 0 and "VMX201" in push.stdout + push.stderr, push.stderr
    # The checks read git objects: nothing in the work tree changed.
    assert git(repo, "status", "--porcelain", env=env) == ""


# ---------------------------------------------------------------------- CI formats

@pytest.mark.kernel
def test_ci_commands_of_the_docs_on_a_branch(repo_env):
    from test_formats import sarif_schema
    import jsonschema

    repo, env = repo_env
    commit_edit(repo, drop_sysenter_cs, "KVM: nVMX: Drop the GUEST_SYSENTER_CS write")
    env = dict(env, BASE=git(repo, "rev-parse", "HEAD~1", env=env).strip())
    seen = set()
    for page in ("github-code-scanning.md", "reviewdog.md", "pre-commit.md"):
        for argv in vmxlint_commands(page):
            argv = [a.replace("$BASE", env["BASE"]).replace(
                "${{ github.event.pull_request.base.sha }}", env["BASE"]).replace(
                "${{ github.event.pull_request.head.sha }}", "HEAD").replace(
                "origin/master", env["BASE"]) for a in argv]
            argv = [a for a in argv if a not in ("--output-file", "vmxlint.sarif")]
            proc = vmxlint(env, *argv, cwd=repo)
            assert proc.returncode in (0, 1) and proc.stderr == b"", proc.stderr
            fmt = argv[argv.index("--format") + 1] if "--format" in argv else "default"
            seen.add(fmt)
            out = proc.stdout.decode()
            if fmt == "sarif":
                log = json.loads(out)
                assert not list(jsonschema.Draft7Validator(sarif_schema()).iter_errors(log))
                assert any(r["ruleId"] == "VMX201" for r in log["runs"][0]["results"])
            elif fmt == "rdjson":
                diags = json.loads(out)["diagnostics"]
                assert any(d["code"]["value"] == "VMX201" for d in diags)
            elif fmt == "github":
                assert re.search(r"^::error file=arch/x86/kvm/vmx/nested.c,line=\d+", out, re.M)
            else:
                lines = out.splitlines()
                assert lines and all(FLAKE8.match(ln) for ln in lines), lines
    assert seen >= {"sarif", "rdjson", "github", "default"}


@pytest.mark.kernel
def test_patchwork_lines_from_a_gzipped_thread(repo_env, tmp_path):
    repo, env = repo_env
    commit_edit(repo, drop_sysenter_cs, "KVM: nVMX: Drop the GUEST_SYSENTER_CS write")
    mbox = subprocess.run(["git", "format-patch", "-1", "--stdout", "HEAD~1..HEAD"],
                          cwd=repo, capture_output=True, check=True).stdout
    thread = tmp_path / "t.mbox.gz"
    thread.write_bytes(gzip.compress(mbox))
    (argv,) = vmxlint_commands("patchwork.md")
    argv = [str(thread) if a == "patch.mbox" else a for a in argv]
    # The tree does not hold the patch: check it against the parent commit's files.
    git(repo, "checkout", "-q", "HEAD~1", env=env)
    proc = vmxlint(env, *argv, cwd=repo)
    assert proc.returncode == 0 and proc.stderr == b"", proc.stderr
    (line,) = proc.stdout.decode().splitlines()
    check = json.loads(line)
    assert check["state"] == "fail" and check["context"] == "vmxlint"
    assert re.fullmatch(r"[-a-zA-Z0-9_]+", check["context"])
    assert len(check["description"]) <= 255 and "VMX201" in check["description"]


# ---------------------------------------------------------------------- terminal output

@pytest.mark.kernel
def test_quiet_colour_and_no_color(repo_env):
    repo, env = repo_env
    commit_edit(repo, drop_sysenter_cs, "KVM: nVMX: Drop the GUEST_SYSENTER_CS write")
    quiet = vmxlint(env, "check", "--git", "HEAD~1..HEAD", "-q", cwd=repo)
    assert quiet.returncode == 1
    assert re.fullmatch(rb"(arch/x86/kvm/vmx/nested\.c:\d+\n)+", quiet.stdout), quiet.stdout
    forced = vmxlint(env, "check", "--git", "HEAD~1..HEAD", "--color", "always", cwd=repo)
    assert b"\x1b[" in forced.stdout
    plain = vmxlint(env, "check", "--git", "HEAD~1..HEAD", cwd=repo)
    assert b"\x1b" not in plain.stdout and FLAKE8.match(plain.stdout.decode().splitlines()[0])
    assert b" VMX201 [error] " in plain.stdout
    for no_color, coloured in (("", True), ("1", False)):
        tty_env = {k: v for k, v in env.items() if k != "NO_COLOR"}
        if no_color:
            tty_env["NO_COLOR"] = no_color
        master, slave = pty.openpty()
        try:
            proc = subprocess.run(["vmxlint", "check", "--git", "HEAD~1..HEAD"], cwd=repo,
                                  env=tty_env, stdout=slave, stderr=subprocess.PIPE,
                                  timeout=600)
            os.close(slave)
            data = b""
            while True:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                data += chunk
        finally:
            os.close(master)
        assert proc.returncode == 1 and b"VMX201" in data, proc.stderr
        assert (b"\x1b[" in data) == coloured, data


@pytest.mark.kernel
def test_graph_refuses_an_unknown_field(repo_env):
    repo, env = repo_env
    proc = vmxlint(env, "graph", "--field", "GUEST_PDPTR", cwd=repo)
    err = proc.stderr.decode()
    assert proc.returncode == 2 and proc.stdout == b"" and len(err.splitlines()) == 1
    assert "GUEST_PDPTR" in err and "did you mean" in err


def test_damaged_gzip_is_one_line(tmp_path, cache):
    env = client_env(tmp_path, cache)
    bad = tmp_path / "t.mbox.gz"
    bad.write_bytes(gzip.compress(b"From x\n")[:12])
    proc = subprocess.run([sys.executable, "-m", "vmxlint", "check", str(bad)], cwd=tmp_path,
                          env=dict(env, PYTHONPATH=str(ROOT)), capture_output=True, timeout=600)
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1
