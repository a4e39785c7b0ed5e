"""The json format: ``{"version": 1, "findings": [...], "summary": {...}}``.

Each finding is ``Finding.to_dict()`` (DESIGN.md section 5); keys keep that
order, findings come sorted, and the object is indented by 2.
"""
from __future__ import annotations

import dataclasses
import json
from typing import TextIO

from vmxlint.findings import Report

from . import ordered


def write(report: Report, out: TextIO) -> None:
    """Write the report as one JSON object."""
    doc = {
        "version": 1,
        "findings": [f.to_dict() for f in ordered(report.findings)],
        "summary": report.summary(),
    }
    json.dump(doc, out, indent=2, default=_plain)
    out.write("\n")


def _plain(obj: object) -> object:
    """Turn the odd value a check put in ``details`` into plain JSON data."""
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=str)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    return str(obj)
