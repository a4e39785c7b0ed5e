"""An edited function parsed again only where it changed, from its last version's tree.

A series edits a function a few statements at a time, and pycparser takes milliseconds
over a function of a hundred lines.  When this process parsed the function's last
version, the parser recorded where each block and each of its statements begins and ends
in the text (`Layout`).  A new version that differs from it within one block's statements
then needs only those statements parsed: they are parsed alone, after the function's
head and a line marker that puts them on their own line and column, and take the old
statements' place in a copy of the last tree, whose nodes after the difference are moved
to their new lines and columns (those before it are shared when the function did not
move).

The result is the tree a parse of the whole function gives.  Whatever could make the two
differ is parsed whole instead: a difference outside one block's statements (the head, a
brace), statements that start with ``else`` or end with a label (or follow a label that
ends a block), a name declared in the function that the parser would otherwise take for
a type (the statements parsed alone do not see the declarations before them), another
set of names the function's text shows to be types or calls, a typedef or a directive in
the function, a block pycparser reshaped (a switch's body), a parse error, or anything
unexpected.
"""
from __future__ import annotations

import re
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Callable

from msgspec import Struct

from vmxlint.textdiff import common_prefix, common_suffix

if TYPE_CHECKING:
    from vmxlint.cfront.parse import Piece

__all__ = ("parse", "clear")

MEMO = 64          # functions whose last version is kept, by path and name
_ELSE = re.compile(r"\s*else\b")
# Spans are offsets into the function's text (``Piece.src``).
Span = tuple[int, int]


class Layout(Struct):
    """Where a tree's blocks and statements are in its function's text, by node: each
    value holds the node, so that no other object can take its id."""

    blocks: dict[int, tuple[Any, Span]]    # Compound -> (after its '{', at its '}')
    items: dict[int, tuple[Any, Span]]     # block item -> its statement's first and end


class _Version(Struct):
    """The last parsed version of a function, and what its parse depended on."""

    src: str
    column: int
    line: int
    types: frozenset[str]
    names: tuple[frozenset[str], frozenset[str]]    # `parse.chunk_names` of src
    tree: Any
    # What the parser recorded, until a splice asks for the layout (a function parsed
    # whole and never edited again in the process, as in a check of one patch, costs
    # only the recording).
    record: list[tuple[Any, Any, Any]] | None = None
    laid: tuple[Layout, frozenset[str]] | None = None   # and every name declared in it

    def layout(self) -> tuple[Layout, frozenset[str]]:
        if self.laid is None:
            within, declared = _walk([self.tree])
            self.laid = (_layout(self.record or [], self.src, self.line, self.column,
                                 within), declared)
            self.record = None
        return self.laid


_lock = threading.Lock()
_versions: OrderedDict[tuple[str, str], _Version] = OrderedDict()


def clear() -> None:
    """Forget the versions kept."""
    with _lock:
        _versions.clear()


def parse(piece: "Piece", types: frozenset[str], path: str) -> tuple[list[Any], bool]:
    """The top-level nodes of a function piece (raises as pycparser does), and whether
    they were spliced from its last version rather than parsed whole."""
    from vmxlint.cfront.parse import _parser, chunk_names, parse_piece

    parser = _parser()
    parser.kernel_types = set(types)
    names = chunk_names(piece.src)
    if not parser.can_record or piece.name is None or "typedef" in piece.src \
            or "#" in piece.src:
        return parse_piece(parser, piece, path, names=names), False
    with _lock:
        last = _versions.get((path, piece.name))
    if last is not None and last.column == piece.chunk.column and last.types == types \
            and last.names == names:
        try:
            spliced = _splice(parser, last, piece, path, names)
        except Exception:   # noqa: BLE001 - whatever went wrong, the whole parse decides
            spliced = None
        if spliced is not None:
            _keep(path, piece, types, names, spliced[0], laid=spliced[1:])
            return [spliced[0]], True
    record: list[tuple[Any, Any, Any]] = []
    parser.record = record
    try:
        nodes = parse_piece(parser, piece, path, names=names)
    except Exception:
        parser.record = None
        # Recording wraps private methods of pycparser: when the same parse without it
        # succeeds, another version of pycparser broke them, and nothing is recorded again.
        nodes = parse_piece(parser, piece, path, names=names)
        parser.can_record = False
        return nodes, False
    finally:
        parser.record = None
    fn = _function(nodes, piece.name)
    if fn is not None:
        _keep(path, piece, types, names, fn, record=record)
    return nodes, False


