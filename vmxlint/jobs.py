"""The analyses a series needs, one image after another or spread over processes (-j N).

Each patch that touches the analysed files needs its pre- and post-image analysed.  An
image takes over the unchanged fields of the image analysed just before it
(``vmxlint.incremental``), so a series costs what its changed functions cost.

With ``jobs`` > 1 the series is cut into segments, each worked on by two processes (a
lane each) from both ends towards the middle: the front lane takes its segment's next
patch, the back lane the last one left, until they meet.  Which lane gets how many
patches is decided as they go, so neither waits for the other, however the patches' costs
vary.  A lane starts from the image before the series (analysed once, before the
processes start) and goes on incrementally: the back lane analyses a patch's post-image
from the image after it, then the pre-image from the post-image.

The steps come as the patches are applied (``Made``).  The first segment's front lane
is forked as soon as the series has two of them: it goes on applying the patches itself
(its copy of the generator that applies them) while this process applies them all, then
works the first segment's back lane and forks the other lanes (where the system cannot
fork, this process takes every patch).  The findings are the same whichever way they are
computed.
"""
from __future__ import annotations

import contextlib
import functools
import gc
import os
import sys
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from msgspec import Struct

from vmxlint.incremental import Neighbour
from vmxlint.tree import NESTED_C

if TYPE_CHECKING:  # pragma: no cover
    from vmxlint.analysis import Analysis
    from vmxlint.tree import Tree

Pair = tuple["Analysis", "Analysis"]


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


class Made:
    """The steps of a series as they are made (a generator applying its patches), kept;
    a process forked before the last one was made goes on making them itself."""

    def __init__(self, steps: Iterable[Step]) -> None:
        self._source = iter(steps)
        self._made: list[Step] = []
        self._ended = False

    def get(self, k: int) -> Step | None:
        """Step K, made now if it was not yet; None when the series has fewer."""
        while len(self._made) <= k and not self._ended:
            step = next(self._source, None)
            if step is None:
                self._ended = True
            else:
                self._made.append(step)
        return self._made[k] if k < len(self._made) else None

    def all(self) -> list[Step]:
        """Every step, the rest made now."""
        self._made.extend(self._source)
        self._ended = True
        return self._made


def analyse_steps(steps: Iterable[Step], incremental: bool = True, jobs: int = 1,
                  base: Neighbour | None = None) -> list[Pair]:
    """(pre-image analysis, post-image analysis) of every step, in order; ``base`` is an
    image analysed before the first step (the previous commit of a range).  STEPS may be
    a generator that applies the series' patches: with ``jobs`` > 1 the analyses start
    before the last one is applied."""
    made = Made(steps)
    if jobs == 1 or made.get(1) is None or not hasattr(os, "fork"):
        with _mode(incremental), _settling():
            return _forward(made.all(), incremental, base)
    # Every lane starts from a neighbour, the image before the series (analysed here,
    # usually read from the cache), so that none pays a full analysis of its first image.
    start = _first(made.get(0), base) if incremental else None
    global _PENDING
    ends = _Ends(jobs)
    _PENDING = _Work(made, incremental, start, ends)
    try:
        # Forked: the workers inherit the work and this process's memos, nothing pickled.
        # Frozen for the fork: a worker's collector never walks what it inherited, which
        # would copy the pages the objects sit on (1,500 fewer page faults a batch).
        with _settling():
            _settle()
            workers: list[Child] = []
            try:
                # The first front lane is forked now; it makes its steps itself, while
                # this process applies the rest of the series' patches.
                workers.append(Child(functools.partial(_lane, 0), "lane 0"))
                n = len(made.all())
                lanes = min(jobs, n)
                ends.known(n, lanes)
                workers.extend(Child(functools.partial(_lane, k), f"lane {k}")
                               for k in range(2, lanes))
                done = dict(_lane(1))
            except BaseException:
                for w in workers:
                    w.stop()        # what they would send is not awaited
                raise
            finally:
                # Every worker is waited for, whatever happened here (no process is left
                # behind); what one raised is raised once all are done.
                results = [w.result() for w in workers]
            for ok, value in results:
                if not ok:
                    raise value
                done.update(value)
    finally:
        ends.close()
        _PENDING = None
    return [done[i] for i in range(n)]


