"""Findings on the diff: a finding a patch causes away from its hunks is moved onto them.

Review tools (reviewdog's diff filter, GitHub's inline annotations, an email reply that
quotes hunks) show only findings on lines the patch touches.  Deleting a needed write
makes VMX201 point at another write or at the VM entry, far from the hunk; so a new
finding outside every hunk of its file is anchored on the hunk that most likely caused
it, and its own place becomes a related location (evidence role ``site``):

1. a removed line that names the finding's field (the deleted write);
2. else the changed line of the finding's function nearest to it;
3. else the first changed line of the file.

A finding already inside a hunk (context lines included) stays where it is.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

from vmxlint.findings import Evidence, Finding
from vmxlint.tree import lines

if TYPE_CHECKING:  # pragma: no cover
    from vmxlint.incremental import Spans
    from vmxlint.patch import Applied


def on_hunk(f: Finding, applied: "Applied", functions: Mapping[str, "Spans"] | None = None
            ) -> Finding:
    """f, anchored on its patch's hunks when it is new and lies outside all of them.

    ``functions``: the functions of the post-image with their first and last lines, by file,
    as the analysis found them (a file not there is split into functions here)."""
    post = applied.files.get(f.path)
    if f.status != "new" or post is None:
        return f
    removed_at = applied.removed_at.get(f.path, {})
    changed = set(applied.added_lines.get(f.path, set())) | set(removed_at.values())
    spans = applied.hunk_spans.get(f.path, [])
    if not changed or any(a <= f.line <= b for a, b in spans):
        return f
    line = _cause(f, applied, removed_at, changed, post, (functions or {}).get(f.path))
    site = Evidence(path=f.path, line=f.line, function=f.function, role="site")
    return f.with_(line=line, col=1, evidence=(site,) + f.evidence)


def _cause(f: Finding, applied: "Applied", removed_at: dict[int, int], changed: set[int],
           post: str, spans: "Spans | None") -> int:
    if f.field and removed_at:
        pre = lines(applied.pre.get(f.path) or "")
        named = sorted(at for old, at in removed_at.items()
                       if old <= len(pre) and f.field in pre[old - 1])
        if named:
            return named[0]
    if f.function:
        if not spans:
            from vmxlint.cfront import function_spans

            spans = function_spans(post)
        span = spans.get(f.function)
        if span is not None:
            inside = [n for n in changed if span[0] <= n <= span[1]]
            if inside:
                return min(inside, key=lambda n: (abs(n - f.line), n))
    return min(changed)
