"""The json format: ``{"version": 1, "findings": [...], "summary": {...}}``.

Each finding is ``Finding.to_dict()`` (DESIGN.md section 5) plus ``line_image``
after ``line``: ``pre`` when ``line`` counts in the pre-image (a resolved
finding), ``post`` otherwise. Keys keep that order, findings come sorted, and the
object is indented by 2. Text is kept as found; JSON escapes control characters.
"""
from __future__ import annotations

import json
from typing import TextIO

from msgspec import Struct, structs

from vmxlint.findings import Finding, Report

from . import line_image, ordered


def write(report: Report, out: TextIO) -> None:
    """Write the report as one JSON object."""
    doc = {
        "version": 1,
        "findings": [_finding(f) for f in ordered(report.findings)],
        "summary": report.summary(),
    }
    json.dump(doc, out, indent=2, default=_plain)
    out.write("\n")


def _finding(f: Finding) -> dict[str, object]:
    """``Finding.to_dict()`` with ``line_image`` after ``line``."""
    out: dict[str, object] = {}
    for k, v in f.to_dict().items():
        out[k] = v
        if k == "line":
            out["line_image"] = line_image(f)
    return out


def _plain(obj: object) -> object:
    """Turn the odd value a check put in ``details`` into plain JSON data."""
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=str)
    if isinstance(obj, Struct):
        return structs.asdict(obj)
    return str(obj)
