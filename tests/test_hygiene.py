"""The test suite itself: no test may depend on how fast the machine is."""
from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).parent
# Reading a clock in a test means comparing a duration with a number sooner or later;
# timings belong to benchmarks/, which report ratios measured side by side.
# (Spelled in pieces so that this file does not match itself.)
CLOCK = re.compile(r"\b(perf" r"_counter|process" r"_time|mono" r"tonic)(_ns)?\("
                   r"|\btime\.ti" r"me\(")


def test_no_test_reads_a_clock() -> None:
    offenders = [f"{path.name}:{n}" for path in sorted(TESTS.glob("*.py"))
                 for n, line in enumerate(path.read_text().splitlines(), 1) if CLOCK.search(line)]
    assert not offenders, offenders


# A subprocess timeout is a guard against a hang, never a speed check: generous, always.
TIMEOUT = re.compile(r"\btimeout=(\d+)")
HANG_GUARD = 600
DEADLINE = re.compile(r"\bdeadline=(?!None\b)")


def test_timeouts_only_guard_hangs() -> None:
    short = [f"{path.name}:{n}" for path in sorted(TESTS.glob("*.py"))
             for n, line in enumerate(path.read_text().splitlines(), 1)
             for m in TIMEOUT.finditer(line) if int(m.group(1)) < HANG_GUARD]
    assert not short, short


def test_no_hypothesis_deadline() -> None:
    from hypothesis import settings

    assert settings().deadline is None      # the profile conftest.py loads
    set_one = [f"{path.name}:{n}" for path in sorted(TESTS.glob("*.py"))
               for n, line in enumerate(path.read_text().splitlines(), 1)
               if DEADLINE.search(line)]
    assert not set_one, set_one


def test_the_run_has_a_cache_of_its_own() -> None:
    """No test writes to the user's cache directory (tests/conftest.py names one for the run
    unless the caller did)."""
    import os

    from vmxlint import cache

    named = os.environ.get("VMXLINT_CACHE_DIR")
    assert named and cache.cache_dir() == Path(named)
