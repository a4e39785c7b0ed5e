"""Messages from files, mboxes, stdin and archive pages.

Every input becomes a list of :class:`Mail`: headers that identify the patch, the
commit message, and the diff, split the way ``git mailinfo`` does.  Accepted forms:
an mbox (a ``git format-patch`` file is a one-message mbox), a single RFC 822
message, ``git show`` output, a bare diff, and the text of a web-archive page.
"""
from __future__ import annotations

import email
import email.message
import email.policy
import re
import sys
from pathlib import Path

from msgspec import Struct, structs

from vmxlint.errors import VmxlintError
from vmxlint.memo import LazyPattern

__all__ = ["Mail", "MailError", "read_mails", "read_source"]


class MailError(VmxlintError):
    """The input is not text at all (binary junk), or cannot be read."""


class Mail(Struct, frozen=True):
    """One patch mail (or a cover letter, whose diff is "")."""

    subject: str
    message_id: str | None
    sender: str | None
    date: str | None
    index: str | None
    version: int | None
    body: str
    diff: str
    raw: str
    problem: str | None = None      # an input over a bound (VMX006): nothing of it was read
    to: str | None = None           # decoded To:, Cc:, References: of a mail, one line each
    cc: str | None = None
    references: str | None = None


# Bound on one input (DESIGN section 8, rules/VMX006-analysis-budget.toml): lore's
# largest thread mboxes are a few MB.
MAX_INPUT = 32 * 1024 * 1024


# The magic line git format-patch writes, and the ones lore/b4 mboxes use:
# "From <sha> Mon Sep 17 00:00:00 2001", "From mboxrd@z Thu Jan  1 00:00:00 1970".
# Requiring a time keeps a "From " line in prose from splitting a message.
_MBOX_FROM = re.compile(r"^From \S+ .*\d\d:\d\d:\d\d", re.M)
_HEADER_LINE = LazyPattern(r"^[!-9;-~]+:[ \t]")
_GIT_SHOW = LazyPattern(r"^commit [0-9a-f]{7,64}\b")
_ARCHIVE_HEADER = LazyPattern(r"^(From|Date|Subject|To|Cc|Message-I[Dd]):\s*(.*)$")
_SIG_VERSION = LazyPattern(r"^\d+(\.\d+)+\S*\s*$")
_REPLY = re.compile(r"^(\s*(re|fwd?|aw|sv)\s*:\s*)+", re.I)
_TAGS = re.compile(r"^\s*\[([^\]]*)\]")
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f]")

# Binary detection: a few stray control characters are tolerated (form feeds,
# ESC sequences from terminals), a larger share means the input is not text.
_MAX_CONTROL_RATIO = 0.01
_MAX_INVALID_RATIO = 0.05


def read_source(source: str) -> list[Mail]:
    """Read mails from a path, or from stdin when source is "-"."""
    if source == "-":
        return read_mails(sys.stdin.buffer.read(), "<stdin>")
    try:
        data = Path(source).read_bytes()
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise MailError(f"{source}: cannot read: {reason}") from None
    return read_mails(data, source)


def read_mails(data: bytes, name: str = "<stdin>") -> list[Mail]:
    """Split input into mails; raise MailError when it is not text.

    Never returns an empty list: input with nothing in it yields one Mail whose
    diff is "", so the caller reports "no diff found" like for any other mail.  An
    input over MAX_INPUT is not read: one Mail says so in ``problem``.
    """
    if len(data) > MAX_INPUT:
        return [Mail(subject=name, message_id=None, sender=None, date=None, index=None,
                     version=None, body="", diff="", raw="",
                     problem=f"{name} not analysed: input larger than {MAX_INPUT} bytes")]
    _check_text(data, name)
    if _MBOX_FROM.match(data.decode("latin-1", "replace")[:200]):
        return [_from_email(chunk, name) for chunk in _split_mbox(data)]
    text = _decode_text(data)
    first = _first_line(text)
    if _is_diff_start(first, _second_line(text)):
        return [_make_plain(text, name)]
    if _GIT_SHOW.match(first):
        return [_from_git_show(text, name)]
    if _looks_like_headers(text):
        return [_from_email(data, name)]
    return [_from_archive(text, name)]


