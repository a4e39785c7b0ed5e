"""The pipeline: tree -> facts and sites -> graph -> checks -> findings, for audit and check."""
from __future__ import annotations

import atexit
import contextlib
import functools
import threading
from pathlib import Path
from typing import Iterable, Iterator

from msgspec import Struct, field, structs

from vmxlint import __version__, cache
from vmxlint.findings import Finding, number_occurrences
from vmxlint.incremental import Neighbour
from vmxlint.memo import LazyPattern
from vmxlint.tree import NESTED_C, Tree, TreeError
from vmxlint.tree import lines as text_lines

# Files whose content decides the analysis of a tree.
INPUTS = (
    NESTED_C,
    "arch/x86/include/asm/vmx.h",
    "arch/x86/include/asm/vmxfeatures.h",
    "arch/x86/kvm/vmx/nested.h",
    "arch/x86/kvm/vmx/vmcs12.c",
    "arch/x86/kvm/vmx/vmcs_shadow_fields.h",
    "arch/x86/kvm/vmx/hyperv_evmcs.c",
    "arch/x86/kvm/vmx/evmcs.c",
    "arch/x86/include/asm/hyperv-tlfs.h",
)


def inputs() -> list[str]:
    """Files whose content decides the analysis: nested.c, the facts, the runtime writers."""
    from vmxlint.model import load_model

    model = load_model()
    extra = model.entry.runtime_files + model.caches.helper_files + model.caches.marker_files
    return list(INPUTS) + sorted({p for p in extra if p not in INPUTS})


class Analysis(Struct, forbid_unknown_fields=True):
    """What one tree image yields."""

    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    written: list[str] = field(default_factory=list)   # fields the entry path writes
    # For reuse by the next image (vmxlint.incremental): each checked field's digest and
    # the nested.c lines of its own sites (under ``COMMON``, those of the sites every
    # slice holds), and the first and last line of each function.
    digests: dict[str, str] = field(default_factory=dict)
    lines: dict[str, list[int]] = field(default_factory=dict)
    spans: dict[str, tuple[int, int]] = field(default_factory=dict)
    # For reuse of the whole analysis (an edit the walk does not read): whether it may be
    # (the entry path was analysed), the functions it read (nested.c's skeleton is made
    # of them, vmxlint.incremental.skeleton), what else it read, and ``also``.
    reusable: bool = False
    reached: list[str] = field(default_factory=list)
    context: str = ""
    also: list[str] = field(default_factory=list)


def _rules_digest() -> str:
    from vmxlint.model_paths import rules_dir

    return cache.files_digest(rules_dir(), ".toml")


@functools.lru_cache(maxsize=2)
def _unit(text: str):
    """nested.c split into definitions, parsed as the walk reaches them; shared by the
    look at an image's skeleton and its walk."""
    from vmxlint.cfront import parse_unit

    return parse_unit(text, NESTED_C, lazy=True)


def entry_path(tree: Tree, root: str | None = None):
    """Parse nested.c of the tree and walk the nested VM-entry path: (unit, path).

    The root is the first of the model's entry roots the tree defines, unless given.
    """
    from vmxlint.facts import controls
    from vmxlint.model import load_model
    from vmxlint.sites import find_root, walk_entry_path

    text = tree.read(NESTED_C)
    if text is None:
        raise TreeError(f"{tree.describe()}: no {NESTED_C} in this tree")
    unit = _unit(text)
    model = load_model()
    root = root or find_root(unit.functions, model)
    if root is None or root not in unit.functions:
        return unit, None
    # Kept by the headers' content: 3-4 ms of every run to find the bits again.
    bits = _by_content(tree, controls.FILES, lambda: controls.load(tree), controls.Controls)
    path = walk_entry_path(unit.functions, model, root, bits, summaries=not _scratch,
                           store=None if _scratch else _store_key(bits))
    path.notes.extend(bits.fallbacks)
    return unit, path


