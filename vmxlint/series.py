"""A series checked against a tree: each patch applied in memory, in order, and the
findings of its pre- and post-image compared (``vmxlint check``).

The images are analysed by ``vmxlint.jobs`` (one after another, each reusing the one
before, or spread over processes); this module applies the patches and judges what each
patch introduces, resolves, or leaves unanalysed.
"""
from __future__ import annotations

import functools
from typing import Iterator

from msgspec import Struct, field

from vmxlint.analysis import BLIND, MAX_PATCHES, UNANALYSED, Analysis, inputs
from vmxlint.findings import Finding, PatchRef, compare
from vmxlint.incremental import Neighbour
from vmxlint.jobs import Step, analyse_steps
from vmxlint.tree import NESTED_C, Tree, lines


class CheckResult(Struct):
    findings: list[Finding]
    mails: dict[PatchRef, str]
    usable: int          # how many patches could be applied
    notes: list[str] = field(default_factory=list)   # fallbacks to embedded tables, once each
    last: Neighbour | None = None     # the last image analysed, for the next check to reuse


def patch_ref(mail) -> PatchRef:
    return PatchRef(subject=mail.subject, index=mail.index, message_id=mail.message_id,
                    sender=mail.sender)


def _problem_finding(model, problem, ref: PatchRef) -> Finding:
    rule = model.rules[problem.code]
    return Finding(code=problem.code, name=rule.name, severity=rule.severity,
                   message=problem.message, path=problem.path or "-", line=problem.line or 1,
                   status="new", patch=ref)


def check(mails: list, tree: Tree, include_existing: bool = False,
          incremental: bool = True, jobs: int = 1,
          base: Neighbour | None = None) -> CheckResult:
    """Apply a series in order, in memory, and compare findings before and after each.

    ``incremental``: each image reuses the unchanged fields of the image before it; the
    findings are the same without (the tests compare both ways).  ``jobs``: processes the
    analyses are spread over (vmxlint.jobs)."""
    from vmxlint.anchor import on_hunk

    # The patches are applied in order (cheap) as the images are analysed (the cost,
    # spread over ``jobs``, which may start before the last patch is applied); then each
    # patch's findings are judged, in order.
    got = _Applied()
    pairs = analyse_steps(_apply(mails, tree, got), incremental, jobs, base)
    events, steps = got.events, got.steps
    last = Neighbour(pairs[-1][1], steps[-1].after.read(NESTED_C) or "") if pairs else base
    out: list[Finding] = []
    broken: dict[tuple, PatchRef] = {}    # unanalysed parts, by the patch that caused them
    notes: dict[str, None] = {}           # fallbacks and other notes, each once, in order
    for event in events:
        if isinstance(event, Finding):
            out.append(event)
            continue
        k, ref, applied = event
        before, after_a = pairs[k]
        seen = _Blind(before, steps[k].before, steps[k].after, applied, broken, ref)
        spans = {NESTED_C: after_a.spans}
        for f in compare(before.findings, after_a.findings):
            f = on_hunk(seen.judge(f), applied, spans)
            if f.status == "existing" and not include_existing:
                continue
            out.append(f.with_(patch=ref))
        notes.update(dict.fromkeys(before.notes + after_a.notes))
    return CheckResult(findings=out, mails=got.raw, usable=got.usable, notes=list(notes),
                       last=last)


class _Applied:
    """What applying a series gave besides its steps: the events to judge in order
    (findings, and (step, patch, applied patch) triples), the steps made so far, the mails
    by patch, and how many patches applied."""

    def __init__(self) -> None:
        self.events: list[Finding | tuple] = []
        self.steps: list[Step] = []
        self.raw: dict[PatchRef, str] = {}
        self.usable = 0