# -- text or junk ---------------------------------------------------------------

def _check_text(data: bytes, name: str) -> None:
    """Raise MailError for input that is not text (NUL bytes, controls, bad bytes)."""
    if b"\0" in data:
        raise MailError(f"{name}: not a text patch or mail (NUL bytes)")
    if not data:
        return
    text = data.decode("utf-8", "surrogateescape")
    invalid = sum(1 for ch in text if "\udc80" <= ch <= "\udcff")
    if invalid > max(2, len(text) * _MAX_INVALID_RATIO) and not _declares_charset(data):
        raise MailError(f"{name}: not a text patch or mail (not UTF-8 text)")
    controls = len(_CONTROL.findall(text))
    if controls > max(2, len(text) * _MAX_CONTROL_RATIO):
        raise MailError(f"{name}: not a text patch or mail (control characters)")


def _declares_charset(data: bytes) -> bool:
    """Whether a MIME header names a charset, so 8-bit bytes are legitimate."""
    return re.search(rb"(?im)^content-type:.*charset=", data[:65536]) is not None


def _decode_text(data: bytes) -> str:
    """Decode bytes as UTF-8 (latin-1 for stray bytes) with Unix line ends."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        # Old mails in latin-1: every byte maps to a character, nothing is lost.
        text = data.decode("latin-1")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _first_line(text: str) -> str:
    for line in text.split("\n"):
        if line.strip():
            return line
    return ""


def _second_line(text: str) -> str:
    lines = [ln for ln in text.split("\n") if ln.strip()]
    return lines[1] if len(lines) > 1 else ""


def _looks_like_headers(text: str) -> bool:
    """Whether text starts with an RFC 822 header block."""
    block = text.lstrip("\n").split("\n\n", 1)[0].split("\n")
    if not block or not _HEADER_LINE.match(block[0]):
        return False
    names = {ln.split(":", 1)[0].lower() for ln in block if _HEADER_LINE.match(ln)}
    return bool(names & {"subject", "from", "message-id", "date"})


# -- mbox -----------------------------------------------------------------------

def _split_mbox(data: bytes) -> list[bytes]:
    """Split an mbox into messages (without their From_ lines), in order."""
    text = data.decode("latin-1")       # byte-transparent, so offsets are byte offsets
    starts = [m.start() for m in _MBOX_FROM.finditer(text)]
    chunks = []
    for i, start in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else len(text)
        chunk = text[start:end].split("\n", 1)
        body = chunk[1] if len(chunk) > 1 else ""
        # mboxrd quoting: ">From " in a body stands for "From ".
        body = re.sub(r"(?m)^>(>*From )", r"\1", body)
        if body.strip():
            chunks.append(body.encode("latin-1"))
    return chunks or [b""]


# -- RFC 822 --------------------------------------------------------------------

def _from_email(data: bytes, name: str) -> Mail:
    """Build a Mail from one RFC 822 message."""
    try:
        msg = email.message_from_bytes(data, policy=email.policy.default)
        keys = ("subject", "from", "to", "cc", "references")
        headers = {key: _header(msg, key) for key in keys}
        # Date and Message-ID as written: the parsed forms reformat or reject them.
        headers.update({key: _raw_header(msg, key) for key in ("date", "message-id")})
        text = _message_text(msg)
        head = _raw_headers(data)
    except Exception:        # noqa: BLE001 - the email package fails in many ways on junk
        headers = dict.fromkeys(("subject", "from", "date", "message-id", "to", "cc",
                                 "references"))
        text = _decode_text(data)
        head = ""
    body, diff = split_body(text)
    body, inbody = _in_body_headers(body)
    headers.update({k: v for k, v in inbody.items() if v})
    msgid = headers["message-id"]
    if msgid:
        msgid = msgid.strip().strip("<>").strip() or None
    raw = f"{head}\n{text}" if head else text
    mail = _make(headers["subject"] or name, msgid, headers["from"], headers["date"],
                 body, diff, raw)
    return structs.replace(mail, to=headers.get("to"), cc=headers.get("cc"),
                           references=headers.get("references"))


def _header(msg: email.message.Message, key: str) -> str | None:
    """A header's decoded, unfolded value, or None."""
    try:
        value = msg.get(key)
    except Exception:        # noqa: BLE001 - malformed headers can make the parser raise
        return None
    if value is None:
        return None
    value = " ".join(str(value).split())
    return value or None