def _store_key(bits) -> str:
    """The cache key of the walk's summaries on disk: what a summary's meaning depends on
    besides the functions it read (those it checks itself, by fingerprint)."""
    from vmxlint import walkstore
    from vmxlint.cfront import astcache

    return cache.key("walk", walkstore.FORMAT, astcache.fixed_part(), _rules_digest(),
                     repr(sorted(bits.bits.items())), repr(sorted(bits.helpers.items())),
                     NESTED_C)


def analyse(tree: Tree, root: str | None = None, also: Iterable[str] = (),
            base: Neighbour | None = None) -> Analysis:
    """All findings of one tree image (cached by the content of its inputs).

    ``also`` names fields to ask VMX201 about even when this image writes none of them:
    the fields the other image of a patch writes, so deleting the only write of a field
    is seen.  ``base`` is the analysis of a neighbouring image (the pre-image of a patch):
    the fields whose checks read the same things take its findings; the result is the
    same with or without it.
    """
    also = sorted(set(also))
    same = base is not None and base.text == (tree.read(NESTED_C) or "")
    if same:
        # The neighbour's very image asked about other fields costs nothing to make again
        # from it: not even a read of the cache (whose copy would share nothing with it).
        result = _unchanged(tree, root, also, base)
        if result is not None:
            return result
    content = tree.digest(inputs())
    k = cache.key(__version__, cache.code_digest(), _rules_digest(), root or "", content,
                  *also)
    hit = _cached(k)
    if hit is not None:
        return hit
    if base is not None:
        from vmxlint.cfront import recall

        recall(base.text)       # this image's nested.c is spliced from the neighbour's
        result = None if same else _unchanged(tree, root, also, base)
        if result is not None:
            _keep(k, result)    # only an analysis with moved lines is worth an entry
            return result
    result = _analyse(tree, root, also, base, content)
    _keep(k, result)
    return result


def _cached(k: str) -> Analysis | None:
    """The analysis the disk cache holds under K (``vmxlint.stored``), or None."""
    from vmxlint.stored import Stored, restored

    entry = cache.get(k, Stored)
    return restored(entry) if entry is not None else None


def _keep(k: str, result: Analysis) -> None:
    """Write RESULT to the disk cache under K, its long detail strings once each."""
    from vmxlint.stored import stored

    cache.put(k, stored(result))


def _context(tree: Tree, root: str | None) -> str:
    """Digest of what an analysis reads besides nested.c."""
    return cache.key(root or "", tree.digest([p for p in inputs() if p != NESTED_C]))


def _unchanged(tree: Tree, root: str | None, also: list[str],
               base: Neighbour) -> Analysis | None:
    """The neighbour's analysis, lines moved, when the edit between them changes nothing
    the analysis reads (a comment, whitespace, a function the walk does not reach)."""
    from vmxlint.incremental import LineMap, edits_read_code, moved_analysis, skeleton

    old = base.analysis
    if not old.reusable or old.context != _context(tree, root):
        return None
    written = set(old.written)
    if set(also) - written != set(old.also) - written:
        return None
    text = tree.read(NESTED_C) or ""
    if text == base.text:           # the same image, asked about other fields (``also``)
        return structs.replace(old, also=list(also))
    # A part not analysed (VMX004, VMX006) is said in messages that may name lines.
    if any(f.code in UNANALYSED for f in old.findings):
        return None
    if edits_read_code(base.text, text, old.spans, old.reached) or unusable_source(text):
        return None
    spans = _unit(text).spans()
    if skeleton(text, spans, old.reached) != skeleton(base.text, old.spans, old.reached):
        return None
    moved = moved_analysis(old, LineMap(NESTED_C, base.text, text, old.spans, spans), spans)
    return structs.replace(moved, also=list(also)) if moved is not None else None


_scratch = False
# What the checks of every image of the process share, by model and thread (a BDD manager
# is not for two threads at once): the solver and the consumption conditions of the
# fields (both depend on the model alone).
_SHARED: dict[tuple[int, int], tuple[object, dict]] = {}
atexit.register(_SHARED.clear)


