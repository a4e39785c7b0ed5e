"""Helpers shared by the fact sources: comment stripping, embedded tables, TOML output."""
from __future__ import annotations

import json
import re
from typing import Any, Callable, Generic, Sequence, TypeVar

from msgspec import Struct, field

from vmxlint.model_paths import model_dir

T = TypeVar("T")

_COMMENT_RE = re.compile(r"/\*.*?\*/|//[^\n]*|\"(?:\\.|[^\"\\\n])*\"|'(?:\\.|[^'\\\n])*'",
                         re.S)
IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
FIELD_NAME = r"[A-Z][A-Z0-9_]*"


def strip_comments(text: str) -> str:
    """Blank out C comments (keeping newlines, so line numbers survive); keep literals."""
    def repl(m: re.Match[str]) -> str:
        s = m.group(0)
        if s[0] in "\"'":
            return s
        return "".join("\n" if c == "\n" else " " for c in s)
    return _COMMENT_RE.sub(repl, text)


def braced_body(text: str, opener: str) -> str | None:
    """The text between the ``{`` that follows the regex ``opener`` and its matching ``}``."""
    m = re.search(opener, text)
    if m is None:
        return None
    start = text.find("{", m.end())
    if start < 0:
        return None
    depth = 0
    for i in range(start, len(text)):
        c = text[i]
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return text[start + 1:i]
    return text[start + 1:]     # unterminated: use what there is


class Loaded(Generic[T], Struct):
    """One fact source's data and where it came from."""

    data: T
    origin: str                       # tree-relative path, or "embedded:<file>"
    fallback: str | None = None       # set when the embedded table was used
    notes: list[str] = field(default_factory=list)


def read_embedded(name: str) -> tuple[dict[str, Any] | None, str | None]:
    """Parse ``rules/model/<name>``; (table, None) or (None, why it is unusable)."""
    from vmxlint.model import toml_data

    path = model_dir() / name
    try:
        return toml_data(path.read_bytes()), None
    except FileNotFoundError:
        return None, f"{path} is missing"
    except (OSError, ValueError) as exc:        # ValueError: not TOML, or not UTF-8
        return None, f"{path} is unusable ({exc})"


def load_source(tree: Any, paths: Sequence[str], parse: Callable[[str], tuple[T, list[str]]],
                embedded: Callable[[], tuple[T, str | None]], empty: str,
                what: str, toml_name: str) -> Loaded[T]:
    """Read the first of ``paths`` the tree has and parse it; else use the embedded table.

    ``parse`` returns (data, notes) and must not raise; empty data means the file
    yielded nothing.  ``empty`` says what was looked for, for the message.
    """
    for rel in paths:
        try:
            text = tree.read(rel)
        except Exception:               # an unreadable file counts as a missing one
            text = None
        if text is None:
            continue
        try:
            data, notes = parse(text)
        except Exception as exc:        # defensive: parsers are written not to raise
            data, notes = None, [f"{rel}: parser failed ({exc})"]
        if data:
            return Loaded(data, rel, None, notes)
        reason = f"{rel} has no {empty}"
        kept = notes or []
        break
    else:
        kept = []
        reason = (f"{paths[0]} not found" if len(paths) == 1
                  else " and ".join(paths) + " not found")
    data, problem = embedded()
    msg = f"{reason}: using the embedded {what}"
    if problem:
        msg += f" (but {problem}; the {what} is empty)"
    return Loaded(data, f"embedded:{toml_name}", msg, kept)


def table(doc: dict[str, Any] | None, key: str, kind: type) -> dict[str, Any]:
    """``doc[key]`` keeping only entries whose value is a ``kind`` (bool is not an int)."""
    if not isinstance(doc, dict):
        return {}
    tab = doc.get(key)
    if not isinstance(tab, dict):
        return {}
    return {k: v for k, v in tab.items()
            if isinstance(v, kind) and not (kind is int and isinstance(v, bool))}


def toml_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return f"0x{v:04x}"
    return json.dumps(str(v), ensure_ascii=False)   # a JSON string is a TOML basic string


def toml_doc(source: dict[str, str], tables: dict[str, dict[str, object]],
             header: str = "") -> str:
    """A TOML document: a comment header, ``[source]``, then the data tables in order."""
    out = [f"# {line}".rstrip() for line in header.splitlines()]
    if out:
        out.append("")
    out.append("[source]")
    out += [f"{k} = {toml_value(v)}" for k, v in source.items()]
    for name, tab in tables.items():
        out += ["", f"[{name}]"]
        out += [f"{k} = {toml_value(v)}" for k, v in tab.items()]
    return "\n".join(out) + "\n"