def _raw_header(msg: email.message.Message, key: str) -> str | None:
    """A header's value as written (unfolded), or None."""
    for name, value in msg.raw_items():
        if name.lower() == key:
            return " ".join(str(value).split()) or None
    return None


def _raw_headers(data: bytes) -> str:
    """The header block as text, for quoting the mail in a reply."""
    text = _decode_text(data)
    return text.split("\n\n", 1)[0].strip("\n") + "\n"


def _message_text(msg: email.message.Message) -> str:
    """Decoded text of a message: text parts in order, HTML only when nothing else."""
    parts = [p for p in msg.walk() if not p.is_multipart()]
    texts = [p for p in parts if p.get_content_maintype() == "text"
             and p.get_content_subtype() != "html"]
    if not texts:
        texts = [p for p in parts if p.get_content_maintype() == "text"]
    out = [_part_text(p) for p in texts]
    return "\n".join(t if t.endswith("\n") or not t else t + "\n" for t in out)


def _part_text(part: email.message.Message) -> str:
    """Decode one part, falling back to UTF-8 when its charset is unknown."""
    try:
        text = part.get_content()
    except Exception:        # noqa: BLE001 - unknown charsets raise LookupError and worse
        payload = part.get_payload(decode=True)
        text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    if not isinstance(text, str):
        text = text.decode("utf-8", "replace") if isinstance(text, bytes) else ""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _in_body_headers(body: str) -> tuple[str, dict[str, str | None]]:
    """Take "From:"/"Subject:"/"Date:" lines at the top of a body, as git am does."""
    lines = body.split("\n")
    found: dict[str, str | None] = {}
    i = 0
    while i < len(lines):
        m = re.match(r"^(From|Subject|Date):\s*(.*)$", lines[i])
        if not m:
            break
        found[m.group(1).lower()] = m.group(2).strip() or None
        i += 1
    if not found or (i < len(lines) and lines[i].strip()):
        return body, {}
    return "\n".join(lines[i:]).strip("\n"), found


# -- other forms ----------------------------------------------------------------

def _make_plain(text: str, name: str) -> Mail:
    """A bare diff: the file name is the subject."""
    body, diff = split_body(text)
    return _make(name, None, None, None, body, diff, text)


def _from_git_show(text: str, name: str) -> Mail:
    """``git show`` / ``git log -p`` output: Author/Date headers, indented message."""
    lines = text.lstrip("\n").split("\n")
    headers: dict[str, str] = {}
    i = 1
    while i < len(lines) and lines[i].strip():
        key, _, value = lines[i].partition(":")
        headers[key.strip().lower()] = value.strip()
        i += 1
    message, rest = [], lines[i:]
    j = 0
    while j < len(rest) and (rest[j].startswith("    ") or not rest[j].strip()):
        message.append(rest[j][4:])
        j += 1
    msg_lines = "\n".join(message).strip("\n").split("\n")
    subject = msg_lines[0].strip() or name
    body_msg = "\n".join(msg_lines[1:]).strip("\n")
    _, diff = split_body("\n".join(rest[j:]))
    return _make(subject, None, headers.get("author"), headers.get("date"),
                 body_msg, diff, text)