def _function(nodes: list[Any], name: str) -> Any:
    from pycparser import c_ast

    if len(nodes) == 1 and type(nodes[0]) is c_ast.FuncDef and nodes[0].decl.name == name:
        return nodes[0]
    return None


def _keep(path: str, piece: "Piece", types: frozenset[str],
          names: tuple[frozenset[str], frozenset[str]], tree: Any, **made: Any) -> None:
    version = _Version(piece.src, piece.chunk.column, piece.chunk.line, types, names, tree,
                       **made)
    with _lock:
        _versions[(path, piece.name)] = version       # type: ignore[index]
        _versions.move_to_end((path, piece.name))     # type: ignore[arg-type]
        while len(_versions) > MEMO:
            _versions.popitem(last=False)


# -- what the parser recorded ----------------------------------------------------------------

def _layout(record: list[tuple[Any, Any, Any]], src: str, first: int, column: int,
            within: set[int], skip: Callable[[int], bool] = lambda offset: False) -> Layout:
    """The layout of a parse of SRC (a piece's text, from line FIRST and COLUMN) from the
    parser's record, for the nodes WITHIN the tree (the parser backtracks: a node it made
    may not be in it); a token's offset comes from its line and column.  SKIP leaves out
    the blocks that open at an offset."""
    from pycparser import c_ast

    starts = [0]
    at = src.find("\n")
    while at >= 0:
        starts.append(at + 1)
        at = src.find("\n", at + 1)

    def offset(tok: Any) -> int:
        rel = tok.lineno - first
        return starts[rel] + tok.column - 1 - (column if rel == 0 else 0)

    blocks: dict[int, tuple[Any, Span]] = {}
    items: dict[int, tuple[Any, Span]] = {}
    for made, head, last in record:
        if type(made) is c_ast.Compound and head.type == "LBRACE":
            opens = offset(head) + 1
            if id(made) in within and not skip(opens):
                blocks[id(made)] = (made, (opens, offset(last)))
            continue
        span = (offset(head), offset(last) + len(last.value))
        for node in (made if isinstance(made, list) else [made]):
            if node is not None and id(node) in within:
                items[id(node)] = (node, span)
    return Layout(blocks, items)


def _walk(nodes: list[Any]) -> tuple[set[int], frozenset[str]]:
    """The ids of NODES and all below them, and the names declared there (variables,
    parameters, enumerators, typedefs)."""
    from pycparser import c_ast

    seen: set[int] = set()
    names: set[str] = set()
    todo = list(nodes)
    while todo:
        n = todo.pop()
        seen.add(id(n))
        if type(n) in (c_ast.Decl, c_ast.Enumerator, c_ast.Typedef) and n.name:
            names.add(n.name)
        todo.extend(child for _, child in n.children())
    return seen, frozenset(names)


# -- the splice ------------------------------------------------------------------------------

class _Cut(Struct):
    """The statements of one block that the difference lies among."""

    block: Any              # the Compound
    opens: int              # its span
    closes: int
    start: int              # the old text from start to end holds them (and only them)
    end: int
    before: list[Any]       # its items before them, and after
    after: list[Any]


