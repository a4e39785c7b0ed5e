"""Split preprocessed kernel C into top-level chunks and parse each one alone with pycparser."""
from __future__ import annotations

import functools
import hashlib
import re
import threading
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping

from msgspec import Struct, structs

from vmxlint.cfront.preprocess import (Run, adopt, config_key, known, preprocessed,
                                       rewrite_body, type_argument_pattern)
from vmxlint.memo import LazyPattern, kept
from vmxlint.textdiff import common_prefix

if TYPE_CHECKING:
    from vmxlint.cfront import Unit

# The declarations every piece is parsed with, next to this file (importlib.resources
# would import its readers, 4 ms of a check, to find it).
SHIM = Path(__file__).with_name("shim.h")

__all__ = ("Chunk", "Piece", "split_chunks", "parse_unit", "pieces", "shim_type_names")

_C_KEYWORDS = frozenset("""
    auto break case char const continue default do double else enum extern float for goto if
    inline int long register restrict return short signed sizeof static struct switch typedef
    union unsigned void volatile while _Bool _Complex _Noreturn _Thread_local _Static_assert
    _Atomic _Alignof _Alignas __int128 offsetof
""".split())


class Chunk(Struct, frozen=True):
    """One top-level definition or declaration of the preprocessed text."""

    start: int          # offset of its first character
    end: int            # offset after its last character
    line: int           # line of its first character (1-based)
    end_line: int       # line of its last character
    column: int         # 0-based column of its first character
    body: int           # offset of the '{' opening a function body, or -1

    @property
    def is_function(self) -> bool:
        return self.body >= 0