class Child:
    """A forked process that runs one function and sends back what it returned (pickled,
    through a pipe), or what it raised.  Plain ``os.fork``: a pool of
    ``concurrent.futures`` and the shared array and lock of ``multiprocessing`` cost a
    batch 25 ms of imports and set-up before the first patch, and the lanes need none of
    what they offer."""

    def __init__(self, run: Callable[[], Any], name: str) -> None:
        _flush(sys.stdout, sys.stderr)      # nothing buffered is written twice
        self.name = name
        read, write = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:               # the child: never returns
            os.close(read)
            _answer(run, name, write)
        os.close(write)
        self.pipe = read

    def stop(self) -> None:
        """End the process now (its results are not wanted)."""
        import signal

        with contextlib.suppress(OSError):
            os.kill(self.pid, signal.SIGKILL)

    def result(self) -> tuple[bool, Any]:
        """(True, what the function returned) or (False, the exception it raised), once
        the process ended."""
        import pickle

        chunks = []
        try:
            while chunk := os.read(self.pipe, 1 << 20):
                chunks.append(chunk)
        finally:
            os.close(self.pipe)
            _, status = os.waitpid(self.pid, 0)
        try:
            return pickle.loads(b"".join(chunks))
        except Exception:   # noqa: BLE001 - nothing, or a part: the process died
            code = os.waitstatus_to_exitcode(status)
            how = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
            return False, WorkerDied(f"the process of {self.name} ended without its "
                                     f"results ({how})")


class WorkerDied(RuntimeError):
    """A forked process ended without sending its results (killed, or out of memory)."""


def _answer(run: Callable[[], Any], name: str, pipe: int) -> None:
    """Run RUN in this forked process, send what it returned (or raised) down PIPE, and
    leave without running the exit handlers of the process it was forked from."""
    import pickle

    code = 1
    try:
        try:
            message = (True, run())
        except BaseException as exc:    # noqa: BLE001 - every failure goes to the parent
            message = (False, exc)
        try:
            data = pickle.dumps(message, pickle.HIGHEST_PROTOCOL)
        except Exception as exc:        # noqa: BLE001 - an exception that does not pickle
            data = pickle.dumps((False, RuntimeError(f"{name}: {message[1]!r} ({exc})")))
        with os.fdopen(pipe, "wb") as out:
            out.write(data)
        code = 0
    finally:
        _flush(sys.stdout, sys.stderr)      # what the process printed (a warning) is kept
        os._exit(code)


def _flush(*streams: Any) -> None:
    for stream in streams:
        try:
            stream.flush()
        except (OSError, ValueError):       # closed, or a reader that went away
            pass


@contextlib.contextmanager
def _settling() -> Iterator[None]:
    """Within this, what a step leaves is frozen when the step ends (``_settle``) and
    thawed at the end.

    A step keeps some 10^4 objects for the next (its analyses, the trees and walk it
    made); the collector's youngest generation would walk them again and again as later
    steps allocate (a collection of 0.04-0.07 s in each lane of a series of 40).  Frozen,
    only what the current step made is walked.  Nothing a step makes forms cycles
    (``tests/test_incremental.py`` checks), so nothing freed by the collector alone is kept."""
    try:
        yield
    finally:
        gc.unfreeze()


def _settle() -> None:
    gc.freeze()


