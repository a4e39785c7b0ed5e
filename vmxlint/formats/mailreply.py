"""The email format: a review reply to each patch mail, as an mbox of drafts.

For every patch with findings this writes one message: reply headers
(``Subject: Re: ...``, ``In-Reply-To``, ``References``, ``To`` the author, ``Cc``
the patch's recipients), a one-line tally, then the patch's diff quoted the
kernel way: ``> `` before each line, only the ``diff --git`` line, a hunk header
and the few lines up to each finding's line, with the finding written beneath
as unquoted text (``CODE (severity): message`` and its evidence). A quote that
starts inside a hunk gets a hunk header of its own with the right line numbers,
so that b4 (which counts quoted lines from the last ``@@``) maps every comment
to the line it is about. New and existing findings are looked up in the
post-image, resolved ones in the pre-image.

Findings that no hunk holds (or all of them, when the mail text is missing) are
listed plainly before the quote; findings without a patch (audit) go into a
message of their own. Messages are separated by mbox ``From `` lines, as in
``git format-patch`` output, so that ``git send-email`` or a mail client can
take the file as is.

The mail is untrusted (DESIGN.md section 8). Each reply is an ``EmailMessage``
under a strict policy; every header value taken from the input is decoded and
flattened to one line first, addresses and message ids are kept only when they
parse, so no input can add a header or a message. Control characters in the
body are escaped. The signature follows a ``-- `` line, where b4 drops it.
"""
from __future__ import annotations

import email
import email.errors
import email.generator
import email.policy
import email.utils
import re
from email.headerregistry import Address
from email.message import EmailMessage
from typing import TextIO

from vmxlint import __version__
from vmxlint.findings import Finding, PatchRef, PatchView, Report
from vmxlint.patch import DiffHunk, FileDiff

from . import by_patch, evidence_text

QUOTE_CONTEXT = 3
MBOX_FROM = "From vmxlint Mon Sep 17 00:00:00 2001"
SIGNATURE = f"vmxlint {__version__}; `vmxlint explain CODE` describes each check."
# Strict on what we write; headers fold only past RFC 5322's 998-character limit.
POLICY = email.policy.default.clone(raise_on_defect=True, max_line_length=998)
# Characters that end a line for str.splitlines() or a terminal: C0 (tab aside), DEL, C1, LS, PS.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")
_MSGID = re.compile(r"<[!-;=?-~]+>")
_STATUS_NOTE = {"resolved": "(resolved by this patch)", "existing": "(present before this patch)"}


def _locate(files: list[FileDiff], f: Finding) -> tuple[int, int, int] | None:
    """Return (file, hunk, line) indexes of the hunk line a finding is about."""
    pre = f.status == "resolved"
    kinds = "- " if pre else "+ "
    for fi, fd in enumerate(files):
        if (fd.old_path if pre else fd.new_path) != f.path:
            continue
        for hi, hunk in enumerate(fd.hunks):
            for li, ln in enumerate(hunk.lines):
                if ln.kind in kinds and (ln.old if pre else ln.new) == f.line:
                    return fi, hi, li
    return None


def _flat(value: object) -> str:
    """Decoded header text on one line: control characters become blanks, runs of blanks one."""
    return " ".join(_CONTROL.sub(" ", str(value or "")).split())


def _escape(line: str) -> str:
    """Show the control characters of one body line as ``\\xNN`` / ``\\uNNNN``; keep tabs."""
    return _CONTROL.sub(lambda m: ascii(m.group())[1:-1], line)


def _plain(line: str) -> str:
    """Keep an unquoted line from reading as a quote or an mbox separator."""
    return " " + line if line.startswith((">", "From ")) else line


def _comment(f: Finding, where: bool = False) -> list[str]:
    """The unquoted text about one finding."""
    lines = f"{f.code} ({f.severity}): {f.message}".splitlines() or [f.code]
    if where:
        lines[0] = f"{f.path}:{f.line}: {lines[0]}"
    if f.patch is not None and f.status in _STATUS_NOTE:
        lines.append("  " + _STATUS_NOTE[f.status])
    lines += ["  " + evidence_text(e) for e in f.evidence]
    return [_plain(ln) for ln in lines]


def _quote(text: str) -> str:
    return "> " + text if text else ">"


_Placed = tuple[tuple[int, int, int], Finding]


def _quoted(files: list[FileDiff], placed: list[_Placed]) -> list[str]:
    """Quote the hunk lines up to each placed finding, with the finding beneath."""
    hunks: dict[tuple[int, int], list[list]] = {}  # (file, hunk) -> [[start, end, items]]
    for (fi, hi, li), f in sorted(placed, key=lambda p: p[0]):
        runs = hunks.setdefault((fi, hi), [])
        start = max(li - QUOTE_CONTEXT, 0)
        if runs and start <= runs[-1][1] + 1:
            runs[-1][1] = li
            runs[-1][2].append((li, f))
        else:
            runs.append([start, li, [(li, f)]])
    out: list[str] = []
    last_file = None
    for (fi, hi), runs in hunks.items():
        if fi != last_file:
            out += [_quote(h) for h in files[fi].header]
            last_file = fi
        hunk = files[fi].hunks[hi]
        for start, end, items in runs:
            out.append(_quote(_hunk_header(hunk, start, end)))
            pos = start
            for li, f in items:
                if li >= pos:
                    out += [_quote(ln.text) for ln in hunk.lines[pos:li + 1]] + [""]
                    pos = li + 1
                out += _comment(f) + [""]
    return out