def _from_archive(text: str, name: str) -> Mail:
    """A web-archive page as text: subject line, From/Date lines, message, diff."""
    lines = text.split("\n")
    i = 0
    while i < len(lines) and not lines[i].strip():
        i += 1
    subject = lines[i].strip() if i < len(lines) else ""
    found: dict[str, str] = {}
    i += 1
    while i < len(lines):
        m = _ARCHIVE_HEADER.match(lines[i].strip())
        if m:
            found.setdefault(m.group(1).lower(), m.group(2).strip())
        elif lines[i].strip():
            break
        i += 1
    body, diff = split_body("\n".join(lines[i:]))
    msgid = (found.get("message-id") or "").strip("<> ") or None
    return _make(subject or name, msgid, found.get("from") or None, found.get("date") or None,
                 body, diff, text)


# -- splitting the message from the diff ------------------------------------------

def _is_diff_start(line: str, following: str) -> bool:
    """Whether line opens a diff (mailinfo's patchbreak, minus the "---" separator)."""
    if line.startswith(("diff --git ", "diff -", "Index: ")):
        return True
    return line.startswith("--- ") and following.startswith("+++ ")


def split_body(text: str) -> tuple[str, str]:
    """Split a message into (commit message, diff); diff is "" when there is none."""
    lines = text.split("\n")
    body_end = diff_start = None
    for i, line in enumerate(lines):
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if _is_diff_start(line, nxt):
            diff_start = i
            break
        if body_end is None and line.rstrip() == "---":
            body_end = i            # the format-patch separator before the diffstat
    if body_end is None:
        body_end = diff_start if diff_start is not None else len(lines)
    body = "\n".join(lines[:body_end]).strip("\n")
    if diff_start is None:
        return body, ""
    return body, _clean_diff(lines[diff_start:])


def _clean_diff(lines: list[str]) -> str:
    """Drop the "-- \\n2.x.y" signature and trailing empty lines."""
    lines = lines[:_signature_at(lines)]
    while lines and lines[-1] == "":
        lines.pop()
    return "\n".join(lines) + "\n" if lines else ""


def _signature_at(lines: list[str]) -> int:
    """Index of the signature line, or len(lines); one pass from the end.

    "-- " is the mail signature delimiter; a bare "--" (an archive dropped the
    space) counts only when a git version follows, as it could be a removed "-".
    A candidate with diff lines after it is a hunk line, not the signature.
    """
    next_text = ""
    for i in range(len(lines) - 1, -1, -1):
        line = lines[i]
        if line in ("-- ", "--") and (line == "-- " or _SIG_VERSION.match(next_text)):
            return i
        if line.startswith(("+", "-", "@@", "diff ")):
            return len(lines)
        if line.strip():
            next_text = line
    return len(lines)


# -- subject tags ---------------------------------------------------------------

def parse_tags(subject: str) -> tuple[str | None, int | None]:
    """The series index ("2/5") and version (2) from a subject's [PATCH ...] tags."""
    index: str | None = None
    version: int | None = None
    rest = _REPLY.sub("", subject)       # a reply still names the patch it answers
    while True:
        m = _TAGS.match(rest)
        if not m:
            break
        for word in m.group(1).split():
            vm = re.fullmatch(r"[vV](\d{1,4})", word)
            im = re.fullmatch(r"(\d{1,5})/(\d{1,5})", word)
            if vm and version is None:
                version = int(vm.group(1))
            elif im and index is None:
                index = f"{int(im.group(1))}/{int(im.group(2))}"
        rest = rest[m.end():]
    return index, version


def _make(subject: str, message_id: str | None, sender: str | None, date: str | None,
          body: str, diff: str, raw: str) -> Mail:
    subject = " ".join(subject.split())
    index, version = parse_tags(subject)
    return Mail(subject=subject, message_id=message_id, sender=sender, date=date,
                index=index, version=version, body=body, diff=diff, raw=raw)
