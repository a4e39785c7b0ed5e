"""The command line against a hostile cache, tree config, output path, terminal and pipe (§5, §8).

Every run is ``python -m vmxlint`` in a subprocess on a copy of a synthetic fixture tree.
"""
from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "fixtures" / "rules" / "VMX401-accessor-width"
NESTED = "arch/x86/kvm/vmx/nested.c"
MACHINE = ("json", "sarif", "rdjson", "b4-json", "patchwork", "github", "checkpatch")
MARKER = Path(tempfile.gettempdir()) / f"vmxlint-cli-pwned-{os.getpid()}"


@pytest.fixture
def tree(tmp_path) -> Path:
    """A private copy of a small synthetic tree whose audit has error findings."""
    t = tmp_path / "tree"
    shutil.copytree(FIXTURE, t)
    return t


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("VMXLINT_")}
    e["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), e.get("PYTHONPATH")) if p)
    e["VMXLINT_CACHE_DIR"] = str(tmp_path / "cache")
    return e


def run(env: dict[str, str], *args: str, cwd: Path | None = None,
        **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vmxlint", *args], cwd=cwd or ROOT, env=env,
                          capture_output=True, timeout=600, **kw)


def uncached(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return run({**env, "VMXLINT_NO_CACHE": "1"}, *args)


def cache_files(env: dict[str, str]) -> list[Path]:
    d = Path(env["VMXLINT_CACHE_DIR"])
    return [p for p in d.rglob("*") if p.is_file() and not p.is_symlink()]


# ---------------------------------------------------------------------- the cache

class _Payload:
    def __reduce__(self):
        return (os.mkdir, (str(MARKER),))


@pytest.mark.parametrize("plant", ["pickle", "random", "erroR", "fifo"])
def test_hostile_cache_entry_gives_uncached_results(plant, env, tree):
    args = ("audit", "--tree", str(tree), "--format", "json")
    want = uncached(env, *args)
    assert want.returncode == 1 and b'"error"' in want.stdout
    assert run(env, *args).stdout == want.stdout     # fills the cache
    files = cache_files(env)
    assert files
    for p in files:
        data = p.read_bytes()
        p.unlink()
        if plant == "pickle":
            p.write_bytes(pickle.dumps(_Payload()))
        elif plant == "random":
            p.write_bytes(os.urandom(len(data)))
        elif plant == "erroR":
            p.write_bytes(data.replace(b"error", b"erroR"))
        else:
            os.mkfifo(p)
    try:
        got = run(env, *args)
    finally:
        ran = MARKER.exists()
        if ran:
            MARKER.rmdir()
    assert not ran, "a cache entry ran code"
    assert (got.returncode, got.stdout, got.stderr) == (1, want.stdout, b"")


def test_shared_cache_directory_is_refused_with_one_line(env, tree):
    d = Path(env["VMXLINT_CACHE_DIR"])
    d.mkdir()
    d.chmod(0o777)
    args = ("audit", "--tree", str(tree), "--format", "json")
    got = run(env, *args)
    assert got.returncode == 1 and got.stdout == uncached(env, *args).stdout
    assert got.stderr.decode() == (f"vmxlint: cache directory {d} is not private (mode 0777, "
                                   "writable by group or others); running without cache\n")
    assert list(d.iterdir()) == []


# ---------------------------------------------------------------------- config trust

@pytest.mark.parametrize("conf", ["setup.cfg", "tox.ini", ".vmxlint"])
def test_tree_config_may_not_choose_the_output_file(conf, env, tree):
    nested = tree / NESTED
    before = nested.read_bytes()
    (tree / conf).write_text(f"[vmxlint]\noutput-file = {NESTED}\n", encoding="utf-8")
    got = run(env, "audit", cwd=tree)
    err = got.stderr.decode()
    assert got.returncode == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("vmxlint: ") and "output-file" in err
    assert got.stdout == b""
    assert nested.read_bytes() == before


def test_output_file_inside_the_tree_is_refused(env, tree, tmp_path):
    nested = tree / NESTED
    before = nested.read_bytes()
    (tmp_path / "into-nested").symlink_to(nested)
    (tmp_path / "into-tree").symlink_to(tree)
    for target, cwd in [(str(nested), None), (NESTED, tree), ("report.txt", tree),
                        (str(tmp_path / "into-nested"), None),
                        (str(tmp_path / "into-tree" / "report.txt"), None)]:
        got = run(env, "audit", "--tree", str(tree), "--output-file", target, cwd=cwd)
        err = got.stderr.decode()
        assert got.returncode == 2, (target, err)
        assert len(err.splitlines()) == 1 and "--output-file" in err, err
    assert nested.read_bytes() == before
    assert not (tree / "report.txt").exists()


def test_symlink_in_the_tree_is_refused_and_graph_too(env, tree, tmp_path):
    elsewhere = tmp_path / "elsewhere.txt"
    (tree / "out.txt").symlink_to(elsewhere)
    got = run(env, "audit", "--tree", str(tree), "--output-file", str(tree / "out.txt"))
    assert got.returncode == 2 and not elsewhere.exists(), got.stderr
    got = run(env, "graph", "--tree", str(tree), "--output-file", str(tree / "graph.json"))
    assert got.returncode == 2 and not (tree / "graph.json").exists(), got.stderr


@pytest.mark.parametrize("via_link", [False, True])
def test_output_file_outside_the_tree_is_written(via_link, env, tree, tmp_path):
    dest = tmp_path / "report.txt"
    given = dest
    if via_link:   # a link outside the tree to a file outside it, like /dev/stderr
        given = tmp_path / "link"
        given.symlink_to(dest)
    got = run(env, "audit", "--tree", str(tree), "--output-file", str(given))
    assert (got.returncode, got.stdout, got.stderr) == (1, b"", b"")
    assert "VMX401" in dest.read_text(encoding="utf-8")


# ---------------------------------------------------------------------- terminal escapes

def test_control_characters_in_error_messages_are_escaped(env, tree, tmp_path):
    name = str(tmp_path / "\x1b]0;pwned\x07\x1b[2J\r\x9b.patch")
    got = run(env, "check", "--tree", str(tree), name)
    err = got.stderr.decode()
    assert got.returncode == 2
    assert not any(c in err[:-1] for c in "\x1b\x07\r\x9b\n"), repr(err)
    assert "\\x1b]0;pwned\\x07\\x1b[2J\\x0d\\x9b.patch" in err


def test_escape_text():
    from vmxlint.textsafe import escape_text

    assert escape_text("a\tb") == "a\tb"
    assert escape_text("\x1b[31m\r\n\x00\x7f\x85\u202e") == \
        "\\x1b[31m\\x0d\\x0a\\x00\\x7f\\x85\\u202e"
    assert escape_text("x\ny", keep="\t\n") == "x\ny"
    assert escape_text("nested.c: é ü ✓") == "nested.c: é ü ✓"


# ---------------------------------------------------------------------- pipes and counts

def test_broken_pipe_keeps_the_exit_status(env, tree):
    """``vmxlint audit | head -0``: the reader is gone before the first line."""
    r, w = os.pipe()
    os.close(r)
    try:
        proc = subprocess.run([sys.executable, "-m", "vmxlint", "audit", "--tree", str(tree)],
                              cwd=ROOT, env=env, stdout=w, stderr=subprocess.PIPE, timeout=600)
    finally:
        os.close(w)
    assert proc.returncode == 1
    assert proc.stderr == b"", proc.stderr.decode()


@pytest.mark.parametrize("fmt", MACHINE)
def test_count_and_statistics_never_break_a_machine_format(fmt, env, tree):
    plain = run(env, "audit", "--tree", str(tree), "--format", fmt)
    both = run(env, "audit", "--tree", str(tree), "--format", fmt, "--count", "--statistics")
    assert both.returncode == plain.returncode == 1
    assert both.stdout == plain.stdout
    if fmt not in ("github", "checkpatch", "patchwork"):
        json.loads(both.stdout)
    err = both.stderr.decode().splitlines()
    assert err[-1].strip().isdigit() and any(" VMX401 " in ln for ln in err[:-1])


def test_count_and_statistics_follow_the_default_format_on_stdout(env, tree):
    got = run(env, "audit", "--tree", str(tree), "--count", "--statistics")
    *lines, last = got.stdout.decode().splitlines()
    assert got.returncode == 1 and got.stderr == b""
    findings = [ln for ln in lines if ln.startswith(NESTED)]
    assert int(last) == len(findings) > 0
    assert lines[len(findings):] and all(" VMX" in ln for ln in lines[len(findings):])
