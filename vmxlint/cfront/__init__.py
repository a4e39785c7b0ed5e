"""C front end: parse kernel C files function by function with pycparser, no compiler needed.

The front end knows nothing about VMX.  `parse_unit` preprocesses the text with a small
kernel shim (conditionals against a config, attributes and asm dropped, comments blanked,
every token kept on its line), splits it into top-level chunks and parses each alone, so
an unparseable function becomes a `Failure` and costs only itself.
"""
from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Mapping

from msgspec import Struct

if TYPE_CHECKING:
    import pycparser.c_ast

__all__ = ("Call", "Function", "Failure", "Unit", "function_bodies", "function_spans", "recall",
           "parse_unit", "scan_calls")


class Function(Struct, frozen=True):
    """A parsed function definition and where it sits in its file."""

    name: str
    node: "pycparser.c_ast.FuncDef"
    path: str
    start_line: int
    end_line: int


class Failure(Struct, frozen=True):
    """A top-level chunk that could not be parsed."""

    name: str | None   # function name when known
    path: str
    line: int          # first line of the chunk
    message: str       # one line, pycparser's message without the file prefix


class Unit:
    """The parse of one file: its functions, other top-level nodes, and failures.

    A lazy unit (``parse_unit(..., lazy=True)``) parses a function when it is first looked
    up in `functions`; reading `failures` parses the rest, `failure(name)` only that name.
    """

    def __init__(self, path: str, functions: Mapping[str, Function] | None = None,
                 failures: list[Failure] | None = None, declarations: list[Any] | None = None,
                 ) -> None:
        self.path = path
        self.functions: Mapping[str, Function] = {} if functions is None else functions
        self._failures: list[Failure] = [] if failures is None else failures
        self.declarations: list[Any] = [] if declarations is None else declarations
        self._spans: dict[str, tuple[int, int]] = {}
        self._lazy: Any = None     # the parse state of a lazy unit, else None

    def __repr__(self) -> str:
        kind = "lazy " if self._lazy is not None else ""
        return f"<{kind}Unit {self.path!r}: {len(self._spans)} function chunks>"

    @property
    def failures(self) -> list[Failure]:
        """The chunks that did not parse, in file order (a lazy unit parses all for this)."""
        if self._lazy is not None:
            return self._lazy.failures()
        return self._failures

    @failures.setter
    def failures(self, value: list[Failure]) -> None:
        self._failures = value

    def failure(self, name: str) -> Failure | None:
        """The first failure of a chunk named NAME, parsing only the chunks of that name."""
        if self._lazy is not None:
            return self._lazy.failure(name)
        return next((f for f in self._failures if f.name == name), None)

    def spans(self) -> dict[str, tuple[int, int]]:
        """Each function chunk's name with its first and last line (the first chunk of a
        name), from the chunking alone: no function is parsed for this."""
        return dict(self._spans)

    def record_span(self, name: str, first: int, last: int) -> None:
        self._spans.setdefault(name, (first, last))


def parse_unit(text: str, path: str, config: Mapping[str, bool] | None = None, *,
               lazy: bool = False) -> Unit:
    """Parse TEXT, the contents of PATH, under CONFIG (merged over the default config).

    Never raises: whatever cannot be parsed is reported in `Unit.failures`.  LAZY parses
    each function when it is first looked up (and takes its tree from the AST cache); the
    results are those of the eager parse.
    """
    # pycparser is imported here, not at module level, to keep `import vmxlint.cfront` cheap.
    if lazy:
        from vmxlint.cfront.lazy import parse_lazy

        return parse_lazy(text, path, config)
    from vmxlint.cfront.parse import parse_unit as _parse_unit

    return _parse_unit(text, path, config)


def recall(text: str, config: Mapping[str, bool] | None = None) -> None:
    """Make TEXT's preprocessing and split, as an earlier process kept them, the ones the
    next text parsed is made from (a patch's post-image from its pre-image's)."""
    from vmxlint.cfront.parse import recall as _recall

    _recall(text, config)


class Call(Struct, frozen=True):
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
    return dict(_function_spans(text))


@functools.lru_cache(maxsize=8)
def _function_spans(text: str) -> dict[str, tuple[int, int]]:
    # Kept for the last few texts: every finding of a patch asks about the same post-image.
    from vmxlint.cfront.parse import chunk_name, split_chunks
    from vmxlint.cfront.preprocess import strip_comments

    clean = strip_comments(text)
    out: dict[str, tuple[int, int]] = {}
    for chunk in split_chunks(clean):
        name = chunk_name(clean[chunk.start:chunk.end]) if chunk.is_function else None
        if name:
            out[name] = (chunk.line, chunk.end_line)
    return out
