"""A per-function AST cache: pycparser trees as plain JSON data, positions relative.

The key covers everything a function piece's parse depends on: the text fed to pycparser,
its column, the type names known at its position, pycparser's version, the package's code
and the shim; not its line.  Lines are stored relative to the piece's first line and
re-based on load, so an edit above a function (which only moves it) still hits.

Three levels: the trees already built in this process (shared between units when the
function sits on the same line of the same path: the pre- and post-image of a patch),
the encoded trees of this process (re-based into new nodes), and `vmxlint.cache` on
disk (``VMXLINT_NO_CACHE=1`` turns that off).  An entry is data only: a node is
``[class name, line - first line, column, value of each slot...]``, classes are looked
up by name among `pycparser.c_ast`'s node classes, only their slots are set, and any
shape that is not exactly what `encode` writes is a miss.
"""
from __future__ import annotations

import contextlib
import functools
import gc
import hashlib
import json
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Callable

from msgspec import Struct, structs

from vmxlint.memo import LazyPattern

if TYPE_CHECKING:
    from pycparser import c_ast

    from vmxlint.cfront import Failure
    from vmxlint.cfront.parse import Piece

__all__ = ("Stats", "stats", "parse_function", "encode", "decode", "clear", "flush",
           "in_process_only")

FORMAT = "vmxlint-ast 1"
MEMO_SIZE = 1024           # trees (and encoded trees) kept in process, each
# Disk writes are batched (one eviction pass per batch), mostly into one at the end of
# the run, which `vmxlint.cache.finish` may hand to a process of its own.
FLUSH_AT = 256


class Stats(Struct):
    """How the function trees asked of the cache were found (counters, for tests and
    benchmarks)."""

    shared: int = 0      # the very tree of an earlier unit (same key, path and line)
    memo: int = 0        # rebuilt from an encoding kept in this process
    disk: int = 0        # rebuilt from a disk entry
    parsed: int = 0      # parsed by pycparser (a miss)
    spliced: int = 0     # of those, parsed where an edit changed the last version

    @property
    def hits(self) -> int:
        return self.shared + self.memo + self.disk


stats = Stats()
_lock = threading.Lock()
_trees: OrderedDict[tuple[str, str, int], Any] = OrderedDict()
# key -> the encoded tree, or (tree, path, line) until a load at another line needs it
_encoded: OrderedDict[str, Any] = OrderedDict()
_pending: list[tuple[str, Any, str, int]] = []   # trees parsed, not yet on disk
_registered = False


_local = threading.local()


@contextlib.contextmanager
def in_process_only() -> Any:
    """Within, the trees parsed are kept in this process and not written to the disk cache
    (this thread's parses): those of the images of a series after its first, the functions
    its patches edit, which the next patch or version of the series edits again."""
    before = getattr(_local, "only", False)
    _local.only = True
    try:
        yield
    finally:
        _local.only = before


class Uncacheable(Exception):
    """A tree `encode` cannot write as data (never expected of pycparser's output)."""


def clear() -> None:
    """Forget the trees kept in this process (the disk cache stays) and reset `stats`;
    the pieces and the parses of other pieces kept in process go too."""
    from vmxlint.cfront import lazy, parse, preprocess, reparse

    with _lock:
        _trees.clear()
        _encoded.clear()
        _failures.clear()
        for name in Stats.__struct_fields__:     # in place: callers hold the object
            setattr(stats, name, 0)
    parse.clear_memo()
    lazy.clear_memo()
    preprocess.clear_memo()
    reparse.clear()


# -- the key ---------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def fixed_part() -> str:
    """Digest of what every key shares: format, pycparser, the package's code, the shim."""
    import pycparser

    from vmxlint import cache
    from vmxlint.cfront.parse import SHIM

    shim = SHIM.read_text(encoding="utf-8")
    return cache.key(FORMAT, pycparser.__version__, cache.code_digest(),
                     hashlib.sha256(shim.encode()).hexdigest())


