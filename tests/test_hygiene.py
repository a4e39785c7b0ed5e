"""The test suite itself: no test may depend on how fast the machine is."""
from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).parent
# Reading a clock in a test means comparing a duration with a number sooner or later;
# timings belong to benchmarks/, which report ratios measured side by side.
CLOCK = re.compile(r"\b(perf_counter|process_time|monotonic)(_ns)?\(|\btime\.time\(")


def test_no_test_reads_a_clock() -> None:
    offenders = [f"{path.name}:{n}" for path in sorted(TESTS.glob("*.py")) if path != Path(__file__)
                 for n, line in enumerate(path.read_text().splitlines(), 1) if CLOCK.search(line)]
    assert not offenders, offenders
