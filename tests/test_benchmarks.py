"""The benchmarks' generated patches are what their docstring promises (benchmarks/).

They must change code that vmxlint can read: a generated edit that does not parse (a
statement put between an unbraced ``if`` body and its ``else``) made vmxlint say the
function's writes are unknown for the rest of the series, and timed that instead.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from vmxlint.mail import read_mails
from vmxlint.series import check
from vmxlint.tree import NESTED_C, Tree

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import patches  # noqa: E402 - benchmarks/ is not a package


@pytest.mark.kernel
def test_generated_patches_parse_and_change_code(kernel_tree: Path):
    text = (kernel_tree / NESTED_C).read_text(encoding="utf-8", errors="surrogateescape")
    tree = Tree.open(kernel_tree)
    for what, mails in (("series", patches.series(text, 40)),
                        ("singles", patches.singles(text, 12))):
        for mbox in (["".join(mails)] if what == "series" else mails):
            series = read_mails(mbox.encode(), what)
            result = check(series, tree)
            unread = [f"{f.function}: {f.message}" for f in result.findings
                      if f.code in ("VMX004", "VMX006")]
            assert not unread, (what, unread)
            assert result.usable == len(series)