@functools.lru_cache(maxsize=64)
def types_digest(types: frozenset[str]) -> str:
    # A unit hands the same frozenset to every piece between two typedefs: sort it once.
    return hashlib.sha256("\n".join(sorted(types)).encode()).hexdigest()


def key_of(piece: "Piece", types: frozenset[str], scope_hook: bool) -> str:
    """The cache key of a function piece parsed under TYPES (its line is not in it)."""
    from vmxlint import cache

    return cache.key(fixed_part(), types_digest(types), "hook" if scope_hook else "prelude",
                     str(piece.chunk.column), piece.src)


# -- parse through the cache -----------------------------------------------------------------

def parse_function(piece: "Piece", types: frozenset[str], path: str,
                   parse: Callable[["Piece", frozenset[str], str], tuple[list[Any], bool]],
                   ) -> "list[Any] | Failure":
    """The top-level nodes of a function piece, or its `Failure`: from the cache when it
    holds the piece's tree, else from `parse(piece, types, path)`, which also says whether
    it spliced them from the function's last version (`vmxlint.cfront.reparse`).  A tree
    parsed whole is stored; a spliced one is only kept in process: it was an edit of a
    function parsed in this process, which the next edit changes again, and making it
    costs less than its disk entry."""
    from pycparser import c_ast

    from vmxlint.cfront import Failure
    from vmxlint.cfront.parse import _message, _parser

    k = key_of(piece, types, bool(_parser().uses_scope_hook))
    line = piece.chunk.line
    node = _load(k, path, line)
    if node is not None:
        return [node]
    with _lock:
        failed = _failures.get((k, path))
    if failed is not None:
        stats.shared += 1
        return _moved_failure(failed[1], failed[0], line)
    try:
        nodes, spliced = parse(piece, types, path)
    except Exception as exc:  # as the eager parse: the failure costs only this piece
        stats.parsed += 1
        failure = Failure(piece.name, path, line, _message(exc, path))
        with _lock:
            _failures[k, path] = (line, failure)
            while len(_failures) > MEMO_SIZE:
                _failures.popitem(last=False)
        return failure
    stats.parsed += 1
    if spliced:
        stats.spliced += 1
    # Only a lone definition is cached: anything else is not what a function piece gives.
    if len(nodes) == 1 and type(nodes[0]) is c_ast.FuncDef:
        if spliced or getattr(_local, "only", False):
            _remember(k, path, line, (nodes[0], path, line), nodes[0])
        else:
            _store(k, nodes[0], path, line)
    return nodes


# (key, path) -> the line a piece that failed to parse was on, and its failure: the same
# text fails the same way on any line (a series re-asks a function another patch broke).
_failures: OrderedDict[tuple[str, str], tuple[int, "Failure"]] = OrderedDict()
_AT_LINE = LazyPattern(r"(\d+)(:\d+:)")


def _moved_failure(failure: "Failure", first: int, line: int) -> "Failure":
    """FAILURE of a piece parsed on line FIRST as it reads for the piece on LINE: the
    parser's message starts with the line of the error, which moves with the piece."""
    if line == first:
        return failure
    m = _AT_LINE.match(failure.message)
    message = failure.message if m is None else \
        f"{int(m.group(1)) + line - first}{failure.message[m.end(1):]}"
    return structs.replace(failure, line=line, message=message)


def _load(k: str, path: str, line: int) -> "c_ast.FuncDef | None":
    from vmxlint import cache

    with _lock:
        tree = _trees.get((k, path, line))
        if tree is not None:
            _trees.move_to_end((k, path, line))
            stats.shared += 1
            return tree
        data = _encoded.get(k)
        if data is not None:
            _encoded.move_to_end(k)
    level = "memo"
    if data is None:
        data, level = _from_entry(cache.get(k, list)), "disk"
    elif type(data) is tuple:
        # Kept as the tree it was parsed as: encoded only now that another line wants it.
        data = _encode_or_none(*data)
    if data is None:
        return None
    tree = _decode_or_none(data, path, line)
    if tree is None:
        return None
    setattr(stats, level, getattr(stats, level) + 1)
    _remember(k, path, line, data, tree)
    return tree