def _shared_by_images(model) -> dict:
    from vmxlint.answers import Book, BookedSolver
    from vmxlint.checks import model_solver

    key = (id(model), threading.get_ident())
    held = _SHARED.get(key)
    if held is None:
        # The solver is made when a check first asks what the book of answers an earlier
        # process left does not hold: an image whose fields are all reused needs none,
        # nor does one whose re-checked fields ask what the audit of the tree asked.
        book = Book(cache.key("answers", __version__, cache.code_digest(), _rules_digest()))
        solver = BookedSolver(lambda: model_solver(model), book)
        held = _SHARED[key] = (model, {"process_solver": lambda: solver, "_consumed": {}})
        while len(_SHARED) > 8:
            _SHARED.pop(next(iter(_SHARED)), None)
    return held[1]


@contextlib.contextmanager
def from_scratch() -> Iterator[None]:
    """Within this, every image is walked and checked anew: nothing is taken from the
    images analysed before, in this process or on disk (the walk's summaries, prepared
    images, the shared solver).  The reference the incremental path is tested against.
    (Process-wide: another thread meanwhile only does more work than it needs.)"""
    global _scratch
    before, _scratch = _scratch, True
    try:
        yield
    finally:
        _scratch = before


def _by_content(tree: Tree, files: Iterable[str], compute, kind):
    """compute(), a value of type ``kind``, cached by the content of the files it reads
    (the runtime writers of vmx.c and the facts of the headers do not change with a
    patch to nested.c)."""
    k = cache.key("by-content", kind.__name__, __version__, cache.code_digest(),
                  _rules_digest(), tree.digest(sorted(files)))
    hit = _CONTENT.get(k)
    if hit is None:
        hit = cache.get(k, kind)
        if hit is None:
            hit = compute()
            cache.put(k, hit)
        _CONTENT[k] = hit
        while len(_CONTENT) > 16:
            _CONTENT.pop(next(iter(_CONTENT), ""), None)
    return hit


# What `_by_content` gave, in this process (each image of a series reads the same files);
# the values are shared, never changed.
_CONTENT: dict[str, object] = {}


class _Prepared(Struct):
    """One image parsed, walked and bounded: what its analyses share whatever ``also``."""

    out: Analysis                 # findings and notes before the checks
    ctx: object = None            # the checks' Context; None when nothing is to be checked
    skipped: set[str] = field(default_factory=set)    # fields over a bound (VMX006)
    digester: object = None       # vmxlint.incremental.Digester of the path's formulas
    shared: str = ""              # digest of what every field's checks read
    # Each field checked so far, by (name, whether its value must be provided: the image
    # writes it or ``also`` names it): its digest, the lines of its slice, its findings.
    fields: dict[tuple[str, bool], tuple[str, list[int], list[Finding]]] = \
        field(default_factory=dict)


# The last images prepared in this process, by content: a patch's pre- and post-image are
# each analysed twice when the post-image writes a new field (``also``), and the next
# patch of a series starts from this one's post-image.
_PREPARED: dict[tuple, _Prepared] = {}
_KEEP = 2
# Dropped before the interpreter tears its modules down: a BDD manager freed during
# teardown makes dd print a traceback.
atexit.register(_PREPARED.clear)


def _analyse(tree: Tree, root: str | None, also: list[str],
             base: Neighbour | None = None, content: str | None = None) -> Analysis:
    from vmxlint.model import load_model

    # Per thread: a prepared image holds its thread's solver.
    k = (id(load_model()), root, content or tree.digest(inputs()), threading.get_ident())
    prep = None if _scratch else _PREPARED.get(k)
    if prep is None:
        prep = _PREPARED[k] = _prepare(tree, root)
        while len(_PREPARED) > _KEEP:
            _PREPARED.pop(next(iter(_PREPARED), None), None)
    out = structs.replace(prep.out, findings=list(prep.out.findings),
                          notes=list(prep.out.notes), digests={}, lines={}, also=list(also))
    if prep.ctx is None:
        return out
    ctx = prep.ctx.with_also(also)
    out.findings.extend(_by_field(tree, ctx, out, prep, base))
    out.findings = number_occurrences(out.findings)
    return out