def _apply(mails: list, tree: Tree, got: _Applied) -> Iterator[Step]:
    """Apply the series in order, in memory: the steps that change what is analysed, as
    each is made (what else applying gives goes to GOT)."""
    from vmxlint.model import load_model
    from vmxlint.patch import apply_patch

    model = load_model()
    events, raw = got.events, got.raw
    current = tree
    stopped: PatchRef | None = None     # the patch at which git am would have stopped
    patches = 0
    for mail in mails:
        ref = patch_ref(mail)
        raw[ref] = mail.raw
        if mail.index and mail.index.startswith("0/") and not mail.diff.strip():
            continue                # a cover letter carries no diff by design
        if getattr(mail, "problem", None):
            events.append(_problem_finding(model, _Budget(mail.problem), ref))
            continue
        patches += 1
        if patches > MAX_PATCHES:
            rest = sum(1 for m in mails if m.diff.strip()) - MAX_PATCHES
            events.append(_problem_finding(model, _Budget(
                f"{rest} patch(es) from this one on not analysed: the series has more than "
                f"{MAX_PATCHES} patches"), ref))
            break
        if stopped is not None:
            events.append(_problem_finding(model, _NotChecked(stopped), ref))
            continue
        if not mail.diff.strip():
            events.append(_problem_finding(model, _NoDiff(), ref))
            continue                # a reply in a thread: not a patch git am would take
        applied = apply_patch(mail.diff, current)
        events.extend(_problem_finding(model, p, ref) for p in applied.problems)
        if not applied.usable:
            stopped = ref
            continue
        got.usable += 1
        after = current.with_overlay(applied.files)
        if any(p in inputs() for p in applied.files):
            events.append((len(got.steps), ref, applied))
            step = Step(current, after)
            got.steps.append(step)
            yield step
        current = after


# Findings that say part of the analysis did not run (UNANALYSED) are never hidden as
# "existing" when the patch changes what they cover, or when an earlier patch of the
# series caused them.


class _Blind:
    """Decides how a finding about unanalysed code is reported for one patch."""

    def __init__(self, before: Analysis, pre: Tree, post: Tree, applied, broken: dict,
                 ref: PatchRef) -> None:
        self.before = {f.key: f for f in before.findings}
        self._images = pre, post
        self.added = applied.added_lines.get(NESTED_C, set())
        self.removed = applied.removed_lines.get(NESTED_C, set())
        self.broken = broken
        self.ref = ref

    def judge(self, f: Finding) -> Finding:
        """The finding as this patch must report it."""
        if f.code not in UNANALYSED or f.status == "resolved":
            return f
        if f.status == "new":
            self.broken.setdefault(f.key, self.ref)
            return f
        culprit = self.broken.get(f.key)
        if culprit is not None:
            since = f"{culprit.index} " if culprit.index else ""
            return f.with_(status="new", severity="error",
                           message=f"not analysed since patch {since}({culprit.subject[:60]}) "
                                   f"broke it: {f.message}")
        if any(k == BLIND for k, _ in f.details):
            return f.with_(status="new", severity="error")
        if self._touched(f):
            return f.with_(status="new", severity="error",
                           message=f"this patch changes code that is not analysed: {f.message}")
        return f

    @functools.cached_property
    def pre(self) -> list[str]:
        # Split only when a finding about unanalysed code asks: few patches have one.
        return lines(self._images[0].read(NESTED_C) or "")

    @functools.cached_property
    def post(self) -> list[str]:
        return lines(self._images[1].read(NESTED_C) or "")

    def _touched(self, f: Finding) -> bool:
        old = self.before.get(f.key)
        if self.added & set(_span(self.post, f.line)):
            return True
        return old is not None and bool(self.removed & set(_span(self.pre, old.line)))


def _span(lines: list[str], start: int) -> range:
    """Line numbers of the top-level definition starting at start, to its closing '}'."""
    for k in range(max(start - 1, 0), len(lines)):
        if lines[k].startswith("}"):
            return range(start, k + 2)
    return range(start, len(lines) + 1)


class _NoDiff(Struct, frozen=True):
    code: str = "VMX001"
    path: str = ""
    line: int = 0
    message: str = "the message has no diff that can be parsed"


class _Budget:
    """An input over a documented bound (VMX006)."""

    code = "VMX006"
    path = ""
    line = 0

    def __init__(self, message: str) -> None:
        self.message = message


class _NotChecked:
    """A later patch of a series whose earlier patch does not apply (git am stops there)."""

    code = "VMX003"
    path = ""
    line = 0

    def __init__(self, culprit: PatchRef) -> None:
        name = f"{culprit.index} " if culprit.index else ""
        self.message = ("not checked: an earlier patch of the series does not apply "
                        f"({name}{culprit.subject[:80]})")
