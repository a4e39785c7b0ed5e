"""The layout's one-way data flow (DESIGN section 9), checked on the source."""
from __future__ import annotations

import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "vmxlint"
# What reading a diff or a mail looks like in Python source.
DIFF_OR_MAIL = re.compile(
    r"""re\.compile\(r?["']\^?(@@|diff --git|---|\\\+\\\+\\\+)"""
    r"""|startswith\(\(?["'](@@|diff |--- |\+\+\+ )"""
    r"|message_from_(string|bytes)|import unidiff")


def _sources(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(PACKAGE)): p.read_text(encoding="utf-8")
            for p in sorted(folder.rglob("*.py"))}


def test_no_format_parses_mail_or_diff_text() -> None:
    offenders = [name for name, text in _sources(PACKAGE / "formats").items()
                 if DIFF_OR_MAIL.search(text)]
    assert offenders == []


def test_one_diff_reader() -> None:
    """Only the input modules read diffs (patch.py) and split mails (mail.py)."""
    readers = {name for name, text in _sources(PACKAGE).items() if DIFF_OR_MAIL.search(text)}
    assert readers <= {"patch.py", "mail.py"}, readers


def test_the_c_front_end_knows_no_vmx() -> None:
    vmx = re.compile(r"vmcs|vmx(?!lint)|nested_", re.I)
    offenders = [name for name, text in _sources(PACKAGE / "cfront").items()
                 if vmx.search(re.sub(r'""".*?"""|#[^\n]*', "", text, flags=re.S))]
    assert offenders == []


def test_one_exception_root_for_user_facing_errors() -> None:
    from vmxlint.cli import UsageError
    from vmxlint.config import ConfigError
    from vmxlint.errors import VmxlintError, describe
    from vmxlint.gitrange import GitError
    from vmxlint.mail import MailError
    from vmxlint.model import ModelError
    from vmxlint.suppress import SuppressError
    from vmxlint.tree import TreeError

    for cls in (UsageError, ConfigError, GitError, MailError, SuppressError, TreeError):
        assert issubclass(cls, VmxlintError), cls
        assert describe(cls("a\nb")) == "a b"
    assert issubclass(ModelError, VmxlintError)
    assert describe(KeyError("x")).startswith("internal error")


def test_the_cli_calls_the_pipeline_only() -> None:
    """Arguments become options; reading input, analysing and git belong to vmxlint.api."""
    text = (PACKAGE / "cli.py").read_text(encoding="utf-8")
    pipeline = re.compile(r"from vmxlint\.(mail|tree|dataflow|model|analysis|patch|gitrange)\b"
                          r"|import subprocess")
    assert pipeline.findall(text) == []


def test_no_module_binds_a_top_level_name_twice() -> None:
    """A second module-level binding of a name silently replaces the first for every
    function of the module (patch.py once held two ``_DIFF_GIT`` patterns, and its
    lenient reader got the other reader's strict one)."""
    import ast

    twice = []
    for name, text in _sources(PACKAGE).items():
        seen: dict[str, int] = {}
        for node in ast.parse(text).body:
            if isinstance(node, ast.Assign):
                bound = [t.id for t in node.targets if isinstance(t, ast.Name)]
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                bound = [node.target.id] if node.value is not None else []
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                bound = [node.name]
            else:
                bound = []
            for b in bound:
                if b in seen:
                    twice.append(f"{name}:{node.lineno}: {b} (first at {seen[b]})")
                seen.setdefault(b, node.lineno)
    assert twice == []
