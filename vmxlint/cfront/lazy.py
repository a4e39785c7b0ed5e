"""Lazy parsing: functions are parsed when first looked up, with the eager parse's results.

The parser is stateful across chunks: typedef names declared earlier (even by a typedef
that fails) are type names for the chunks after them.  So the pieces that may teach names
or whose name is uncertain are parsed up front, in order, exactly as the eager parse
does; every other function piece keeps the set of type names known at its position and
is parsed (or loaded from the AST cache) on demand with that set.
"""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Iterator, Mapping

from vmxlint.cfront import Failure, Function, Unit
from vmxlint.cfront.parse import (Piece, _parser, pieces, run, shim_type_names,
                                  skipped)
from vmxlint.memo import LazyPattern, kept

if TYPE_CHECKING:
    from pycparser import c_ast

__all__ = ("parse_lazy",)

_FIRST_CALL = LazyPattern(r"([A-Za-z_]\w*)\s*\(")


def parse_lazy(text: Any, path: str, config: Mapping[str, bool] | None) -> Unit:
    """A unit whose functions are parsed on first look-up (see `vmxlint.cfront.parse_unit`)."""
    from vmxlint.cfront.parse import parse_unit

    unit = Unit(path)
    try:
        state = _Lazy(unit, text, path, config)
    except Exception:   # noqa: BLE001 - the eager parse reports this exactly as it always has
        return parse_unit(text, path, config)
    unit._lazy = state
    unit.functions = LazyFunctions(state)
    return unit


def _certain_function(piece: Piece) -> bool:
    """Tell whether a function piece without the word "typedef", if it parses, defines
    the function its name guess says (else only a parse of it says which it defines).

    True when the first '(' of the head follows that name and nothing but words, blanks
    and '*' stand before it (specifiers, the declarator's pointers): its identifier is
    the name.  Anything else there, a brace or a ';' say, may be more than one
    declaration (a definition whose parameter list an edit commented out, run together
    with the next), which only a parse can tell apart.  Answered once per piece text:
    the pieces of an image are mostly the last image's texts (the same objects, see
    `vmxlint.cfront.parse`).
    """
    key = (piece.text, piece.chunk.body - piece.chunk.start, piece.name)
    held = _CERTAIN.get(key)
    if held is None:
        held = kept(_CERTAIN, key, "typedef" not in piece.text
                    and _certain(piece.text[:key[1]], piece.name), CERTAIN_KEPT)
    return held


# (piece text, where its body starts in it, its name guess) -> `_certain_function`.
_CERTAIN: dict[tuple[str, int, str | None], bool] = {}
CERTAIN_KEPT = 4096


def _certain(head: str, name: str | None) -> bool:
    m = _FIRST_CALL.search(head)
    return m is not None and m.group(1) == name and head.find("(") == m.end() - 1 \
        and _SPECIFIERS.fullmatch(head, 0, m.start()) is not None


_SPECIFIERS = LazyPattern(r"[\w\s*]*")