def defines(piece: "Piece", types: frozenset[str], name: str) -> bool:
    """Whether the cache holds the piece's tree (parsed under TYPES) and it defines NAME:
    then a parse of the piece gives that one definition, which is all a caller asking
    whether the function parses needs.  No tree is built: the encoding is read as far
    as the definition's name, and kept for a load that wants the tree."""
    from vmxlint import cache
    from vmxlint.cfront.parse import _parser

    k = key_of(piece, types, bool(_parser().uses_scope_hook))
    with _lock:
        data = _encoded.get(k)
    if type(data) is tuple:         # a tree parsed in this process, not yet encoded
        return _named(data[0], name)
    if data is None:
        data = _from_entry(cache.get(k, list))
        if data is None:
            return False
        with _lock:
            _encoded.setdefault(k, data)
            while len(_encoded) > MEMO_SIZE:
                _encoded.popitem(last=False)
    return _encoded_name(data) == name


def _named(tree: Any, name: str) -> bool:
    from pycparser import c_ast

    return type(tree) is c_ast.FuncDef and tree.decl is not None and tree.decl.name == name


def _encoded_name(data: Any) -> str | None:
    """The name a function definition's encoding defines, or None (any other shape)."""
    schema = _schema()
    try:
        head = schema["FuncDef"][1]
        if data[0] != "FuncDef" or len(data) != 3 + len(head):
            return None
        decl = data[3 + head.index("decl")]
        if decl[0] != "Decl" or len(decl) != 3 + len(schema["Decl"][1]):
            return None
        found = decl[3 + schema["Decl"][1].index("name")]
    except (TypeError, IndexError, KeyError, ValueError):
        return None
    return found if type(found) is str else None


def _store(k: str, tree: "c_ast.FuncDef", path: str, line: int) -> None:
    global _registered
    _remember(k, path, line, (tree, path, line), tree)
    with _lock:
        _pending.append((k, tree, path, line))
        if not _registered:
            from vmxlint import cache

            cache.at_exit(flush, pending=lambda: len(_pending))
            _registered = True
        full = len(_pending) >= FLUSH_AT
    if full:
        flush()


def flush() -> None:
    """Write the trees parsed since the last flush to the disk cache (unless it is off)."""
    from vmxlint import cache

    with _lock:
        items = list(_pending)
        _pending.clear()
    if not items or cache.cache_dir() is None:
        return
    entries = []
    for k, tree, path, line in items:
        data = _encode_or_none(tree, path, line)
        if data is not None:
            # The data goes in as one JSON string: `vmxlint.cache` then checks one str,
            # not every list of the tree, and `json.loads` rebuilds it in C.
            entries.append((k, [FORMAT, json.dumps(data, separators=(",", ":"))]))
    cache.put_many(entries)


def _remember(k: str, path: str, line: int, data: Any, tree: Any) -> None:
    with _lock:
        if type(data) is list or k not in _encoded:
            _encoded[k] = data
        _trees[(k, path, line)] = tree
        for memo in (_encoded, _trees):
            while len(memo) > MEMO_SIZE:
                memo.popitem(last=False)  # type: ignore[attr-defined]


def _encode_or_none(tree: Any, path: str, line: int) -> list[Any] | None:
    try:
        return encode(tree, path, line)
    except (Uncacheable, RecursionError):
        return None


def _from_entry(value: Any) -> list[Any] | None:
    """The encoded tree in a disk entry's value, or None when it is not one."""
    if not (isinstance(value, list) and len(value) == 2 and value[0] == FORMAT
            and isinstance(value[1], str)):
        return None
    try:
        data = json.loads(value[1])
    except (ValueError, RecursionError):
        return None
    return data if isinstance(data, list) else None


# -- encoding ----------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _schema() -> dict[str, tuple[type, tuple[str, ...], tuple[bool, ...]]]:
    """Node classes of `pycparser.c_ast` by name: (class, slots, which slots are children)."""
    from pycparser import c_ast

    out = {}
    for name, cls in vars(c_ast).items():
        if not (isinstance(cls, type) and issubclass(cls, c_ast.Node) and cls is not c_ast.Node):
            continue
        all_slots = getattr(cls, "__slots__", ())
        if name != cls.__name__ or "coord" not in all_slots:
            continue
        slots = tuple(s for s in all_slots if s not in ("coord", "__weakref__"))
        attrs = set(getattr(cls, "attr_names", ()))
        out[name] = (cls, slots, tuple(s not in attrs for s in slots))
    return out