class _Ends:
    """The two ends of each segment still to do, shared by the processes: lane 2s is the
    front of segment s, lane 2s + 1 its back (with an odd number of lanes, the last
    segment has a front lane only).  They sit in a shared anonymous mapping, and a byte in
    a pipe is the lock that makes a claim whole.  Until the series' length is known
    (``known``), the first segment has no back end: lane 0 alone claims, from the start."""

    _OPEN = 1 << 62     # the back end of a segment whose length is not known yet

    def __init__(self, lanes: int) -> None:
        import mmap

        segments = -(-lanes // 2)
        self._map = mmap.mmap(-1, 16 * segments)            # shared with forked processes
        self.ends = memoryview(self._map).cast("q")
        self.ends[0], self.ends[1] = 0, self._OPEN
        for s in range(1, segments):
            self.ends[2 * s], self.ends[2 * s + 1] = 1, 0     # empty until known
        self._take, self._give = os.pipe()
        os.write(self._give, b"\0")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        os.read(self._take, 1)          # the lock: one byte, taken by one process at a time
        try:
            yield
        finally:
            os.write(self._give, b"\0")

    def known(self, n: int, lanes: int) -> None:
        """The series has N steps, shared by LANES lanes: each segment's ends (the first
        segment's front where lane 0 has come to)."""
        widths = [2] * (lanes // 2) + [1] * (lanes % 2)    # lanes per segment
        bounds, done = [0], 0
        for w in widths:
            done += w
            bounds.append(round(n * done / lanes))
        with self._locked():
            front = self.ends[0]
            self.ends[1] = max(bounds[1], front) - 1
            for s in range(1, len(widths)):
                self.ends[2 * s] = max(bounds[s], front)
                self.ends[2 * s + 1] = bounds[s + 1] - 1

    def claim(self, lane: int) -> int | None:
        """The next step for LANE, or None when its segment is done."""
        s, back = divmod(lane, 2)
        with self._locked():
            front, last = self.ends[2 * s], self.ends[2 * s + 1]
            if front > last:
                return None
            if back:
                self.ends[2 * s + 1] = last - 1
                return last
            self.ends[2 * s] = front + 1
            return front

    def close(self) -> None:
        """Give back the pipe and the mapping (the processes that use them are done)."""
        self.ends.release()
        self._map.close()
        os.close(self._take)
        os.close(self._give)


class _Work(Struct):
    steps: Made
    incremental: bool
    start: Neighbour | None
    ends: _Ends


_PENDING: _Work | None = None   # inherited by the forked workers, not pickled


def _first(step: Step, base: Neighbour | None) -> Neighbour:
    """The image before a series, analysed, as the neighbour of a run of its patches."""
    from vmxlint.analysis import analyse

    return Neighbour(analyse(step.before, base=base), step.before.read(NESTED_C) or "")


def _mode(incremental: bool):
    from vmxlint.analysis import from_scratch

    return contextlib.nullcontext() if incremental else from_scratch()


def _lane(lane: int) -> list[tuple[int, Pair]]:
    """The steps lane LANE claimed, each with its pair of analyses."""
    from vmxlint.cfront.astcache import in_process_only

    work = _PENDING
    assert work is not None
    back = lane % 2 == 1
    out: list[tuple[int, Pair]] = []
    previous = work.start
    # The images before the series (the start) wrote their trees; a lane's are the
    # functions the series edits (see _forward).
    with _mode(work.incremental), in_process_only():
        while (k := work.ends.claim(lane)) is not None:
            step = work.steps.get(k)
            if step is None:
                break           # lane 0, before the series' length was known: it is done
            pair = _backward(step, previous, work.incremental) if back \
                else _step(step, previous, work.incremental)
            if work.incremental:
                previous = Neighbour(pair[0], step.before.read(NESTED_C) or "") if back \
                    else Neighbour(pair[1], step.after.read(NESTED_C) or "")
            out.append((k, pair))
            _settle()
    return out


def _forward(steps: list[Step], incremental: bool, base: Neighbour | None) -> list[Pair]:
    from vmxlint.cfront.astcache import in_process_only

    out: list[Pair] = []
    previous = base if incremental else None    # the last image analysed: fields reused
    for k, step in enumerate(steps):
        # The trees parsed for the first patch's images are written to the disk cache (a
        # check of one patch: the tree's functions, the edited one); those of the later
        # images are the functions the series edits, which its next version edits again
        # (writing them cost a series 8 ms at its end).
        with in_process_only() if k else contextlib.nullcontext():
            out.append(_step(step, previous, incremental))
        _settle()
        if incremental:
            previous = Neighbour(out[-1][1], step.after.read(NESTED_C) or "")
    return out


def _step(step: Step, previous: Neighbour | None, incremental: bool) -> Pair:
    """The pair of one step, the pre-image analysed from PREVIOUS (the image before it)."""
    from vmxlint.analysis import analyse

    before = analyse(step.before, base=previous)
    return _pair(step, before, incremental)


def _backward(step: Step, following: Neighbour | None, incremental: bool) -> Pair:
    """The pair of one step, the post-image analysed from FOLLOWING (an image after it):
    the same analyses as ``_step`` asks for, reached from the other side."""
    from vmxlint.analysis import analyse

    post = step.after.read(NESTED_C) or ""
    # The pre-image of the step this lane took last is this step's post-image: taken as is.
    after = following.analysis if following is not None and following.text == post \
        else analyse(step.after, base=following)
    before = analyse(step.before, base=Neighbour(after, post) if incremental else None)
    return _pair(step, before, incremental)


def _pair(step: Step, before: Analysis, incremental: bool) -> Pair:
    """The post-image asked about the fields the pre-image writes, and the pre-image
    about those only the post-image writes (so that deleting a field's only write, or
    adding one, is seen)."""
    from vmxlint.analysis import analyse

    pre, post = step.before.read(NESTED_C) or "", step.after.read(NESTED_C) or ""
    after = analyse(step.after, also=before.written,
                    base=Neighbour(before, pre) if incremental else None)
    if set(after.written) - set(before.written):
        before = analyse(step.before, also=after.written,
                         base=Neighbour(after, post) if incremental else None)
    return before, after