class _Lazy:
    """The parse state of a lazy unit: results by piece, and the pieces still to parse."""

    def __init__(self, unit: Unit, text: Any, path: str,
                 config: Mapping[str, bool] | None) -> None:
        from pycparser import c_ast

        self.path = path
        self.lock = threading.RLock()
        self.results: dict[int, list[Any] | Failure] = {}
        self.waiting: dict[int, tuple[Piece, frozenset[str]]] = {}
        self.candidates: dict[str, list[int]] = {}   # function name -> pieces that may define it
        self.named: dict[str, list[int]] = {}        # name guess -> pieces (for failure())
        self.order: list[Piece] = []                 # every piece the eager parse parses
        self.found: dict[str, Function | None] = {}
        self.complete: dict[str, Function] | None = None
        self.unsure = False      # a lazily parsed piece did not define what its name said
        self.types_at: dict[int, frozenset[str]] = {}   # piece -> type names known before it
        self._prints: dict[int, str] = {}
        parser = _parser()
        parser.kernel_types = set(shim_type_names())
        known: frozenset[str] = frozenset(parser.kernel_types)
        # (An image has some 180 pieces, 170 of them functions: the loop reads each
        # piece's attributes once.)
        for piece in pieces(text, config):
            chunk, name = piece.chunk, piece.name
            function = chunk.body >= 0
            if function:
                if name:
                    unit.record_span(name, chunk.line, chunk.end_line)
            elif skipped(piece, parser.kernel_types):
                continue
            self.order.append(piece)
            if name:
                self.named.setdefault(name, []).append(piece.index)
            # Without the word "typedef" a piece can teach no type name, parsed or not (the
            # body rewrite neither makes nor breaks the word, so the raw text can tell).
            if len(known) != len(parser.kernel_types):   # names are only ever added
                known = frozenset(parser.kernel_types)
            self.types_at[piece.index] = known
            if function and name and _certain_function(piece):
                self.waiting[piece.index] = (piece, known)
                self.candidates.setdefault(name, []).append(piece.index)
                continue
            result = _run(parser, piece, path, known)
            self.results[piece.index] = result
            if isinstance(result, Failure):
                continue
            for node in result:
                if isinstance(node, c_ast.FuncDef):
                    if node.decl.name:
                        self.candidates.setdefault(node.decl.name, []).append(piece.index)
                else:
                    unit.declarations.append(node)
        for indices in self.candidates.values():
            indices.sort()
        self.pieces = {p.index: p for p in self.order}

    # -- parsing on demand ------------------------------------------------------------
    def result(self, index: int) -> list[Any] | Failure:
        """The parse of one piece, made now if it has not been."""
        from vmxlint.cfront import astcache

        with self.lock:
            done = self.results.get(index)
            if done is not None:
                return done
            piece, types = self.waiting.pop(index)
            done = astcache.parse_function(piece, types, self.path, _parse_with)
            if isinstance(done, list) and not _defines(done, piece.name):
                self.unsure = True
            elif isinstance(done, list):
                note_parsed_fine(self._digest(index))
            self.results[index] = done
            return done

    def function(self, name: str) -> Function | None:
        with self.lock:
            if self.complete is not None:
                return self.complete.get(name)
            if name in self.found:
                return self.found[name]
            fn = None
            for index in self.candidates.get(name, ()):
                fn = self._defined(index, name)
                if fn is not None:
                    break
            if self.unsure:
                # Some piece defined another name than its text suggested: only the whole
                # parse can say which piece comes first for a name now.
                return self.everything().get(name)
            self.found[name] = fn
            return fn

    def fingerprint(self, name: str) -> str | None:
        """What decides the look-up of NAME, without parsing anything: a digest of the one
        piece that may define it (its text, column and the type names known before it);
        ``""`` when no piece may define it; None when only parsing can tell (several
        pieces may define it, or one defined another name than its text suggested)."""
        with self.lock:
            index = self._only_piece(name)
            if index is not None:
                return self._digest(index)
            return "" if not self.unsure and name not in self.candidates else None

    def span(self, name: str) -> tuple[int, int] | None:
        """The first and last line of a function the unit defines; from the chunking alone
        when one piece may define it (None when the unit does not define it)."""
        with self.lock:
            index = self._only_piece(name)
        if index is not None:
            chunk = self.pieces[index].chunk
            return chunk.line, chunk.end_line
        fn = self.function(name)
        return None if fn is None else (fn.start_line, fn.end_line)

    def _only_piece(self, name: str) -> int | None:
        """The one piece that may define NAME, when a look-up depends on it alone."""
        indices = self.candidates.get(name, ())
        return indices[0] if len(indices) == 1 and not self.unsure else None

    def _digest(self, index: int) -> str:
        """What the parse of a piece depends on: its text, column and the type names."""
        digest = self._prints.get(index)
        if digest is None:
            piece = self.pieces[index]
            digest = self._prints[index] = _piece_digest(piece.text, piece.chunk.column,
                                                         self.types_at[index])
        return digest

    def defines(self, name: str) -> bool:
        """Whether a function NAME is defined; without a parse when its one piece parsed
        to that definition before, in this process."""
        with self.lock:
            index = self._only_piece(name)
            if index is not None and self.complete is None and index in self.waiting \
                    and self._digest(index) in PARSED_FINE:
                return True
        return self.function(name) is not None

    def _defined(self, index: int, name: str) -> Function | None:
        from pycparser import c_ast

        result = self.result(index)
        if isinstance(result, Failure):
            return None
        piece = self.pieces[index]
        for node in result:
            if isinstance(node, c_ast.FuncDef) and node.decl.name == name:
                return Function(name, node, self.path, piece.chunk.line, piece.chunk.end_line)
        return None

    def everything(self) -> dict[str, Function]:
        """All functions, in the eager parse's order (parses every piece left)."""
        with self.lock:
            if self.complete is None:
                complete: dict[str, Function] = {}
                for piece in self.order:
                    for name in _names(self.result(piece.index)):
                        if name not in complete:
                            complete[name] = self._defined(piece.index, name)  # type: ignore
                self.complete = complete
            return self.complete

    def _parses_fine(self, index: int) -> bool:
        """Whether a waiting piece is known to parse to the one definition its text
        promises: parsed so in this process, or its tree is in the AST cache (a check of a
        patch asks it of every function the entry path calls; building the trees of those
        it does not walk cost the first image of a process 5-12 ms)."""
        from vmxlint.cfront import astcache

        digest = self._digest(index)
        if digest in PARSED_FINE:
            return True
        piece, types = self.waiting[index]
        if piece.name is None or not astcache.defines(piece, types, piece.name):
            return False
        note_parsed_fine(digest)
        return True

    def failures(self) -> list[Failure]:
        self.everything()
        return [r for p in self.order if isinstance(r := self.results[p.index], Failure)]

    def failure(self, name: str) -> Failure | None:
        for index in self.named.get(name, ()):
            if index in self.waiting and self._parses_fine(index):
                continue
            result = self.result(index)
            if isinstance(result, Failure):
                return result
        return None


