"""Findings: what a check reports, and how findings of two images are matched."""
from __future__ import annotations

from typing import Callable, Iterable

from msgspec import Struct, field, structs

SEVERITIES = ("error", "warning", "info")
STATUSES = ("new", "resolved", "existing")

# (patch or None, "pre" | "post", path) -> that file's text in that image, or None.
SourceLookup = Callable[["PatchRef | None", str, str], "str | None"]


class Evidence(Struct, frozen=True, forbid_unknown_fields=True):
    """A place that supports a finding: a covering write, a consumer, a guard."""

    path: str
    line: int
    function: str | None
    role: str


class PatchRef(Struct, frozen=True, forbid_unknown_fields=True):
    """The patch a finding was reported for."""

    subject: str
    index: str | None = None          # "2/5", or None for a single patch
    message_id: str | None = None
    sender: str | None = None


class Finding(Struct, frozen=True, forbid_unknown_fields=True):
    """One reported problem, in the shape of DESIGN.md section 5."""

    code: str
    name: str
    severity: str
    message: str
    path: str
    line: int
    col: int = 1
    function: str | None = None
    field: str | None = None
    status: str = "existing"
    evidence: tuple[Evidence, ...] = ()
    patch: PatchRef | None = None
    # Extra machine-readable facts (guards, counterexample) for json and explain.
    details: tuple[tuple[str, object], ...] = ()
    statement: str = ""       # normalised text of the statement the finding is about
    occurrence: int = 0       # index among findings with the same code, function, field, text

    @property
    def key(self) -> tuple[str, str | None, str | None, str, int]:
        """Identity across pre- and post-image, never the line (DESIGN section 2): a patch
        that adds a second instance of an existing problem adds a new finding."""
        return (self.code, self.function, self.field, self.statement, self.occurrence)

    def with_(self, **changes: object) -> "Finding":
        return structs.replace(self, **changes)

    def to_dict(self) -> dict[str, object]:
        """Plain data for the json format (DESIGN.md section 5 contract)."""
        out: dict[str, object] = {
            "code": self.code,
            "name": self.name,
            "severity": self.severity,
            "status": self.status,
            "path": self.path,
            "line": self.line,
            "col": self.col,
            "function": self.function,
            "field": self.field,
            "message": self.message,
            "evidence": [structs.asdict(e) for e in self.evidence],
        }
        if self.patch is not None:
            out["patch"] = {
                "subject": self.patch.subject,
                "index": self.patch.index,
                "message_id": self.patch.message_id,
                "from": self.patch.sender,
            }
        for k, v in self.details:
            out[k] = v
        return out


class PatchView(Struct, frozen=True):
    """A checked patch mail as the formats see it: its headers and its file diffs, read
    once by the input modules, so that no format parses mail or diff text."""

    subject: str | None = None
    sender: str | None = None
    date: str | None = None
    message_id: str | None = None
    to: str | None = None
    cc: str | None = None
    references: str | None = None
    files: tuple = ()           # vmxlint.patch.FileDiff, as written in the mail


def view_of(raw: str) -> PatchView:
    """Read one raw mail with the input modules (vmxlint.mail, vmxlint.patch)."""
    from vmxlint.mail import MailError, read_mails
    from vmxlint.patch import file_diffs

    try:
        (mail, *_) = read_mails(raw.encode("utf-8", "surrogateescape"), "mail")
    except (MailError, ValueError):
        return PatchView()
    return PatchView(mail.subject, mail.sender, mail.date, mail.message_id, mail.to, mail.cc,
                     mail.references, tuple(file_diffs(mail.diff)))


class Report(Struct):
    """Everything one run produced: findings plus what the formats need to frame them."""

    findings: list[Finding] = field(default_factory=list)
    command: str = "check"
    # The raw mails checked, keyed by PatchRef; the formats read their views (patches).
    mails: dict[PatchRef, str] = field(default_factory=dict)
    tree: str | None = None
    # Reads the file a finding's line refers to (--show-source); None when not wanted.
    source: SourceLookup | None = None
    # What the analysis could not take from the tree (embedded tables used), once each.
    notes: list[str] = field(default_factory=list)
    # The checked mails read so far (``patch``): headers and file diffs for the formats
    # that quote them.
    patches: dict[PatchRef, PatchView] = field(default_factory=dict)

    def patch(self, ref: PatchRef) -> PatchView:
        """The view of the mail of REF, read when a format first asks (only the reply
        quotes mails: reading the 40 mails of a series again took 20 ms)."""
        view = self.patches.get(ref)
        if view is None:
            raw = self.mails.get(ref)
            view = self.patches[ref] = view_of(raw) if raw is not None else PatchView()
        return view

    def summary(self) -> dict[str, object]:
        by_sev = {s: 0 for s in SEVERITIES}
        by_status = {s: 0 for s in STATUSES}
        by_code: dict[str, int] = {}
        for f in self.findings:
            by_sev[f.severity] += 1
            by_status[f.status] += 1
            by_code[f.code] = by_code.get(f.code, 0) + 1
        out: dict[str, object] = {
            "total": len(self.findings),
            "by_severity": by_sev,
            "by_status": by_status,
            "by_code": dict(sorted(by_code.items())),
        }
        if self.notes:
            out["notes"] = list(self.notes)
        return out


def sort_key(f: Finding) -> tuple:
    return (f.path, f.line, f.col, f.code, f.field or "")


def number_occurrences(findings: Iterable[Finding]) -> list[Finding]:
    """Give findings that share code, function, field and statement their index, in
    program order, so each instance has an identity of its own."""
    seen: dict[tuple, int] = {}
    out = []
    for f in sorted(findings, key=sort_key):
        k = (f.code, f.function, f.field, f.statement)
        out.append(f.with_(occurrence=seen.get(k, 0)))
        seen[k] = seen.get(k, 0) + 1
    return out


def compare(before: Iterable[Finding], after: Iterable[Finding]) -> list[Finding]:
    """Label findings of the post-image new/existing and those of the pre-image resolved."""
    before = list(before)
    after = list(after)
    before_keys = {f.key for f in before}
    after_keys = {f.key for f in after}
    out = [f.with_(status="existing" if f.key in before_keys else "new") for f in after]
    out += [f.with_(status="resolved") for f in before if f.key not in after_keys]
    return sorted(out, key=sort_key)