def _splice(parser: Any, last: _Version, piece: "Piece", path: str,
            names: tuple[frozenset[str], frozenset[str]],
            ) -> tuple[Any, Layout, frozenset[str]] | None:
    from vmxlint.cfront.parse import _looks_like_type, line_marker, parse_piece

    old, new = last.src, piece.src
    body = piece.chunk.body - piece.chunk.start
    same = common_prefix(old, new)
    if same <= body or old == new:
        return None
    tail = min(common_suffix(old, new), len(old) - same, len(new) - same)
    shift = len(new) - len(old)
    layout, declared_before = last.layout()
    cut = _cut(layout, same, len(old) - tail)
    if cut is None:
        return None
    region = new[cut.start:cut.end + shift]
    row = new.count("\n", 0, cut.start)
    # The statements before and after the region ended where they did because of what
    # followed them: an `if` without `else`, a label before a '}' (C23; pycparser takes
    # it).  The statements parsed alone are followed by '}' alone.
    if row == 0 or _ELSE.match(region) or region.rstrip().endswith(":") \
            or new[:cut.start].rstrip().endswith(":"):
        return None
    column = cut.start - new.rfind("\n", 0, cut.start) - 1
    skeleton = new[:body + 1] + "\n" + line_marker(piece.chunk.line + row, path) \
        + " " * column + region + "\n}"
    record: list[tuple[Any, Any, Any]] = []
    parser.record = record
    try:
        nodes = parse_piece(parser, piece, path, text=skeleton, names=names)
    finally:
        parser.record = None
    fn = _function(nodes, piece.name or "")
    if fn is None:
        return None
    made = list(fn.body.block_items or [])
    within, named = _walk(made)
    declared = declared_before | named
    types, calls = names
    if any(n in parser.kernel_types or n in types or (_looks_like_type(n) and n not in calls)
           for n in declared):
        return None     # a declaration the statements parsed alone did not see might count
    move = _Mover(last, piece, len(old) - tail, shift)
    tree, rebuilt = _rebuild(last.tree, cut, made, move,
                             empty=not new[cut.opens:cut.closes + shift].strip())
    if tree is None:
        return None
    # The new statements' own blocks and items, from the parse of the skeleton (the
    # skeleton's body block is the spliced block's, made below).
    fresh = _layout(record, new, piece.chunk.line, piece.chunk.column, within,
                    skip=lambda at: at == body + 1)
    return tree, _moved_layout(layout, cut, fresh, move, rebuilt), declared


def _cut(layout: Layout, start: int, end: int) -> _Cut | None:
    """The innermost block whose statements hold the old text from START to END, with
    the statements around it, or None when no block does."""
    holding = sorted(((node, span) for node, span in layout.blocks.values()
                      if span[0] <= start and end <= span[1]), key=lambda b: b[1][0])
    for block, (opens, closes) in reversed(holding):
        items = block.block_items or []
        spans = [layout.items.get(id(n)) for n in items]
        if any(s is None or s[0] is not n for s, n in zip(spans, items)):
            continue        # reshaped after the parse (a switch's cases): not its statements
        lo = max([opens] + [s[1][1] for s in spans if s[1][1] <= start])   # type: ignore
        hi = min([closes] + [s[1][0] for s in spans if s[1][0] >= end])    # type: ignore
        before = [n for n, s in zip(items, spans) if s[1][1] <= lo]        # type: ignore
        after = [n for n, s in zip(items, spans) if s[1][0] >= hi]         # type: ignore
        if items[:len(before)] != before or (after and items[-len(after):] != after):
            continue
        return _Cut(block, opens, closes, lo, hi, before, after)
    return None


class _Mover:
    """Moves the nodes of the last tree to where their text is in the new version: those
    before the difference by the lines the function moved, those after it also by the
    lines (and, on the difference's last line, the columns) the edit added."""

    def __init__(self, last: _Version, piece: "Piece", end: int, shift: int) -> None:
        from pycparser.c_parser import Coord

        self.coord = Coord
        old, new = last.src, piece.src
        self.shift = shift
        self.moved = piece.chunk.line - last.line
        self.first = last.line
        self.row = old.count("\n", 0, end)        # the old difference's last line
        self.rows = new.count("\n", 0, end + shift) - self.row
        self.columns = (end + shift - new.rfind("\n", 0, end + shift)) \
            - (end - old.rfind("\n", 0, end))
        self.copies: dict[int, Any] = {}        # id of an old node -> its copy
        self._coords: dict[tuple[bool, int, int | None], Any] = {}

    def before(self, node: Any) -> Any:
        return node if self.moved == 0 else self._copy(node, False)

    def after(self, node: Any) -> Any:
        return self._copy(node, True)

    def _place(self, c: Any, after: bool) -> Any:
        if c is None:
            return None
        key = (after, c.line, c.column)
        hit = self._coords.get(key)
        if hit is None:
            line, column = c.line + self.moved, c.column
            if after:
                if c.line - self.first == self.row and column is not None:
                    column += self.columns
                line += self.rows
            hit = self._coords[key] = self.coord(c.file, line, column)
        return hit

    def _copy(self, node: Any, after: bool) -> Any:
        from vmxlint.cfront.astcache import _schema

        schema, new, copies = _schema(), object.__new__, self.copies
        # An explicit stack, not a recursive closure (a reference cycle the collector
        # would have to find): each node is made, then its children are filled in.
        root = new(schema[type(node).__name__][0])
        todo = [(node, root)]
        while todo:
            n, out = todo.pop()
            cls, slots, kids = schema[type(n).__name__]
            out.coord = self._place(n.coord, after)
            for slot, child in zip(slots, kids):
                v = getattr(n, slot)
                if v is None or type(v) is str:
                    pass
                elif child:
                    if type(v) is list:
                        made = [new(schema[type(x).__name__][0]) for x in v]
                        todo.extend(zip(v, made))
                        v = made
                    else:
                        made = new(schema[type(v).__name__][0])
                        todo.append((v, made))
                        v = made
                elif type(v) is list:
                    v = list(v)
                setattr(out, slot, v)
            copies[id(n)] = out
        return root