DIGESTS_MEMO = 4096    # digests of piece texts kept in process
_digests: dict[tuple[str, int, frozenset[str]], str] = {}


def _piece_digest(text: str, column: int, types: frozenset[str]) -> str:
    """The digest of a piece's parse inputs, kept in process: an image asks it of every
    function piece, and most are the last image's (the same text object, see
    `vmxlint.cfront.parse`, so the look-up hashes nothing new)."""
    key = (text, column, types)
    digest = _digests.get(key)
    if digest is None:
        from vmxlint.cfront.astcache import types_digest

        digest = kept(_digests, key, hashlib.sha256("\0".join((
            text, str(column), types_digest(types))).encode()).hexdigest(), DIGESTS_MEMO)
    return digest


# Digests (`_Lazy._digest`) of function pieces that parsed to the one definition their
# text promised, in this process: asking whether such a piece fails needs no parse.
PARSED_FINE: set[str] = set()
PARSED_FINE_MEMO = 65536


def note_parsed_fine(digest: str) -> None:
    """Remember that the piece of this digest parses to its one definition."""
    if len(PARSED_FINE) >= PARSED_FINE_MEMO:
        PARSED_FINE.clear()
    PARSED_FINE.add(digest)


EAGER_MEMO = 4096    # parses of the pieces parsed up front, kept in process
_eager_lock = threading.Lock()
# (text fed to pycparser, column, path, type names known before it, scope hook) ->
#     (its first line, its nodes or Failure, the type names it taught)
_eager: OrderedDict[tuple[Any, ...], tuple[int, Any, frozenset[str]]] = OrderedDict()


