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

__all__ = ("Function", "Failure", "Unit", "parse_unit")


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