def _prepare(tree: Tree, root: str | None) -> _Prepared:
    from vmxlint.checks import Context
    from vmxlint.facts import Facts, fact_files, load_facts
    from vmxlint.model import load_model

    model = load_model()
    facts = _by_content(tree, fact_files(), lambda: load_facts(tree), Facts)
    out = Analysis(notes=list(facts.fallbacks))
    text = tree.read(NESTED_C) or ""
    why = unusable_source(text)
    if why:
        want = root or model.entry.roots[0]
        out.findings.append(_vmx004(model, want, 1, f"{NESTED_C} {why}: nothing on the nested "
                                    "entry path was analysed", blind=True))
        return _Prepared(out)
    unit, path = entry_path(tree, root)
    if path is None:
        want = root or model.entry.roots[0]
        fails = [f for f in map(unit.failure, model.entry.roots) if f is not None]
        line = min((f.line for f in fails), default=1)
        out.findings.append(_vmx004(model, want, line, f"{want}() is missing or could not be "
                                    "parsed: nothing on the nested entry path was analysed",
                                    blind=True))
        return _Prepared(out)
    out.notes.extend(path.notes)
    path, over, skipped = _within_budget(path, model)
    out.findings.extend(over)
    if path is None:
        return _Prepared(out)
    # A function the path calls that did not parse hides its writes.
    called = _called_names(text, unit, path.functions)
    fails = [f for f in map(unit.failure, sorted(called)) if f is not None]
    for fail in sorted(fails, key=lambda f: f.line):
        if fail.name:
            out.findings.append(_vmx004(model, fail.name, fail.line,
                                        f"{fail.name}() could not be parsed ({fail.message}); "
                                        "its writes are unknown"))
    from vmxlint.incremental import Digester
    from vmxlint.runtime import Writer, absent_caches, cache_helpers, scan

    runtime = _by_content(tree, model.entry.runtime_files, lambda: scan(tree, model),
                          dict[str, list[Writer]])
    helpers = cache_helpers(tree, model, lambda rel, compute: _by_content(
        tree, [rel], compute, dict[str, str]), {NESTED_C: _callees_text(text, unit, path)})
    ctx = Context(path, facts, model, **({} if _scratch else _shared_by_images(model)),
                  runtime=runtime, cache_helpers=helpers,
                  absent_caches=frozenset(absent_caches(tree, model)))
    out.written = sorted({w.field for w in ctx.writes if w.field})
    out.spans = unit.spans()
    out.reached = sorted(set(path.functions) | called | set(model.entry.roots)
                         | {h for d in model.entry.deferred for h in d.handlers})
    out.reusable = True
    out.context = _context(tree, root)
    shared = cache.key(cache.code_digest(), _rules_digest(), path.root, out.context,
                       repr(sorted(ctx.cache_helpers.items())), repr(sorted(ctx.absent_caches)))
    return _Prepared(out, ctx, skipped, Digester(NESTED_C, path.origins), shared)