def encode(tree: "c_ast.Node", path: str, first: int) -> list[Any]:
    """TREE as JSON data, lines relative to FIRST; raises `Uncacheable` on anything that
    would not come back identical (a coord in another file, a value that is not data)."""
    from pycparser.c_parser import Coord

    schema = _schema()

    def node(n: Any) -> list[Any]:
        name = type(n).__name__
        spec = schema.get(name)
        if spec is None or spec[0] is not type(n):
            raise Uncacheable(name)
        c = n.coord
        if c is None:
            out: list[Any] = [name, None, None]
        elif type(c) is Coord and c.file == path and type(c.line) is int \
                and (c.column is None or type(c.column) is int):
            out = [name, c.line - first, c.column]
        else:
            raise Uncacheable(f"coord of {name}")
        for slot, child in zip(spec[1], spec[2]):
            v = getattr(n, slot)
            if v is None or (type(v) is str and not child):
                out.append(v)
            elif child and type(v) is list:
                out.append([node(x) for x in v])
            elif child:
                out.append(node(v))
            elif type(v) is list and all(type(x) is str for x in v):
                out.append(v)
            else:
                raise Uncacheable(f"{name}.{slot}")
        return out

    try:
        return node(tree)
    finally:
        # A recursive closure is a reference cycle: unbound, none is left to the collector.
        node = None  # type: ignore[assignment]


def _decode_or_none(data: Any, path: str, first: int) -> "c_ast.FuncDef | None":
    from pycparser import c_ast

    # A tree has no cycles: the collector would only walk the nodes being made, again
    # and again (a third of the time of a load).
    paused = gc.isenabled()
    gc.disable()
    try:
        tree = decode(data, path, first)
    except Exception:  # noqa: BLE001 - whatever is wrong with an entry, parse instead
        return None
    finally:
        if paused:
            gc.enable()
    return tree if type(tree) is c_ast.FuncDef else None


class _Bad(Exception):
    """Data that `encode` cannot have written."""


def decode(data: Any, path: str, first: int) -> "c_ast.Node":
    """The tree `encode` wrote as DATA, its lines re-based on FIRST and its file PATH.

    Raises on any shape `encode` does not write."""
    from pycparser.c_parser import Coord

    schema = _schema()
    coords: dict[tuple[int, int | None], Any] = {}
    new = object.__new__

    def node(v: Any) -> Any:
        if type(v) is not list or len(v) < 3:
            raise _Bad("node")
        spec = schema.get(v[0]) if type(v[0]) is str else None
        if spec is None or len(v) != 3 + len(spec[1]):
            raise _Bad("class")
        cls, slots, kids = spec
        n = new(cls)
        line, col = v[1], v[2]
        if line is None:
            if col is not None:
                raise _Bad("coord")
            n.coord = None
        else:
            if type(line) is not int or not (col is None or type(col) is int):
                raise _Bad("coord")
            # Coords are equal by value; one object per position keeps a load cheap.
            c = coords.get((line, col))
            if c is None:
                c = coords[(line, col)] = Coord(path, first + line, col)
            n.coord = c
        i = 3
        for slot, child in zip(slots, kids):
            x = v[i]
            i += 1
            if x is None or (type(x) is str and not child):
                pass
            elif type(x) is not list:
                raise _Bad(slot)
            elif not child:
                if not all(type(s) is str for s in x):
                    raise _Bad(slot)
                x = list(x)   # a tree of its own: nothing shared with the encoding
            elif x and type(x[0]) is str:
                x = node(x)
            else:
                x = [node(y) for y in x]
            setattr(n, slot, x)
        return n

    try:
        return node(data)
    finally:
        node = None  # type: ignore[assignment]  # as in encode