_CHUNK_TOKEN = re.compile(r'"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'|[{}()\[\];]')
# Inside braces only braces count (the parentheses count is reset when they close), so
# there the scan skips every other token.  Literals are the same matches in both.
_BODY_TOKEN = re.compile(r'"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'|[{}]')


def split_chunks(text: str, pos: int = 0, line: int = 1) -> Iterator[Chunk]:
    """Yield the top-level chunks of TEXT (a `;`-terminated declaration or a function),
    from offset POS on line LINE: the end of a chunk, where the scan holds no state."""
    braces = parens = 0   # counted apart, so a stray ']' cannot end a function early
    start = -1
    body = -1
    start_line = line
    scan = pos
    while (m := (_BODY_TOKEN if braces else _CHUNK_TOKEN).search(text, scan)) is not None:
        scan = m.end()
        tok = m.group(0)
        if start < 0:
            first = _first_non_space(text, pos, m.start())
            line += text.count("\n", pos, first)
            pos = first
            start, start_line, body = first, line, -1
        end = -1
        if tok == "{":
            if braces == 0 and parens == 0 and body < 0 \
                    and _last_char(text, start, m.start()) == ")":
                body = m.start()
            braces += 1
        elif tok in "([":
            parens += 1
        elif tok in ")]":
            parens = max(parens - 1, 0)
            if braces == 0 and parens == 0 and tok == ")" and body < 0 \
                    and _ends_bare_macro(text, start, m.end()):
                end = m.end()
        elif tok == "}":
            if m.start() > 0 and text[m.start() - 1] == "\n":
                # Kernel style closes top-level braces at column 0: if the braces disagree,
                # the chunk closes here anyway so the damage stays inside this chunk.
                braces = 1
            braces = max(braces - 1, 0)
            if braces == 0:
                parens = 0
                if body >= 0:
                    end = m.end()
        elif tok == ";" and braces == 0 and parens == 0:
            end = m.end()
        if end >= 0:
            yield _make_chunk(text, start, end, start_line, body)
            line = start_line + text.count("\n", start, end)
            pos = end
            start = -1
    if start >= 0 or text[pos:].strip():
        if start < 0:
            first = _first_non_space(text, pos, len(text))
            line += text.count("\n", pos, first)
            start, start_line, body = first, line, -1
        yield _make_chunk(text, start, len(text.rstrip()), start_line, body)


# The chunks of the last text split (a series splits one image after another, each a
# small edit of the one before): its chunks before and after the edit are taken over.
_split_lock = threading.Lock()
_last_split: tuple[str, tuple[Chunk, ...]] = ("", ())


def chunks(text: str) -> list[Chunk]:
    """The chunks of TEXT, exactly ``list(split_chunks(text))``, taking over those of the
    last text split where the two texts agree.

    The scan holds no state at a chunk's end.  A chunk of the old text before the first
    difference is the same in the new one when the chunk after it, and the line the chunk
    ends on, end before the difference too: deciding where a chunk ends looks ahead to
    the next one's first character (a macro call standing alone) and to the end of a line
    (whether a quote opens a literal depends on a closing quote later on its line).  After
    the difference, once the new scan ends a chunk where the old one did and both texts
    are the same from the newline before that chunk's last line on, every later chunk is
    the old one, moved."""
    with _split_lock:
        old, done = _last_split
    out = _reusing(text, old, done) if done else list(split_chunks(text))
    _remember_split(text, out)
    return out


def _remember_split(text: str, out: list[Chunk]) -> None:
    global _last_split
    with _split_lock:
        _last_split = (text, tuple(out))


def _reusing(text: str, old: str, done: tuple[Chunk, ...]) -> list[Chunk]:
    if text == old:
        return list(done)
    same = common_prefix(text, old)
    keep = 0        # chunks taken over from the front
    while keep + 1 < len(done) and done[keep + 1].end <= same \
            and -1 < old.find("\n", done[keep].end - 1) < same:
        keep += 1
    out = list(done[:keep])
    pos, line = (out[-1].end, out[-1].end_line) if out else (0, 1)
    shift = len(text) - len(old)
    ends = {c.end: k for k, c in enumerate(done) if c.end + shift > same}
    for c in split_chunks(text, pos, line):
        out.append(c)
        k = ends.get(c.end - shift)
        if k is None or k + 1 >= len(done):
            continue
        # The texts must agree from the newline before the chunk's last line on: the
        # scan looks back no further (a chunk's column, a '}' at the start of a line).
        frm = max(text.rfind("\n", 0, c.end), 0)
        if frm - shift >= 0 and (frm > 0 or shift == 0) \
                and old[frm - shift:frm - shift + 1] == text[frm:frm + 1] \
                and text.endswith(old[frm - shift:]):
            lines = c.end_line - done[k].end_line
            out.extend(_moved(d, shift, lines) for d in done[k + 1:])
            break
    return out


def _moved(c: Chunk, shift: int, lines: int) -> Chunk:
    return Chunk(c.start + shift, c.end + shift, c.line + lines, c.end_line + lines,
                 c.column, c.body + shift if c.body >= 0 else -1)


_BARE_CALL = re.compile(r"[A-Za-z_]\w*[ \t]*\(")
_NEXT_DEFINITION = re.compile(r"[ \t]*\n\s*[A-Za-z_]")


def _ends_bare_macro(text: str, start: int, end: int) -> bool:
    """Tell whether TEXT[start:end] is `NAME(...)` standing alone before a new line.

    Kernel files invoke macros that expand to whole definitions without a ';'
    (`BUILD_NVMX_MSR_INTERCEPT_HELPER(read)`); without this the next function would be
    glued onto the invocation and lost with it.
    """
    m = _BARE_CALL.match(text, start)
    if m is None or text.find("(", start) != m.end() - 1:
        return False
    return _NEXT_DEFINITION.match(text, end) is not None


_NON_SPACE = re.compile(r"[^ \t\n\f\v]")
_LONE_SEMICOLON = LazyPattern(r"\s*;\s*\Z")   # \s is str.isspace's set, as strip() strips


def _first_non_space(text: str, pos: int, limit: int) -> int:
    m = _NON_SPACE.search(text, pos, limit)
    return m.start() if m is not None else max(pos, limit)


def _last_char(text: str, start: int, end: int) -> str:
    end -= 1
    while end >= start and text[end] in " \t\n\f\v":
        end -= 1
    return text[end] if end >= start else ""


def _make_chunk(text: str, start: int, end: int, line: int, body: int) -> Chunk:
    end = max(end, start)
    column = start - (text.rfind("\n", 0, start) + 1)
    return Chunk(start, end, line, line + text.count("\n", start, end), column, body)


# --------------------------------------------------------------------------- names

_FUNC_NAME = re.compile(r"([A-Za-z_]\w*)\s*\(")
_DECL_NAME = LazyPattern(r"([A-Za-z_]\w*)\s*(?:\[[^\]]*\]\s*)*(?:=|;|$)")
_MACRO_CALL = LazyPattern(r"\A(?:static\s+)?([A-Za-z_]\w*)\s*\(.*\)\s*;?\s*\Z", re.S)
_POINTER_CAST = LazyPattern(r"\(\s*(?!(?:const|volatile|struct|union|enum|void|char|int|long|"
                            r"short|unsigned|signed)\b)([A-Za-z_]\w*)\s*\*[\s*]*\)\s*(?=[\w(&*])")
_DECL_TYPE = LazyPattern(
    r"^[ \t]*(?:const[ \t]+)?([A-Za-z_]\w*)[ \t]+[* \t]*[A-Za-z_]\w*[ \t]*[;=,\[)]", re.M)
# Statement words that may stand before a name without being types.
_NOT_TYPES = frozenset(("return", "goto", "case", "else", "do", "sizeof", "typedef", "extern",
                        "static", "register", "inline", "volatile", "struct", "union", "enum"))
_T_CALL = LazyPattern(r"\b(\w+_t)\(")
_T_WORD = LazyPattern(r"\b\w+_t\b")
_TYPEDEF_NAME = LazyPattern(r"\(\s*\*\s*([A-Za-z_]\w*)\s*\)\s*\("
                            r"|([A-Za-z_]\w*)\s*(?:\[[^\]]*\]\s*)*;\s*\Z")


@functools.lru_cache(maxsize=4096)      # a file's chunks, image after image
def chunk_name(chunk_text: str) -> str | None:
    """Guess the name a chunk defines: the function's, or else the declared object's."""
    head = chunk_text.split("{", 1)[0] if "(" in chunk_text.split("{", 1)[0] else chunk_text
    for m in _FUNC_NAME.finditer(head):
        if m.group(1) not in _C_KEYWORDS:
            return m.group(1)
    m = _DECL_NAME.search(chunk_text.split("{", 1)[0].split("=", 1)[0] + ";")
    if m and m.group(1) not in _C_KEYWORDS:
        return m.group(1)
    return None


def _is_macro_invocation(chunk_text: str, types: set[str] | frozenset[str]) -> bool:
    """Tell whether a chunk is `NAME(...);`, a top-level macro call such as EXPORT_SYMBOL."""
    m = _MACRO_CALL.match(chunk_text)
    if m is None:
        return False
    name = m.group(1)
    return name not in _C_KEYWORDS and name not in types and not name.endswith("_t")


# --------------------------------------------------------------------------- parser

_shim_lock = threading.Lock()
_shim_names: frozenset[str] | None = None
_local = threading.local()


def shim_type_names() -> frozenset[str]:
    """Return the typedef names declared by shim.h (read and parsed once)."""
    global _shim_names
    with _shim_lock:
        if _shim_names is None:
            text = SHIM.read_text(encoding="utf-8")
            _shim_names = frozenset(re.findall(r"\btypedef\b[^;]*?\b([A-Za-z_]\w*)\s*;",
                                               _strip_block_comments(text)))
        return _shim_names


def _strip_block_comments(text: str) -> str:
    return re.sub(r"/\*.*?\*/", " ", text, flags=re.S)


def _looks_like_type(name: str) -> bool:
    return len(name) > 2 and name.endswith("_t") and not name.isupper()


def _make_parser() -> Any:
    """Build a CParser that also knows the kernel's type names without parsing them."""
    from pycparser import c_parser

    class KernelParser(c_parser.CParser):  # type: ignore[misc]
        """A CParser whose outermost scope also holds the kernel type names."""

        def __init__(self) -> None:
            super().__init__()
            self.kernel_types: set[str] = set()
            self.chunk_types: set[str] = set()
            self.chunk_calls: set[str] = set()
            # When a list: each block and block item parsed, with its first and last
            # token (where its text begins and ends, for `vmxlint.cfront.reparse`).
            self.record: list[tuple[Any, Any, Any]] | None = None

        # Whatever arguments pycparser's versions give these (3.12 added new_scope).
        def _parse_compound_statement(self, *args: Any, **kwargs: Any) -> Any:
            return self._recorded(super()._parse_compound_statement, args, kwargs)

        def _parse_block_item(self, *args: Any, **kwargs: Any) -> Any:
            return self._recorded(super()._parse_block_item, args, kwargs)

        def _recorded(self, parse: Any, args: tuple, kwargs: dict) -> Any:
            if self.record is None:
                return parse(*args, **kwargs)
            first = self._peek()
            made = parse(*args, **kwargs)
            self.record.append((made, first, self._tokens._buffer[self._tokens._index - 1]))
            return made

        def _is_type_in_scope(self, name: str) -> bool:
            # Parsing the shim in front of every chunk costs more than the chunk: look the
            # name up in the real scopes first (locals shadow types), then in the kernel set.
            if not self.uses_scope_hook:
                return bool(super()._is_type_in_scope(name))
            for scope in reversed(self._scope_stack):
                in_scope = scope.get(name)
                if in_scope is not None:
                    return in_scope
            return (name in self.kernel_types or name in self.chunk_types
                    or (_looks_like_type(name) and name not in self.chunk_calls))

    # Private pycparser API: fall back to a textual typedef prelude if it ever changes.
    KernelParser.uses_scope_hook = hasattr(c_parser.CParser, "_is_type_in_scope")
    parser = KernelParser()
    parser.uses_scope_hook = parser.uses_scope_hook and hasattr(parser, "_scope_stack")
    # Recording needs the token stream's buffer and the two methods it wraps (private
    # too): without them no parse is recorded, so no function is spliced.
    parser.can_record = parser.uses_scope_hook and all(
        hasattr(c_parser.CParser, m) for m in ("_parse_compound_statement",
                                               "_parse_block_item")) \
        and hasattr(parser._tokens, "_buffer") and hasattr(parser._tokens, "_index")
    return parser


def _parser() -> Any:
    parser = getattr(_local, "parser", None)
    if parser is None:
        parser = _local.parser = _make_parser()
    return parser


_TYPE_PATTERN: Any = None


def _type_pattern() -> re.Pattern[str]:
    global _TYPE_PATTERN
    if _TYPE_PATTERN is None:
        _TYPE_PATTERN = type_argument_pattern(shim_type_names())
    return _TYPE_PATTERN


_CASE_RANGE = LazyPattern(r"\bcase\b([^:;?]*?)([ \t]?\.\.\.[ \t]?)")
_ELVIS = LazyPattern(r"\?\s*:")


def _case_range(m: re.Match[str]) -> str:
    # The low end keeps its column; the high end moves at most a few columns.
    return f"case{m.group(1)}:case "


def _rewrite_function(text: str) -> str:
    """Rewrite GNU statement syntax inside a function body."""
    if "..." in text:
        # `case A ... B:` keeps both ends as two labels of the same statement.
        text = _CASE_RANGE.sub(_case_range, text)
    if "?" in text:
        # `a ?: b` keeps a placeholder true arm: the value is opaque to the analysis anyway.
        text = _ELVIS.sub("?1:", text)
    return rewrite_body(text, _type_pattern())


def _message(exc: BaseException, path: str) -> str:
    msg = str(exc)
    if type(exc).__name__ != "ParseError":
        msg = f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__
    if msg.startswith(path + ":"):
        msg = msg[len(path) + 1:]
    msg = " ".join(msg.split())
    return msg if len(msg) <= 300 else msg[:297] + "..."


def line_marker(line: int, path: str) -> str:
    if re.fullmatch(r'[^"\\\n\r]*', path):
        return f'# {line} "{path}"\n'
    return f"# {line}\n"  # the filename passed to parse() is kept


def parse_unit(text: str, path: str, config: Mapping[str, bool] | None = None) -> "Unit":
    """Parse TEXT (the contents of PATH) into functions, declarations and failures."""
    from vmxlint.cfront import Failure, Unit

    unit = Unit(path=path, functions={}, failures=[], declarations=[])
    try:
        _parse_into(unit, text, path, config)
    except Exception as exc:  # the front end reports, it never raises
        unit.failures.append(Failure(None, path, 1, f"front end error: {_message(exc, path)}"))
    return unit


class Piece(Struct, frozen=True, dict=True):
    """A top-level chunk ready for pycparser."""

    index: int          # position among the file's pieces
    chunk: Chunk
    text: str           # the chunk's preprocessed text
    name: str | None    # the name `chunk_name` guesses, before any parse

    @property
    def is_function(self) -> bool:
        return self.chunk.is_function

    @functools.cached_property
    def src(self) -> str:
        """The text fed to pycparser: a function's body rewritten (made when first asked,
        as a lazy parse asks it only of the functions it parses)."""
        if not self.chunk.is_function:
            return self.text
        cut = self.chunk.body - self.chunk.start
        return self.text[:cut] + _rewrite_function(self.text[cut:])


PIECES_MEMO = 8     # texts whose pieces are kept in process (an image and its neighbours)
_pieces_lock = threading.Lock()
_pieces_memo: OrderedDict[tuple[str, tuple[tuple[str, bool], ...]], tuple[Piece, ...]] = \
    OrderedDict()


def pieces(text: Any, config: Mapping[str, bool] | None) -> list[Piece]:
    """Preprocess TEXT and cut it into the pieces a parse would feed to pycparser (kept in
    process for the last few texts: the same text under the same config gives the same
    pieces)."""
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8", "replace")
    text = str(text)
    items = list((config or {}).items())
    if not all(type(k) is str and type(v) in (bool, int) for k, v in items):
        return _make_pieces(text, config)    # a config only a look-up can tell apart
    key = (text, tuple(sorted((k, bool(v)) for k, v in items)))
    with _pieces_lock:
        done = _pieces_memo.get(key)
        if done is not None:
            _pieces_memo.move_to_end(key)
            return list(done)
    out = _make_pieces(text, config)
    with _pieces_lock:
        _pieces_memo[key] = tuple(out)
        while len(_pieces_memo) > PIECES_MEMO:
            _pieces_memo.popitem(last=False)
    return out


def clear_memo() -> None:
    """Forget the pieces kept in process."""
    with _pieces_lock:
        _pieces_memo.clear()


def _make_pieces(text: str, config: Mapping[str, bool] | None) -> list[Piece]:
    run, kept = preprocessed(text, config)
    done = chunks(run.out)
    if kept:
        _store_split(text, run, done)
    text = run.out
    out: list[Piece] = []
    for chunk in done:
        src = text[chunk.start:chunk.end]
        if not src or src.isspace() or _LONE_SEMICOLON.match(src):
            continue        # blank, or a lone ';' (told without scanning every definition)
        src = _interned(src)
        out.append(Piece(len(out), chunk, src, chunk_name(src)))
    return out


TEXTS_MEMO = 4096   # piece texts kept in process: an image's, and its neighbours'
_texts: dict[str, str] = {}


def _interned(src: str) -> str:
    """The piece text equal to SRC that an image before gave, when there is one: every
    memo keyed by a piece's text (its name guess, its parse's digest) then finds it by
    identity, its hash already made, instead of hashing and comparing it again."""
    hit = _texts.get(src)
    return hit if hit is not None else kept(_texts, src, src, TEXTS_MEMO)


# -- a text's preprocessing and split, kept on disk for the processes after ---------------

class _Split(Struct, forbid_unknown_fields=True):
    """What a text preprocessed in full gave: the record of the passes and its chunks."""

    run: Run
    chunks: list[Chunk]


def _split_key(text: str, config: tuple) -> str:
    from vmxlint import cache

    return cache.key("split", cache.code_digest(), repr(config),
                     hashlib.sha256(text.encode("utf-8", "replace")).hexdigest())


def _store_split(text: str, run: Run, done: list[Chunk]) -> None:
    """Keep what a full preprocessing of TEXT gave (an image analysed from scratch, such
    as a tree's nested.c): a later process checking a patch to it splices from it."""
    from vmxlint import cache

    cache.put(_split_key(text, run.key), _Split(structs.replace(run, text="", key=()), done))


def recall(text: Any, config: Mapping[str, bool] | None = None) -> None:
    """Make the preprocessing and split of TEXT that an earlier process kept the ones the
    next text is made from (a patch's post-image from its pre-image): nothing when they
    are kept in this process already, or nowhere."""
    from vmxlint import cache

    if not isinstance(text, str):
        return
    key = config_key(config)
    if key is None or known(text, config):
        return
    hit = cache.get(_split_key(text, key), _Split)
    if hit is not None and adopt(hit.run, text, config):
        _remember_split(hit.run.out, list(hit.chunks))


def _parse_into(unit: "Unit", text: Any, path: str, config: Mapping[str, bool] | None) -> None:
    from pycparser import c_ast

    from vmxlint.cfront import Failure, Function

    parser = _parser()
    parser.kernel_types = set(shim_type_names())
    for piece in pieces(text, config):
        if piece.is_function and piece.name:
            unit.record_span(piece.name, piece.chunk.line, piece.chunk.end_line)
        if skipped(piece, parser.kernel_types):
            continue
        result = run(parser, piece, path)
        if isinstance(result, Failure):
            unit.failures.append(result)
            continue
        for node in result:
            if isinstance(node, c_ast.FuncDef):
                fname = node.decl.name
                if fname and fname not in unit.functions:
                    unit.functions[fname] = Function(fname, node, path, piece.chunk.line,
                                                     piece.chunk.end_line)
            else:
                unit.declarations.append(node)


def skipped(piece: Piece, types: set[str] | frozenset[str]) -> bool:
    """Tell whether a parse leaves PIECE out: a top-level macro call such as EXPORT_SYMBOL."""
    return not piece.is_function and _is_macro_invocation(piece.src, types)


def run(parser: Any, piece: Piece, path: str) -> Any:
    """Parse PIECE: its top-level nodes, or a `Failure`.  Typedef names it declares (even
    in a typedef that fails) join `parser.kernel_types` for the pieces after it."""
    from pycparser import c_ast

    from vmxlint.cfront import Failure

    try:
        nodes = parse_piece(parser, piece, path)
    except Exception as exc:  # ParseError, and anything odd input drives pycparser into
        if "typedef" in piece.src:
            _learn_typedef_text(piece.src, parser.kernel_types)
        return Failure(piece.name, path, piece.chunk.line, _message(exc, path))
    for node in nodes:
        if isinstance(node, c_ast.Typedef) and node.name:
            parser.kernel_types.add(node.name)
    return nodes


def chunk_names(src: str) -> tuple[frozenset[str], frozenset[str]]:
    """The names a chunk's own text shows to be types, and to be called (not types)."""
    # `min_t(` is a call: kernel style glues '(' to a called name, never to a type.
    calls = set(_T_CALL.findall(src)) if "_t(" in src else set()
    # `(gate_desc *)x` can only be a cast, so gate_desc is a type in this chunk.
    types = set(_POINTER_CAST.findall(src)) if "*)" in src.replace(" ", "") else set()
    # `sev_ret_code fw_err = 0;`: two names in a row can only be a type and a declarator.
    types.update(n for n in _DECL_TYPE.findall(src) if n not in _C_KEYWORDS
                 and n not in _NOT_TYPES)
    return frozenset(types), frozenset(calls)


def parse_piece(parser: Any, piece: Piece, path: str, text: str | None = None,
                names: tuple[frozenset[str], frozenset[str]] | None = None) -> list[Any]:
    """The top-level nodes of PIECE under the parser's current type names; raises on error.

    TEXT, when given, is parsed in place of the piece's text (laid out on the same lines),
    under NAMES, what `chunk_names` says of the piece's text."""
    src, chunk = piece.src, piece.chunk
    types, calls = names if names is not None else chunk_names(src)
    parser.chunk_types, parser.chunk_calls = set(types), set(calls)
    prelude, skip = "", 0
    if not parser.uses_scope_hook:
        names = (parser.kernel_types | parser.chunk_types
                 | {n for n in _T_WORD.findall(src) if _looks_like_type(n)})
        names -= parser.chunk_calls
        prelude = "".join(f"typedef int {n};" for n in sorted(names)) + "\n"
        skip = len(names)
    source = prelude + line_marker(chunk.line, path) + " " * chunk.column \
        + (src if text is None else text) + "\n"
    return list(parser.parse(source, path).ext[skip:])


def _learn_typedef_text(src: str, types: set[str]) -> None:
    """Remember the name a typedef declares even when the typedef itself failed to parse."""
    m = _TYPEDEF_NAME.search(src.strip())
    if m:
        types.add(m.group(1) or m.group(2))