def _by_field(tree: Tree, ctx, out: Analysis, prep: _Prepared,
              base: Neighbour | None) -> list[Finding]:
    """The checks' findings, field by field; a field whose slice is the one it had in
    ``base`` but for moved lines takes base's findings, moved (vmxlint.incremental).  A
    field checked for another analysis of the same image (another ``also``) is taken
    from ``prep``: its checks depend on ``also`` only through whether they must ask
    about the field when the image does not write it (``Context.consumed_fields``)."""
    from vmxlint.checks import registered, run_checks
    from vmxlint.incremental import FieldDigests, LineMap, lines, moved, relocate, slices

    cut = slices(ctx)
    written = set(out.written)
    asked = [(name, name in ctx.also or name in written) for name in cut.own
             if name not in prep.skipped]
    todo = [k for k in asked if k not in prep.fields]
    common = lines((s for _, s in cut.common), NESTED_C)
    if todo:
        where = LineMap(NESTED_C, base.text, tree.read(NESTED_C) or "",
                        base.analysis.spans, out.spans) if base is not None else None
        # A slice's lines are the common sites' and its own, in an order its digest
        # fixes: when the digests are equal, the slice moved if both parts did.
        if where is None or not moved(base.analysis.lines.get(COMMON, [-1]), common, where):
            where = None
        codes = set(registered())
        before: dict[str, list[Finding]] = {}
        for f in base.analysis.findings if where is not None else ():
            if f.field and f.code in codes:
                before.setdefault(f.field, []).append(f)
        digests = FieldDigests(ctx, cut, prep.shared, prep.digester)
    for name, consumed in todo:
        d = digests.of(name, consumed)
        at = lines((s for _, s in cut.own[name]), NESTED_C)
        reused = None
        if where is not None and base.analysis.digests.get(name) == d \
                and moved(base.analysis.lines.get(name, [-1]), at, where):
            reused = relocate(before.get(name, []), where)
        # The field's own context is made only to check it (most fields are reused).
        checked = reused if reused is not None else \
            list(run_checks(ctx.restrict(name, cut.of(name))))
        prep.fields[name, consumed] = (d, at, checked)
    found: list[Finding] = []
    if asked:
        out.lines[COMMON] = common
    for k in asked:
        out.digests[k[0]], out.lines[k[0]], checked = prep.fields[k]
        found.extend(checked)
    return found


# The key of ``Analysis.lines`` that holds the lines of the sites every slice holds (no
# field is named so).
COMMON = ""


# Documented bounds (rules/VMX006-analysis-budget.toml); real trees stay far below them
# (6.12 and 6.1: 7 writes of one field, guards of 614 terms and 63 atoms, 235 KB nested.c).
MAX_WRITES_PER_FIELD = 64
MAX_GUARD_TERMS = 20_000
MAX_GUARD_ATOMS = 256
MAX_PATCHES = 500


def _terms(f) -> int:
    """Atom occurrences of f read as a tree (shared subformulas counted each time), kept on
    each formula object: the guards of an image share subformulas with each other and,
    through the walk's summaries, with the images before it."""
    from vmxlint.logic import Atom, fold

    return fold(f, "_t", lambda g, kids: 1 if isinstance(g, Atom) else sum(kids))


def _too_big(guard) -> str | None:
    """Why a guard is over a bound, or None; kept on the guard object (a series' images
    share most guards, through the walk's summaries, and an image asks of each write's)."""
    from vmxlint.logic import Const

    if isinstance(guard, Const):
        return None
    bounds = (MAX_GUARD_TERMS, MAX_GUARD_ATOMS)
    held = guard.__dict__.get("_big")
    if held is None or held[0] != bounds:
        held = guard.__dict__["_big"] = (bounds, _over_bound(guard))
    return held[1]


def _over_bound(guard) -> str | None:
    from vmxlint.logic import atoms

    terms = _terms(guard)
    if terms > MAX_GUARD_TERMS:
        return f"a guard of {terms} terms (bound {MAX_GUARD_TERMS})"
    if terms > MAX_GUARD_ATOMS and len(atoms(guard)) > MAX_GUARD_ATOMS:
        return f"a guard over {len(atoms(guard))} conditions (bound {MAX_GUARD_ATOMS})"
    return None