def _hunk_header(hunk: DiffHunk, start: int, last: int) -> str:
    """The hunk's own header, or one for the part that starts at ``start``."""
    if start == 0:
        return hunk.header
    window = hunk.lines[start:last + 1]
    old = sum(1 for ln in window if ln.kind in "- ")
    new = sum(1 for ln in window if ln.kind in "+ ")
    first = hunk.lines[start]
    return f"@@ -{first.old},{old} +{first.new},{new} @@{hunk.section}"


def _msgid(value: str | None) -> str | None:
    """A message id as ``<left@right>``, or None when the value is not one."""
    value = _flat(value)
    if value and not value.startswith("<"):
        value = f"<{value}>"
    return value if _MSGID.fullmatch(value) else None


def _addresses(*values: str) -> list[Address]:
    """The addresses in header values that parse strictly and have a domain."""
    out: list[Address] = []
    for name, addr in email.utils.getaddresses([_flat(v) for v in values]):
        try:
            address = Address(display_name=_flat(name), addr_spec=addr)
        except (ValueError, TypeError, IndexError, email.errors.MessageError):
            continue
        if address.username and address.domain:
            out.append(address)
    return out


_Headers = list[tuple[str, "str | list[Address]"]]


def _reply_headers(patch: PatchRef, view: PatchView) -> _Headers:
    """Subject, threading and recipients of the reply, from the patch and its mail."""
    subject = _flat(view.subject) or _flat(patch.subject) or "your patch"
    if not subject.lower().startswith("re:"):
        subject = "Re: " + subject
    headers: _Headers = [("Subject", subject)]
    msgid = _msgid(patch.message_id) or _msgid(view.message_id)
    if msgid:
        refs = [r for r in _MSGID.findall(_flat(view.references)) if r != msgid]
        refs = list(dict.fromkeys(refs + [msgid]))
        headers += [("In-Reply-To", msgid), ("References", " ".join(refs))]
    author = _addresses(_flat(patch.sender) or _flat(view.sender))[:1]
    if author:
        headers.append(("To", author))
    own = {a.addr_spec.lower() for a in author}
    others: dict[str, Address] = {}
    for a in _addresses(_flat(view.to), _flat(view.cc)):
        if a.addr_spec.lower() not in own:
            others.setdefault(a.addr_spec.lower(), a)
    if others:
        headers.append(("Cc", list(others.values())))
    return headers


def _tally(findings: list[Finding]) -> str:
    parts = []
    for status, word in (("new", "new"), ("existing", "already present"),
                         ("resolved", "resolved by it")):
        n = sum(1 for f in findings if f.status == status)
        if n:
            parts.append(f"{n} {word}")
    noun = "finding" if len(findings) == 1 else "findings"
    return f"vmxlint reviewed this patch: {len(findings)} {noun} ({', '.join(parts)})."


def _patch_reply(patch: PatchRef, findings: list[Finding],
                 view: PatchView) -> tuple[_Headers, list[str]]:
    """Return the headers and body of the reply to one patch."""
    files = list(view.files)
    placed: list[_Placed] = []
    loose: list[Finding] = []
    for f in findings:
        at = _locate(files, f)
        if at is None:
            loose.append(f)
        else:
            placed.append((at, f))
    lines = [_tally(findings), ""]
    if loose:
        lines += [("Not in the quoted hunks:" if placed else "Findings:"), ""]
        for f in loose:
            lines += ["  " + ln for ln in _comment(f, where=True)] + [""]
    if placed:
        author = _flat(patch.sender) or _flat(view.sender)
        date = _flat(view.date)
        if author:
            lines.append(_plain(f"On {date}, {author} wrote:" if date else f"{author} wrote:"))
        lines += _quoted(files, placed)
    return _reply_headers(patch, view), lines


def _plain_message(report: Report, findings: list[Finding]) -> tuple[_Headers, list[str]]:
    """Return the headers and body of the message listing findings outside patches."""
    noun = "finding" if len(findings) == 1 else "findings"
    where = _flat(report.tree) or "the tree"
    headers: _Headers = [("Subject", f"vmxlint: {len(findings)} {noun} in {where}")]
    body: list[str] = []
    for f in findings:
        body += _comment(f, where=True) + [""]
    return headers, body


def _message(headers: _Headers, body: list[str]) -> EmailMessage:
    """One reply: the headers, the escaped body, then the signature after ``-- ``."""
    while body and not body[-1]:
        body.pop()
    msg = EmailMessage(policy=POLICY)
    for name, value in headers:
        msg[name] = value
    text = "\n".join(_escape(line) for line in body)
    msg.set_content(f"{text}\n\n-- \n{SIGNATURE}\n")
    msg.set_unixfrom(MBOX_FROM)
    return msg


def write(report: Report, out: TextIO) -> None:
    """Write one reply draft per patch with findings, plus one for findings outside patches."""
    generator = email.generator.Generator(out, mangle_from_=True, policy=POLICY)
    for patch, findings in by_patch(report):
        if not findings:
            continue
        if patch is None:
            headers, body = _plain_message(report, findings)
        else:
            headers, body = _patch_reply(patch, findings, report.patch(patch))
        generator.flatten(_message(headers, body), unixfrom=True)
        out.write("\n")
