"""C front end: parse kernel C files function by function with pycparser, no compiler needed.

The front end knows nothing about VMX.  `parse_unit` preprocesses the text with a small
kernel shim (conditionals against a config, attributes and asm dropped, comments blanked,
every token kept on its line), splits it into top-level chunks and parses each alone, so
an unparseable function becomes a `Failure` and costs only itself.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    import pycparser.c_ast

__all__ = ("Call", "Function", "Failure", "Unit", "function_bodies", "function_spans",
           "parse_unit", "scan_calls")


@dataclass(frozen=True)
class Function:
    """A parsed function definition and where it sits in its file."""

    name: str
    node: "pycparser.c_ast.FuncDef"
    path: str
    start_line: int
    end_line: int


@dataclass(frozen=True)
class Failure:
    """A top-level chunk that could not be parsed."""

    name: str | None   # function name when known
    path: str
    line: int          # first line of the chunk
    message: str       # one line, pycparser's message without the file prefix


@dataclass
class Unit:
    """The parse of one file: its functions, other top-level nodes, and failures."""

    path: str
    functions: dict[str, Function] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    declarations: list[Any] = field(default_factory=list)


def parse_unit(text: str, path: str, config: Mapping[str, bool] | None = None) -> Unit:
    """Parse TEXT, the contents of PATH, under CONFIG (merged over the default config).

    Never raises: whatever cannot be parsed is reported in `Unit.failures`.
    """
    # pycparser is imported here, not at module level, to keep `import vmxlint.cfront` cheap.
    from vmxlint.cfront.parse import parse_unit as _parse_unit

    return _parse_unit(text, path, config)


@dataclass(frozen=True)
class Call:
    """A call found by `scan_calls`: who calls what, where, with which first argument."""

    function: str      # the enclosing function
    path: str
    line: int
    callee: str
    first_arg: str     # text of the first argument, whitespace removed


def scan_calls(text: str, path: str, callees: frozenset[str] | set[str]) -> list[Call]:
    """Calls of CALLEES in each function of TEXT, found without parsing the bodies.

    Cheap enough to run over every file of a directory: comments are blanked and the
    text is split into top-level chunks; a call inside a macro body is not seen.
    """
    import re

    from vmxlint.cfront.parse import chunk_name, split_chunks
    from vmxlint.cfront.preprocess import strip_comments

    if not any(c in text for c in callees):
        return []
    clean = strip_comments(text)
    call = re.compile(r"\b(" + "|".join(sorted(map(re.escape, callees))) + r")\s*\(\s*([^,()]*)")
    out: list[Call] = []
    for chunk in split_chunks(clean):
        if not chunk.is_function:
            continue
        body = clean[chunk.body:chunk.end]
        name = chunk_name(clean[chunk.start:chunk.end]) or "?"
        for m in call.finditer(body):
            line = chunk.line + clean.count("\n", chunk.start, chunk.body + m.start())
            out.append(Call(name, path, line, m.group(1), re.sub(r"\s+", "", m.group(2))))
    return out


def function_bodies(text: str) -> dict[str, str]:
    """Each function of TEXT with its body, comments blanked and whitespace removed."""
    import re

    from vmxlint.cfront.parse import chunk_name, split_chunks
    from vmxlint.cfront.preprocess import strip_comments

    clean = strip_comments(text)
    out: dict[str, str] = {}
    for chunk in split_chunks(clean):
        name = chunk_name(clean[chunk.start:chunk.end]) if chunk.is_function else None
        if name:
            out[name] = re.sub(r"\s+", "", clean[chunk.body:chunk.end])
    return out


def function_spans(text: str) -> dict[str, tuple[int, int]]:
    """Each function of TEXT with its first and last line, found without parsing."""
    from vmxlint.cfront.parse import chunk_name, split_chunks
    from vmxlint.cfront.preprocess import strip_comments

    clean = strip_comments(text)
    out: dict[str, tuple[int, int]] = {}
    for chunk in split_chunks(clean):
        name = chunk_name(clean[chunk.start:chunk.end]) if chunk.is_function else None
        if name:
            out[name] = (chunk.line, chunk.end_line)
    return out
