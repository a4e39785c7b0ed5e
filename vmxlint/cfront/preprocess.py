"""Turn kernel C into plain C for pycparser without a C preprocessor, keeping every line put.

Every function here preserves the number of newlines and the line each surviving token
sits on, so that positions in the output are positions in the original file.  Macros are
not expanded: a macro call stays a call, which is what the later stages want to see.
"""
from __future__ import annotations

import bisect
import re
import threading
from typing import Callable, Iterable, Iterator, Mapping

from msgspec import Struct, structs

from vmxlint.memo import LazyPattern, kept
from vmxlint.textdiff import common_prefix, common_suffix

DEFAULT_CONFIG: dict[str, bool] = {
    "CONFIG_X86_64": True,
    "CONFIG_KVM_HYPERV": True,
    "CONFIG_KVM_INTEL": True,
}

__all__ = ("DEFAULT_CONFIG", "preprocess", "strip_comments", "join_continuations",
           "apply_conditionals", "rewrite_kernel_syntax", "rewrite_body", "eval_condition")


def preprocess(text: str, config: Mapping[str, bool] | None = None) -> str:
    """Return TEXT as plain C with the same line count and token lines (taking over the
    output of a recent text around an edit: see `_spliced`)."""
    return preprocessed(text, config)[0].out


def preprocessed(text: str, config: Mapping[str, bool] | None = None) -> tuple["Run", bool]:
    """`preprocess` as the record of its run, and whether it is a run over all of the
    text that a later process may splice from (no recent text could be spliced, every
    look-ahead found its end, the config is a value)."""
    text = _lf(text)
    key = config_key(config)
    if key is None:
        return _whole(text, config), False
    with _recent_lock:
        recent = [r for r in _recent if r.key == key]
    for done in recent:
        if done.text == text:
            return done, False
    for done in recent:
        spliced = _spliced(done, text, config)
        if spliced is not None:
            _remember(spliced)
            return spliced, False
    run = structs.replace(_whole(text, config), text=text, key=key)
    if run.closed:
        _remember(run)
    return run, run.closed


def adopt(run: "Run", text: str, config: Mapping[str, bool] | None = None) -> bool:
    """Take RUN, the record of an earlier process's run over TEXT, as this process's:
    the next text may be spliced from it.  False when the config cannot be told apart
    or the run cannot be spliced from."""
    key = config_key(config)
    if key is None or not run.closed:
        return False
    _remember(structs.replace(run, text=_lf(text), key=key))
    return True


def _lf(text: str) -> str:
    """TEXT with its line ends made newlines (a scan for a carriage return costs a tenth
    of two replacements over a text that has none, as kernel sources)."""
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


def known(text: str, config: Mapping[str, bool] | None = None) -> bool:
    """Whether a recent run over TEXT is kept (then `adopt` has nothing to add)."""
    key = config_key(config)
    text = _lf(text)
    with _recent_lock:
        return any(r.key == key and r.text == text for r in _recent)


# An #if state (`Branches.state`): whether lines are kept, and the open frames.
State = tuple[bool, tuple[tuple[bool, bool, bool], ...]]


class Run(Struct, forbid_unknown_fields=True):
    """The passes over a text: their output, and what a later edit of the text needs."""

    out: str
    closed: bool        # every unbounded look-ahead found its end, every look-back a start
    marks: list[tuple[int, State]]    # each directive's line and the #if state after it
    end: State          # the #if state at the end of the text
    text: str = ""      # the text (its line ends made "\n"), kept in process only
    key: tuple[tuple[str, bool], ...] = ()   # the config, as `_config_key` gives it


def _whole(text: str, config: Mapping[str, bool] | None, state: State | None = None) -> Run:
    """The passes over all of TEXT, from the #if state STATE (none open by default)."""
    _open_ends.count = 0
    branches = Branches(_merged_config(config), state)
    marks: list[tuple[int, State]] = []
    text = join_continuations(text)
    text = strip_comments(text)
    text = _conditionals(text, branches, marks)
    out = rewrite_kernel_syntax(text)
    return Run(out, _open_ends.count == 0, marks, branches.state())


# Scans that reached an end of their text looking for something, in this thread's
# current `_whole` (outside one, counted and never read).
_open_ends = threading.local()


def _reached_an_end() -> None:
    _open_ends.count = getattr(_open_ends, "count", 0) + 1


