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


def test_a_ratio_pairs_the_runs_of_one_round():
    """A budget's ratio is the median of each round's (vmxlint and its peer on the same
    patch, one right after the other), not the ratio of medians taken from different
    rounds; figures of the eleventh session's run 45."""
    import run

    check = run.Timing("check", walls=[0.295, 0.265, 0.266, 0.175, 0.189])
    checkpatch = run.Timing("checkpatch", walls=[0.174, 0.144, 0.126, 0.126, 0.120])
    assert check.wall / checkpatch.wall == pytest.approx(2.10, abs=0.01)
    assert run._paired(check, checkpatch) == pytest.approx(1.70, abs=0.01)
    # Rounds that cannot be paired: the ratio of the medians; a peer that failed: none.
    assert run._paired(check, run.Timing("p", walls=[0.2])) == pytest.approx(0.265 / 0.2)
    failed = run.Timing("p", walls=[0.1] * 5, error="spatch not found")
    assert run._paired(check, failed) != run._paired(check, failed)    # NaN