def _within_budget(path, model):
    """The entry path without the fields over a bound, VMX006 findings, skipped fields.

    The path is None when the entry itself is over a bound: then nothing is analysed.
    """
    rule = model.rules["VMX006"]
    found: list[Finding] = []
    entry_why = _too_big(path.success) or next(
        (w for s in path.sites if s.kind == "entry" for w in [_too_big(s.guard)] if w),
        None)
    if entry_why:
        found.append(Finding(code="VMX006", name=rule.name, severity=rule.severity,
                             message=f"the VM entry is reached under {entry_why}: nothing on "
                                     "the nested entry path was analysed",
                             path=NESTED_C, line=1, function=path.root,
                             details=((BLIND, "nested entry path"),)))
        return None, found, set()
    writes: dict[str, list] = {}
    for s in path.sites:
        if s.kind == "write" and s.field:
            writes.setdefault(s.field, []).append(s)
    skipped: dict[str, tuple] = {}
    told: dict[int, str | None] = {}    # by guard: the writes of a block share theirs
    for name, sites in writes.items():
        if len(sites) > MAX_WRITES_PER_FIELD:
            skipped[name] = (sites[0], f"{len(sites)} writes (bound {MAX_WRITES_PER_FIELD})")
            continue
        for s in sites:
            key = id(s.guard)
            why = told[key] if key in told else told.setdefault(key, _too_big(s.guard))
            if why:
                skipped[name] = (s, why)
                break
    for name, (site, why) in skipped.items():
        found.append(Finding(code="VMX006", name=rule.name, severity=rule.severity,
                             message=f"{name} not analysed: {why}", path=site.path,
                             line=site.line, function=site.function, field=name,
                             statement=f"budget:{name}", details=((BLIND, name),)))
    if skipped:
        path = structs.replace(path, sites=[s for s in path.sites
                                            if s.field not in skipped])
    return path, found, set(skipped)


@functools.lru_cache(maxsize=4)
def unusable_source(text: str) -> str | None:
    """Why a C file cannot be analysed at all (a NUL byte, a truncated file), or None."""
    if "\0" in text:
        return "holds a NUL byte"
    if text and not text.endswith("\n"):
        return "is truncated (no newline at its end)"
    from vmxlint.cfront.braces import depths

    # The braces outside comments and literals (the next image of a series is scanned
    # from the last one, where the two agree).
    lowest, final = depths(text)
    if lowest < 0:
        return "has an unbalanced '}'"
    if final > 0:
        return "is truncated (a '{' is never closed)"
    return None


def _callees_text(text: str, unit, path) -> list[str]:
    """The texts of the functions of nested.c the path calls: only a helper the path
    calls can keep a cache right on it."""
    lines = text_lines(text)
    spans = unit.spans()
    callees = sorted({s.callee for s in path.sites if s.kind == "call" and s.callee in spans})
    return ["\n".join(lines[spans[n][0] - 1:spans[n][1]])
            + ("\n" if spans[n][1] < len(lines) else "") + "\n" for n in callees]


def _called_names(text: str, unit, functions: Iterable[str]) -> set[str]:
    lines = text_lines(text)
    span_of = getattr(unit.functions, "span", None)     # a lazy unit: mostly no parse
    names: set[str] = set()
    for name in functions:
        if span_of is not None:
            first, last = span_of(name)
        else:
            fn = unit.functions[name]
            first, last = fn.start_line, fn.end_line
        names.update(_calls_in("\n".join(lines[first - 1:last])))
    return names


@functools.lru_cache(maxsize=1024)      # a function's text is mostly the last image's
def _calls_in(body: str) -> frozenset[str]:
    return frozenset(_CALL.findall(body))


_CALL = LazyPattern(r"\b([A-Za-z_]\w*)\s*\(")


BLIND = "not_analysed"     # detail of a finding that says a whole analysis did not run
# Findings that say part of the analysis did not run.
UNANALYSED = ("VMX004", "VMX006")


def _vmx004(model, function: str, line: int, message: str, blind: bool = False) -> Finding:
    """VMX004; blind: nothing on the entry path was analysed (an error, never hidden)."""
    rule = model.rules["VMX004"]
    details: tuple[tuple[str, object], ...] = ((BLIND, "nested entry path"),) if blind else ()
    return Finding(code="VMX004", name=rule.name, severity="error" if blind else rule.severity,
                   message=message, path=NESTED_C, line=line, function=function,
                   details=details)


def kernel_top(path: str | None) -> Tree:
    """The tree for --tree, or the nearest kernel tree above the current directory."""
    if path is not None and not Path(path).exists():
        raise TreeError(f"{path}: no such directory")
    return Tree.open(path)
