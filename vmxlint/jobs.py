"""The analyses a series needs, one image after another or spread over processes (-j N).

Each patch that touches the analysed files needs its pre- and post-image analysed.  An
image takes over the unchanged fields of the image analysed just before it
(``vmxlint.incremental``), so a series costs what its changed functions cost.  With
``jobs`` > 1 the patches are cut into contiguous runs, one per process: each run starts
from the image before the series (analysed once, before the processes start), then goes
on incrementally.  The findings are the same whichever way they are computed.
"""
from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING

from msgspec import Struct

from vmxlint.incremental import Neighbour
from vmxlint.tree import NESTED_C

if TYPE_CHECKING:  # pragma: no cover
    from vmxlint.analysis import Analysis
    from vmxlint.tree import Tree


class Step(Struct):
    """One patch to analyse: the images before and after it."""

    before: "Tree"
    after: "Tree"


def cpu_jobs() -> int:
    """The processes ``-j auto`` means: the CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def analyse_steps(steps: list[Step], incremental: bool = True, jobs: int = 1,
                  base: Neighbour | None = None) -> list[tuple[Analysis, Analysis]]:
    """(pre-image analysis, post-image analysis) of every step, in order; ``base`` is an
    image analysed before the first step (the previous commit of a range)."""
    jobs = max(1, min(jobs, len(steps)))
    if jobs == 1:
        return _run(steps, incremental, base)
    import multiprocessing

    if "fork" not in multiprocessing.get_all_start_methods():
        return _run(steps, incremental, base)
    from concurrent.futures import ProcessPoolExecutor

    size = -(-len(steps) // jobs)
    runs = [steps[k:k + size] for k in range(0, len(steps), size)]
    # Every run starts from a neighbour: the first from ``base``, the others from the
    # image before the series (analysed once here, usually read from the cache), so that
    # none pays a full analysis of its first image.  Any neighbour gives the same result.
    starts = [base] + [_first(steps[0], base) if incremental else None] * (len(runs) - 1)
    global _PENDING
    _PENDING = list(zip(runs, starts))  # inherited by the forked workers, not pickled
    try:
        with ProcessPoolExecutor(max_workers=len(runs),
                                 mp_context=multiprocessing.get_context("fork")) as pool:
            done = list(pool.map(_run_pending, range(len(runs)), [incremental] * len(runs)))
    finally:
        _PENDING = []
    return [pair for run in done for pair in run]


def _first(step: Step, base: Neighbour | None) -> Neighbour:
    """The image before a series, analysed, as the neighbour of a run of its patches."""
    from vmxlint.analysis import analyse

    return Neighbour(analyse(step.before, base=base), step.before.read(NESTED_C) or "")


_PENDING: list[tuple[list[Step], Neighbour | None]] = []


def _run_pending(k: int, incremental: bool) -> list[tuple[Analysis, Analysis]]:
    run, start = _PENDING[k]
    return _run(run, incremental, start)


def _run(steps: list[Step], incremental: bool,
         base: Neighbour | None = None) -> list[tuple[Analysis, Analysis]]:
    from vmxlint.analysis import from_scratch

    with contextlib.nullcontext() if incremental else from_scratch():
        return _steps(steps, incremental, base)


def _steps(steps: list[Step], incremental: bool,
           base: Neighbour | None) -> list[tuple[Analysis, Analysis]]:
    from vmxlint.analysis import analyse

    out: list[tuple[Analysis, Analysis]] = []
    previous = base if incremental else None    # the last image analysed: fields reused
    for step in steps:
        pre, post = step.before.read(NESTED_C) or "", step.after.read(NESTED_C) or ""
        before = analyse(step.before, base=previous)
        after = analyse(step.after, also=before.written,
                        base=Neighbour(before, pre) if incremental else None)
        if set(after.written) - set(before.written):
            # A field only the post-image writes: ask the pre-image about it too.
            before = analyse(step.before, also=after.written,
                             base=Neighbour(after, post) if incremental else None)
        previous = Neighbour(after, post) if incremental else None
        out.append((before, after))
    return out