def config_key(config: Mapping[str, bool] | None) -> tuple | None:
    """The config as a value to compare, or None when only a look-up can tell two apart."""
    items = list((config or {}).items())
    if not all(type(k) is str and type(v) in (bool, int) for k, v in items):
        return None             # a config only a look-up can tell apart
    return tuple(sorted((k, bool(v)) for k, v in items))


# The last texts preprocessed in full or spliced, newest first: a series preprocesses
# one image after another, each a small edit of the last.
_recent: list[Run] = []
_recent_lock = threading.Lock()
RECENT = 4


def _remember(run: Run) -> None:
    with _recent_lock:
        _recent[:] = [run] + [r for r in _recent if r.text != run.text][:RECENT - 1]


def clear_memo() -> None:
    """Forget the texts kept for splicing."""
    with _recent_lock:
        _recent.clear()
    _regions.clear()


def _spliced(done: Run, new: str, config: Mapping[str, bool] | None) -> Run | None:
    """The passes over NEW made from DONE, those over an older text, when the edit
    between them lies in a region of lines that the passes treat on its own; else None.

    The region runs from after a line "}" to a line "}" (kernel style closes a top-level
    definition at column 0), both outside the edit.  It is re-done alone, from the #if
    state the old text had at its start, and its output replaces the old region's, when:

    - both lines "}" are still "}" in DONE's output: no comment or rewritten span covered
      them, so those passes enter and leave the old region in their plain state;
    - the old text's own run found the end of every unbounded look-ahead, so no scan
      before the region can reach into it, whatever it now holds;
    - neither region has a continued line: no line of a region is joined to one outside;
    - the old region, done alone, gives exactly its part of DONE's output, and the new
      region, done alone, found the end of every unbounded look-ahead inside it and
      something before its start wherever it looked back (``_prev_char``);
    - both regions leave the #if state the same, so the lines after them read as before.

    Every other scan looks ahead no further than blanks, which a "}" ends, and looks back
    no further than the character before a line, a newline either way.
    """
    old = done.text
    cp = common_prefix(old, new)
    cs = min(common_suffix(old, new), min(len(old), len(new)) - cp)
    a = old.rfind("\n}\n", 0, cp) + 3
    b = old.find("\n}\n", len(old) - cs) + 3
    if a < 3 or b < 3:
        return None
    shift = len(new) - len(old)
    region, fresh = old[a:b], new[a:b + shift]
    if "\\\n" in region or "\\\n" in fresh:
        return None
    before, through = old.count("\n", 0, a), old.count("\n", 0, b)
    first, last = _line_offset(done.out, before), _line_offset(done.out, through)
    if not (done.out.startswith("\n}\n", first - 3) and done.out.startswith("\n}\n", last - 3)):
        return None
    lines = [line for line, _ in done.marks]
    i, j = bisect.bisect_right(lines, before), bisect.bisect_right(lines, through)
    state = done.marks[i - 1][1] if i else Branches.START
    leaves = done.marks[j - 1][1] if j > i else state
    again = _region(region, config, state, done.key)
    if not again.closed or again.out != done.out[first:last] or again.end != leaves:
        return None
    run = _region(fresh, config, state, done.key)
    if not run.closed or run.end != leaves:
        return None
    moved = fresh.count("\n") - region.count("\n")
    marks = done.marks[:i] + [(before + line, s) for line, s in run.marks] \
        + [(line + moved, s) for line, s in done.marks[j:]]
    return Run(done.out[:first] + run.out + done.out[last:], True, marks, done.end, new,
               done.key)


def _region(text: str, config: Mapping[str, bool] | None, state: State,
            key: tuple) -> Run:
    """`_whole` over a region of lines (KEY is the config's `config_key`), kept for the
    last few regions: the old region a splice does again is mostly the new region of the
    last edit of the same function, done then (a series edits its functions in turn)."""
    k = (text, state, key)
    hit = _regions.get(k)
    if hit is None:
        hit = kept(_regions, k, _whole(text, config, state), REGIONS_KEPT)
    return hit


_regions: dict[tuple[str, State, tuple], Run] = {}
REGIONS_KEPT = 64