def _rebuild(root: Any, cut: _Cut, made: list[Any], move: _Mover,
             empty: bool) -> tuple[Any, dict[int, Any]]:
    """A copy of ROOT with CUT's statements replaced by MADE, and the nodes rebuilt on
    the way to the block (old id -> new node)."""
    from pycparser import c_ast

    from vmxlint.cfront.astcache import _schema

    path = _path_to(root, cut.block)
    if path is None:
        return None, {}
    schema = _schema()
    rebuilt: dict[int, Any] = {}
    items = [move.before(n) for n in cut.before] + made + [move.after(n) for n in cut.after]
    child: Any = c_ast.Compound(block_items=None if empty else items,
                                coord=move._place(cut.block.coord, False))
    rebuilt[id(cut.block)] = child
    for parent, on in zip(reversed(path[:-1]), reversed(path[1:])):
        cls, slots, kids = schema[type(parent).__name__]
        out = object.__new__(cls)
        out.coord = move._place(parent.coord, False)
        seen = False
        for slot, kid in zip(slots, kids):
            v = getattr(parent, slot)
            if v is None or type(v) is str:
                pass
            elif kid and type(v) is list:
                done = []
                for x in v:
                    if x is on:
                        done.append(child)
                        seen = True
                    else:
                        done.append(move.after(x) if seen else move.before(x))
                v = done
            elif kid and v is on:
                v, seen = child, True
            elif kid:
                # Slots are in the order of the text but a do-while's condition.
                late = seen or (type(parent) is c_ast.DoWhile and slot == "cond")
                v = move.after(v) if late else move.before(v)
            elif type(v) is list:
                v = list(v)
            setattr(out, slot, v)
        rebuilt[id(parent)] = out
        child = out
    return child, rebuilt


def _path_to(root: Any, target: Any) -> list[Any] | None:
    """The nodes from ROOT down to TARGET."""
    stack: list[tuple[Any, list[Any]]] = [(root, [root])]
    while stack:
        node, path = stack.pop()
        if node is target:
            return path
        stack.extend((c, path + [c]) for _, c in node.children())
    return None


def _moved_layout(layout: Layout, cut: _Cut, fresh: Layout, move: _Mover,
                  rebuilt: dict[int, Any]) -> Layout:
    """The layout of the spliced tree: the last one's, moved, without the statements
    replaced, with those parsed (FRESH)."""
    blocks, items = dict(fresh.blocks), dict(fresh.items)
    for table, out in ((layout.blocks, blocks), (layout.items, items)):
        for key, (node, (a, b)) in table.items():
            if key in rebuilt:                  # holding the statements: its end moves
                n = rebuilt[key]
                out[id(n)] = (n, (a, b + move.shift))
            elif b <= cut.start:                # before them
                n = move.copies.get(key, node)
                out[id(n)] = (n, (a, b))
            elif a >= cut.end:                  # after them
                n = move.copies[key]
                out[id(n)] = (n, (a + move.shift, b + move.shift))
    return Layout(blocks, items)