def clear_memo() -> None:
    """Forget the parses of pieces parsed up front kept in process."""
    with _eager_lock:
        _eager.clear()


def _run(parser: Any, piece: Piece, path: str, known: frozenset[str]) -> Any:
    """`run(parser, piece, path)` (KNOWN being the parser's type names), or what it gave
    for the same piece under the same names before: its very nodes on the same line,
    else copies re-based on this line; a failure only on the same line (its message may
    name the line)."""
    key = (piece.src, piece.chunk.column, path, known, bool(parser.uses_scope_hook))
    line = piece.chunk.line
    with _eager_lock:
        hit = _eager.get(key)
        if hit is not None:
            _eager.move_to_end(key)
    if hit is not None:
        first, result, taught = hit
        if first != line:
            result = None if isinstance(result, Failure) else _moved(result, path, first, line)
        if result is not None:
            parser.kernel_types.update(taught)
            if first != line:
                _remember(key, line, result, taught)
            return result
    result = run(parser, piece, path)
    taught = frozenset(parser.kernel_types - known) \
        if len(parser.kernel_types) != len(known) else frozenset()
    _remember(key, line, result, taught)
    return result


def _remember(key: tuple[Any, ...], line: int, result: Any, taught: frozenset[str]) -> None:
    with _eager_lock:
        _eager[key] = (line, result, taught)
        _eager.move_to_end(key)
        while len(_eager) > EAGER_MEMO:
            _eager.popitem(last=False)


def _moved(nodes: list[Any], path: str, first: int, line: int) -> list[Any] | None:
    """NODES, parsed at line FIRST, as they would have been at LINE (None if they cannot
    be copied as data)."""
    from vmxlint.cfront import astcache

    try:
        return [astcache.decode(astcache.encode(n, path, first), path, line) for n in nodes]
    except Exception:   # noqa: BLE001 - Uncacheable, RecursionError: parse instead
        return None


def _parse_with(piece: Piece, types: frozenset[str], path: str) -> tuple[list[Any], bool]:
    """Parse one function piece under the type names known at its position, where it
    changed when this process parsed its last version; raises."""
    from vmxlint.cfront import reparse

    return reparse.parse(piece, types, path)


def _names(result: list[Any] | Failure) -> list[str]:
    from pycparser import c_ast

    if isinstance(result, Failure):
        return []
    return [n.decl.name for n in result if isinstance(n, c_ast.FuncDef) and n.decl.name]


def _defines(nodes: list["c_ast.Node"], name: str | None) -> bool:
    """Whether a function piece parsed to the one definition its name guess promised."""
    from pycparser import c_ast

    return len(nodes) == 1 and isinstance(nodes[0], c_ast.FuncDef) and nodes[0].decl.name == name


class LazyFunctions(Mapping[str, Function]):
    """`Unit.functions` of a lazy unit: a look-up parses that function; iterating parses all."""

    def __init__(self, state: _Lazy) -> None:
        self._state = state

    def __getitem__(self, name: str) -> Function:
        fn = self._state.function(name) if isinstance(name, str) else None
        if fn is None:
            raise KeyError(name)
        return fn

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._state.defines(name)

    def get(self, name: str, default: Any = None) -> Any:
        fn = self._state.function(name) if isinstance(name, str) else None
        return default if fn is None else fn

    def fingerprint(self, name: str) -> str | None:
        """See `_Lazy.fingerprint`: equal fingerprints give the same look-up."""
        return self._state.fingerprint(name)

    def span(self, name: str) -> tuple[int, int] | None:
        """See `_Lazy.span`: a function's lines, without a parse where one piece tells."""
        return self._state.span(name)

    @property
    def path(self) -> str:
        """The path of the unit's file, which its functions are in."""
        return self._state.path

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._state.everything()))

    def __len__(self) -> int:
        return len(self._state.everything())

    def __repr__(self) -> str:
        return f"<LazyFunctions of {self._state.path!r}>"