def _line_offset(text: str, n: int) -> int:
    """Where line n + 1 of TEXT starts: after its n-th newline (counted a block at a time,
    then found one by one in the last block)."""
    pos = count = 0
    step = max(len(text) // 64, 64)
    while pos < len(text):
        c = text.count("\n", pos, pos + step)
        if count + c >= n:
            break
        pos, count = pos + step, count + c
    at = pos - 1
    for _ in range(n - count):
        at = text.find("\n", at + 1)
    return at + 1


# --------------------------------------------------------------------------- phase 2 and 3

def join_continuations(text: str) -> str:
    """Join backslash-continued lines, padding with empty lines after the joined one."""
    if "\\\n" not in text:
        return text
    if text.endswith("\\"):
        # A file that ends in a continuation joins exactly as it would with a newline
        # after it: the line by line rule pads the joined line the same either way.
        text += "\n"
    # Only the logical lines that continue are rewritten: the rest of the file is copied.
    out: list[str] = []
    pos = 0
    cut = text.find("\\\n")
    while cut >= 0:
        out.append(text[pos:cut])
        cuts, at = 1, cut + 2           # continuations so far; where the next line starts
        end = text.find("\n", at)
        while end > at and text[end - 1] == "\\":
            out.append(text[at:end - 1])
            cuts, at = cuts + 1, end + 1
            end = text.find("\n", at)
        end = len(text) if end < 0 else end
        out.append(text[at:end])
        out.append("\n" * cuts)        # after the joined line: the next keep their numbers
        pos = end
        cut = text.find("\\\n", pos)
    out.append(text[pos:])
    return "".join(out)


# What strip_comments looks for: a literal (skipped; an unterminated one stops at the
# newline), a block comment's opening (closed by the first "*/" after it, else the end of
# the text) or a line comment.
_COMMENT_OR_LITERAL = re.compile(
    r'"(?:\\.|[^"\\\n])*"?'
    r"|'(?:\\.|[^'\\\n])*'?"
    r"|/\*"
    r"|//[^\n]*",
    re.S,    # a backslash escapes a newline too
)


def _blank(s: str) -> str:
    """S with every character but newlines a space, so columns stay put as well as lines."""
    if "\n" not in s:
        return " " * len(s)
    return "\n".join(" " * len(part) for part in s.split("\n"))


def strip_comments(text: str) -> str:
    """Blank each comment, keeping the newlines it contained."""
    if "/*" not in text and "//" not in text:
        return text
    out: list[str] = []
    search = _COMMENT_OR_LITERAL.search
    last = pos = 0
    while (m := search(text, pos)) is not None:
        start, end = m.span()
        if text[start] != "/":
            pos = end
            continue
        if end - start == 2 and text[start + 1] == "*":
            close = text.find("*/", end)
            if close < 0:
                _reached_an_end()
            end = len(text) if close < 0 else close + 2
        out.append(text[last:start])
        out.append(_blank(text[start:end]))
        last = pos = end
    out.append(text[last:])
    return "".join(out)


# --------------------------------------------------------------------------- conditionals

_DIRECTIVE = re.compile(r"[ \t]*#[ \t]*([A-Za-z_]\w*)?(.*)")
_COND_TOKEN = re.compile(
    r"\s*(?:(0[xX][0-9a-fA-F]+|\d+)[uUlL]*|([A-Za-z_]\w*)"
    r"|(&&|\|\||==|!=|<=|>=|<<|>>|[!()<>+\-*/%,]))"
)


class _Unknown(Exception):
    """Raised inside the evaluator when an #if expression cannot be decided."""


class _CondParser:
    """Evaluate a preprocessor expression with three-valued logic (None is unknown)."""

    _BINARY = (
        ("||",), ("&&",), ("==", "!="), ("<", ">", "<=", ">="), ("<<", ">>"),
        ("+", "-"), ("*", "/", "%"),
    )

    def __init__(self, expr: str, config: Mapping[str, bool]) -> None:
        self.tokens = self._lex(expr)
        self.pos = 0
        self.config = config

    @staticmethod
    def _lex(expr: str) -> list[tuple[str, str]]:
        tokens: list[tuple[str, str]] = []
        pos = 0
        expr = expr.rstrip()
        while pos < len(expr):
            m = _COND_TOKEN.match(expr, pos)
            if not m:
                raise _Unknown(expr[pos:])
            if m.group(1) is not None:
                tokens.append(("num", m.group(1)))
            elif m.group(2) is not None:
                tokens.append(("id", m.group(2)))
            else:
                tokens.append(("op", m.group(3)))
            pos = m.end()
        return tokens

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        tok = self.peek()
        if tok is None or (value is not None and tok[1] != value):
            raise _Unknown("unexpected end")
        self.pos += 1
        return tok

    def evaluate(self) -> int | None:
        value = self.binary(0)
        if self.peek() is not None:
            raise _Unknown("trailing tokens")
        return value

    def binary(self, level: int) -> int | None:
        if level == len(self._BINARY):
            return self.unary()
        left = self.binary(level + 1)
        while (tok := self.peek()) is not None and tok[0] == "op" and tok[1] in self._BINARY[level]:
            self.take()
            right = self.binary(level + 1)
            left = self._apply(tok[1], left, right)
        return left

    @staticmethod
    def _apply(op: str, a: int | None, b: int | None) -> int | None:
        # Short-circuit operators decide on one known side; the rest need both.
        if op == "&&":
            if a == 0 or b == 0:
                return 0
            return None if a is None or b is None else 1
        if op == "||":
            if (a is not None and a != 0) or (b is not None and b != 0):
                return 1
            return None if a is None or b is None else 0
        if a is None or b is None:
            return None
        try:
            return int({
                "==": lambda: a == b, "!=": lambda: a != b, "<": lambda: a < b,
                ">": lambda: a > b, "<=": lambda: a <= b, ">=": lambda: a >= b,
                "<<": lambda: a << min(b, 64), ">>": lambda: a >> min(b, 64),
                "+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b,
                "/": lambda: a // b, "%": lambda: a % b,
            }[op]())
        except (ZeroDivisionError, ValueError):
            return None

    def unary(self) -> int | None:
        tok = self.take()
        kind, value = tok
        if kind == "op":
            if value == "!":
                inner = self.unary()
                return None if inner is None else int(not inner)
            if value == "-":
                inner = self.unary()
                return None if inner is None else -inner
            if value == "(":
                inner = self.binary(0)
                self.take(")")
                return inner
            raise _Unknown(value)
        if kind == "num":
            return int(value, 0) if not value.startswith("0") or value.lower().startswith("0x") \
                else int(value, 8)
        if value in ("defined", "IS_ENABLED", "IS_BUILTIN", "IS_REACHABLE", "IS_MODULE"):
            paren = self.peek() == ("op", "(")
            if paren:
                self.take()
            name = self.take()[1]
            if paren:
                self.take(")")
            if value == "IS_MODULE":
                return 0
            return self.lookup(name, is_defined=value == "defined")
        if self.peek() == ("op", "("):
            raise _Unknown(value)  # a function-like macro we cannot expand
        return self.lookup(name=value, is_defined=False)

    def lookup(self, name: str, is_defined: bool) -> int | None:
        """Return a config symbol's value; unset CONFIG_ symbols are off, others unknown."""
        if name in self.config:
            return int(bool(self.config[name]))
        if name.startswith("CONFIG_"):
            return 0
        if not is_defined and name in ("true", "false"):
            return int(name == "true")
        return None


def eval_condition(expr: str, config: Mapping[str, bool]) -> bool | None:
    """Evaluate an #if expression: True, False, or None when it cannot be decided."""
    try:
        value = _CondParser(expr, config).evaluate()
    except (_Unknown, ValueError, RecursionError):
        return None
    return None if value is None else bool(value)


def _merged_config(config: Mapping[str, bool] | None) -> dict[str, bool]:
    merged = dict(DEFAULT_CONFIG)
    if config:
        merged.update(config)
    return merged


def apply_conditionals(text: str, config: Mapping[str, bool] | None = None) -> str:
    """Blank every directive line and every line in an inactive #if branch."""
    return _conditionals(text, Branches(_merged_config(config)))


def _conditionals(text: str, branches: "Branches",
                  marks: list[tuple[int, State]] | None = None) -> str:
    """`apply_conditionals` from the state BRANCHES holds (and leaves it in at the end);
    MARKS, when given, gets each directive's line and the state after it."""
    if "#" not in text:
        return text if branches.active else "\n" * text.count("\n")
    # Only directive lines are looked at; the lines between them are copied, or blanked
    # (their newlines kept) in an inactive branch.
    out: list[str] = []
    pos = 0
    line = 1
    for start, end in _directive_lines(text):
        between = text[pos:start]
        newlines = between.count("\n")
        out.append(between if branches.active else "\n" * newlines)
        branches.directive(text[start:end])
        line += newlines
        if marks is not None:
            marks.append((line, branches.state()))
        pos = end                   # the directive line itself is blanked
    rest = text[pos:]
    out.append(rest if branches.active else "\n" * rest.count("\n"))
    return "".join(out)


class Branches:
    """Which #if branch the lines read so far are in."""

    START: State = (True, ())       # the state of a file's first line: no #if open

    def __init__(self, cfg: Mapping[str, bool], state: State | None = None) -> None:
        self.cfg = cfg
        self.active, frames = state or self.START
        # Each frame: [enclosing branch active, this branch active, a branch already taken].
        self.stack: list[list[bool]] = [list(f) for f in frames]

    def state(self) -> State:
        """What decides the lines from here on, as a value (see ``START``)."""
        return (self.active, tuple((a, b, c) for a, b, c in self.stack))

    def directive(self, line: str) -> None:
        """Take one directive line into account."""
        cfg, stack = self.cfg, self.stack
        m = _DIRECTIVE.match(line)
        name = (m.group(1) or "") if m else ""
        rest = m.group(2).strip() if m else ""
        if name in ("if", "ifdef", "ifndef"):
            if name == "if":
                value = eval_condition(rest, cfg)
            else:
                word = rest.split()[0] if rest.split() else ""
                value = eval_condition(f"defined({word})", cfg) if word else None
                if name == "ifndef" and value is not None:
                    value = not value
            # An undecidable condition keeps the first branch, as the design asks.
            taken = value is not False
            stack.append([self.active, taken, taken])
            self.active = self.active and taken
        elif name == "elif" or name.startswith("elif"):
            if not stack:
                return
            frame = stack[-1]
            if frame[2]:
                frame[1] = False
            else:
                if name == "elif":
                    value = eval_condition(rest, cfg)
                else:  # elifdef / elifndef (C23)
                    value = eval_condition(f"defined({rest.split()[0] if rest else ''})", cfg)
                    if name == "elifndef" and value is not None:
                        value = not value
                frame[1] = value is not False
                frame[2] = frame[1]
            self.active = frame[0] and frame[1]
        elif name == "else":
            if not stack:
                return
            frame = stack[-1]
            frame[1] = not frame[2]
            frame[2] = True
            self.active = frame[0] and frame[1]
        elif name == "endif":
            if stack:
                self.active = stack.pop()[0]


def _directive_lines(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of each line whose first character that is not blank (as
    str.isspace() has it) is '#', in order."""
    at = text.find("#")
    while at >= 0:
        start = text.rfind("\n", 0, at) + 1
        end = text.find("\n", at)
        end = len(text) if end < 0 else end
        if not text[start:at].strip():
            yield start, end
        at = text.find("#", end)


# --------------------------------------------------------------------------- kernel syntax

# Words that vanish outright (attributes, sparse annotations, section markers).
_DROP_WORDS = frozenset("""
    __read_mostly __ro_after_init __always_inline noinline __noinline __init __exit __cold
    __hot __must_check __maybe_unused __always_unused __used __unused noinstr __user __rcu
    __percpu __iomem __force __kernel __safe __nocast __bitwise __private __visible asmlinkage
    fastcall __initdata __initconst __exitdata __refdata __ref __meminit __devinit __cpuinit
    __weak __pure __packed __noreturn __noclone __naked notrace __flatten __nocfi __sched
    __kprobes __irq_entry __latent_entropy __randomize_layout __no_randomize_layout
    __no_sanitize_address __no_kcsan __no_kasan_or_inline __no_sanitize_or_inline
    __cacheline_aligned __cacheline_aligned_in_smp ____cacheline_aligned
    ____cacheline_aligned_in_smp __page_aligned_data __page_aligned_bss __initdata_or_module
    __attribute_const__ __malloc __mustcheck __extension__ __rcu_bh __nonstring
    __no_profile __no_stack_protector __fix_address __noinline_for_stack __always_unused
    __ro_after_init_scope __designated_init __lockfunc __sparse_force __must_be_array_chk
    __compiletime_error __deprecated __global __nosavedata __ftrace_invalid_address__
    __data_racy __counted_by_ptr __signed_wrap __no_sanitize_thread
    __KVM_VMX_NOINLINE __kvm_noinline
""".split())

# Words that vanish together with a balanced parenthesised argument list.
_DROP_CALLS = frozenset("""
    __attribute__ __attribute __aligned __section __printf __scanf __acquires __releases
    __must_hold __cond_acquires __cond_releases __counted_by __alloc_size __diag_ignore
    __assume_aligned __realloc_size __nonnull __access __copy __cleanup __no_sanitize
    __no_sanitize_or_inline_for __retain __guarded_by __pt_guarded_by __alias __mode
    __compiletime_error __deprecated_msg __section_named __annotate __nocapture
""".split())

# Spellings pycparser does not know, mapped to ones it does.
_RENAME = {
    "__inline__": "inline", "__inline": "inline", "__volatile__": "volatile",
    "__volatile": "volatile", "__const": "const", "__const__": "const",
    "__signed__": "signed", "__signed": "signed", "__restrict": "restrict",
    "__restrict__": "restrict", "__builtin_offsetof": "offsetof",
    # _Alignof takes only a type in pycparser; sizeof takes both and is as opaque here.
    "__alignof__": "sizeof", "__alignof": "sizeof", "alignof": "sizeof", "__auto_type": "long",
    "__label__": "long", "_Noreturn": "", "__thread": "_Thread_local",
}

_ASM = frozenset(("asm", "__asm__", "__asm", "asm_inline", "asm_volatile_goto", "asm_goto_output"))
_ASM_QUALIFIERS = LazyPattern(r"(?:\s+|volatile\b|__volatile__\b|goto\b|inline\b|__inline__\b)*")
_TYPEOF = frozenset(("typeof", "__typeof__", "__typeof", "typeof_unqual", "__typeof_unqual__"))
_TO_ZERO = frozenset((
    "__builtin_types_compatible_p", "__builtin_va_arg", "__builtin_choose_expr",
    "__builtin_shufflevector", "__builtin_convertvector", "_Generic", "__same_type",
))

# A literal, or a word that starts with `__`, `asm` or `typeof`, or one of a few more.  Each
# alternative starts with a literal character, so that the regex engine can skip ahead
# to the characters that may start a match; `X(?<!\wX)` is `\bX`.
_KERNEL_WORD = LazyPattern(
    r'"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\''
    r"|_(?<!\w_)(?:_\w+|Noreturn\b|Generic\b)"
    r"|a(?<!\wa)(?:sm\w*|lignof\b)"
    r"|t(?<!\wt)ypeof\w*"
    r"|n(?<!\wn)o(?:inline|instr|trace)\b"
    r"|f(?<!\wf)astcall\b"
    r"|D(?<!\wD)ECLARE_BITMAP\b"
)


_LITERAL = {
    '"': LazyPattern(r'"(?:\\.|[^"\\\n])*"'),
    "'": LazyPattern(r"'(?:\\.|[^'\\\n])*'"),
}


def _balanced_end(text: str, pos: int) -> int:
    """Return the index after the ')' matching the '(' at POS, or -1 when unbalanced."""
    depth = 0
    i = pos
    n = len(text)
    while i < n:
        c = text[i]
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        elif c == '"' or c == "'":
            m = _LITERAL[c].match(text, i)
            if m:
                i = m.end()
                continue
        i += 1
    _reached_an_end()
    return -1


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\n":
        pos += 1
    return pos


def _prev_char(text: str, pos: int) -> str:
    pos -= 1
    while pos >= 0 and text[pos] in " \t\n":
        pos -= 1
    if pos < 0:
        _reached_an_end()
    return text[pos] if pos >= 0 else ""


def _scan_replace(text: str, search: Callable[[str, int], re.Match[str] | None],
                  handle: Callable[[str, re.Match[str]], tuple[int, str] | None]) -> str:
    """Apply HANDLE to each match SEARCH finds outside string literals (a pattern's
    ``search``, or a function that does what one would).

    HANDLE returns (end, replacement) to replace TEXT[match.start():end], or None to keep
    it.  Newlines of the span that the replacement lacks are appended to it, so lines stay
    put.
    """
    out: list[str] = []
    last = 0
    pos = 0
    while True:
        m = search(text, pos)
        if m is None:
            break
        if m.group(0)[0] in "\"'":
            pos = m.end()
            continue
        result = handle(text, m)
        if result is None:
            pos = m.end()
            continue
        end, replacement = result
        end = max(end, m.end())
        out.append(text[last:m.start()])
        out.append(replacement)
        span_newlines = text.count("\n", m.start(), end)
        missing = span_newlines - replacement.count("\n")
        if missing > 0:
            # Put the text after the span back in its column on the span's last line.
            out.append("\n" * missing + " " * (end - text.rfind("\n", m.start(), end) - 1))
        elif span_newlines == 0 and len(replacement) < end - m.start():
            out.append(" " * (end - m.start() - len(replacement)))
        last = pos = end
    out.append(text[last:])
    return "".join(out)


def _kernel_word(text: str, m: re.Match[str]) -> tuple[int, str] | None:
    word = m.group(0)
    end = m.end()
    if word in _DROP_WORDS:
        return end, " "
    if word == "DECLARE_BITMAP":
        # A member or variable declaration in disguise: spell out the array it declares.
        paren = _skip_space(text, end)
        close = _balanced_end(text, paren) if text.startswith("(", paren) else -1
        name, comma, bits = text[paren + 1:close - 1].partition(",") if close > 0 else ("", "", "")
        if not comma or not name.strip().isidentifier():
            return None
        return close, f"unsigned long {name.strip()}[BITS_TO_LONGS({bits.strip()})]"
    if word in _RENAME:
        return end, _RENAME[word]
    if word in _DROP_CALLS or word in _TYPEOF or word in _TO_ZERO or word in _ASM:
        start = end
        if word in _ASM:
            start = _ASM_QUALIFIERS.match(text, end).end()
        paren = _skip_space(text, start)
        if paren >= len(text) or text[paren] != "(":
            return (end, " ") if word in _DROP_CALLS else None
        close = _balanced_end(text, paren)
        if close < 0:
            return None
        if word in _DROP_CALLS:
            return close, " "
        if word in _TYPEOF:
            # A type of unknown shape: any scalar type keeps the declaration parseable.
            return close, "long"
        if word in _TO_ZERO:
            return close, "0"
        # asm after a declarator names a register or symbol and just goes; as a statement
        # it becomes an expression so the following ';' still closes a statement.
        prev = _prev_char(text, m.start())
        if prev.isalnum() or prev in "_]":
            return close, " "
        return close, "0"
    return None


# A macro pasted onto a string literal (`KERN_ERR "msg"`, `"%" PRIx64`): only a macro can
# sit there, and pycparser cannot, so it becomes an empty literal that concatenates.
_STRING_MACRO = LazyPattern(
    r'"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\''
    r'|\b[A-Za-z_]\w+(?=\s*")|(?<=")[ \t]*[A-Za-z_]\w*\b'
)


# The parts of _STRING_MACRO, for `_string_macro_search`.
_QUOTE = LazyPattern(r"[\"']")
_SM_LITERAL = LazyPattern(r'"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'')
_SM_BEFORE = LazyPattern(r'\b[A-Za-z_]\w++(?=\s*")')
_SM_AFTER = LazyPattern(r'(?<=")[ \t]*+[A-Za-z_]\w*+\b')
_SPACE_CHAR = LazyPattern(r"\s")
_WORD_CHAR = LazyPattern(r"\w")


def _string_macro_search(text: str, pos: int) -> re.Match[str] | None:
    """`_STRING_MACRO.search(text, pos)`, looking only around quotes.

    Every match of the pattern touches a quote: a literal starts at one, a word before a
    string ends where only white space separates it from one, a word after a string starts
    just after one.  So the first match is found at, just before or just after the first
    quote at or after POS whose neighbourhood matches, and the words in between are never
    looked at.
    """
    if pos > 0 and text[pos - 1] == '"':
        m = _SM_AFTER.match(text, pos)
        if m is not None:
            return m
    search = _QUOTE.search
    while (quote := search(text, pos)) is not None:
        q = quote.start()
        double = text[q] == '"'
        if double:
            # The word (from POS on) that white space alone separates from this quote.
            j = q - 1
            while j >= pos and _SPACE_CHAR.match(text, j):
                j -= 1
            end = j + 1
            while j >= pos and _WORD_CHAR.match(text, j):
                j -= 1
            if j + 1 < end and (m := _SM_BEFORE.match(text, j + 1)) is not None:
                return m
        if (m := _SM_LITERAL.match(text, q)) is not None:
            return m
        if double and (m := _SM_AFTER.match(text, q + 1)) is not None:
            return m
        pos = q + 1
    return None


_C_STRING_NEIGHBOURS = frozenset(("return", "sizeof", "case", "else", "do", "goto"))


def _string_macro(text: str, m: re.Match[str]) -> tuple[int, str] | None:
    word = m.group(0).strip()
    if word in ("u8", "L", "U", "u") or word in _C_STRING_NEIGHBOURS:
        return None  # string prefixes and keywords are C
    return m.end(), ' ""'


def rewrite_kernel_syntax(text: str) -> str:
    """Drop attributes and asm, and rename GNU spellings, keeping lines put."""
    text = _scan_replace(text, _KERNEL_WORD.search, _kernel_word)
    if '"' in text:
        text = _scan_replace(text, _string_macro_search, _string_macro)
    return text


# --------------------------------------------------------------------------- function bodies

# Names of iterator macros used like a loop head: `for_each_set_bit(i, map, n) { ... }`.
_LOOP_MACRO = LazyPattern(
    r'"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\''
    r"|\b(?:\w*for_each\w*|scoped_guard|scoped_cond_guard|while_each_\w+)(?=\s*\()"
)

_PREV_ELSE_DO = LazyPattern(r"\b(?:else|do)\s*\Z")

_OFFSETOF_BEFORE = LazyPattern(r"\boffsetof\s*\Z")

_BASE_TYPE = (r"(?:(?:const|volatile|unsigned|signed|long|short|int|char|_Bool|float|double"
              r"|void|__int128)\b\s*)+")


def _loop_macro(text: str, m: re.Match[str]) -> tuple[int, str] | None:
    paren = _skip_space(text, m.end())
    close = _balanced_end(text, paren)
    if close < 0:
        return None
    after = _skip_space(text, close)
    if after < len(text) and text[after] in ";,)":
        return None  # an ordinary call
    if _prev_char(text, m.start()) not in ";{}:)" and not _PREV_ELSE_DO.search(
            text, max(0, m.start() - 16), m.start()):
        return None  # inside an expression, so not a loop head
    # The head keeps its own newlines, so arguments on later lines stay on them.
    return close, f"while ({text[m.start():close]})"


def type_argument_pattern(type_names: Iterable[str]) -> re.Pattern[str]:
    """Return the pattern of a macro argument that is a type (`, struct foo *)`)."""
    names = "|".join(sorted((re.escape(n) for n in type_names), key=len, reverse=True))
    typename = rf"(?:{names})\b|\w+_t\b" if names else r"\w+_t\b"
    return re.compile(
        r'"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\''
        r"|(?<=[(,])(\s*)((?:const\s+)?(?:(?:struct|union|enum)\s+\w+\b|"
        + typename + "|" + _BASE_TYPE + r")(?:\s*\*)*(?:\s*const\b)?)(\s*)(?=[,)])"
    )


def _type_argument(text: str, m: re.Match[str]) -> tuple[int, str] | None:
    if m.group(2) is None:
        return None
    # `(T)` alone is a cast or sizeof; only a list with a comma makes T a macro argument.
    before = text[m.start() - 1] if m.start() > 0 else ""
    after = text[m.end()] if m.end() < len(text) else ""
    if before == "(" and after == ")":
        return None
    if before == "(" and _OFFSETOF_BEFORE.search(text, max(0, m.start() - 24), m.start() - 1):
        return None  # pycparser knows offsetof(type, member) itself
    return m.end(), f"{m.group(1)}sizeof({m.group(2).strip()}){m.group(3)}"


def rewrite_body(text: str, type_pattern: re.Pattern[str] | None = None) -> str:
    """Make statement-level kernel macros in a function body parse as C.

    Iterator macros used as loop heads become `while (macro(...))`, and macro arguments
    that are types (`container_of(p, struct vcpu_vmx, vcpu)`, `min_t(u32, a, b)`) become
    `sizeof(type)`, so the call is still a call with the same arguments in the AST.
    """
    if "for_each" in text or "guard" in text:
        text = _scan_replace(text, _LOOP_MACRO.search, _loop_macro)
    if type_pattern is None:
        type_pattern = type_argument_pattern(frozenset())
    return _scan_replace(text, type_pattern.search, _type_argument)
