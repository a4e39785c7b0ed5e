"""Load and validate the rule catalogue (``rules/VMXnnn-*.toml``) and the reference model."""
from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any, Callable, Generic, TypeVar

from msgspec import Struct, field

from vmxlint.errors import VmxlintError


SEVERITIES = ("error", "warning", "info")
ORIGINS = ("vmcs12", "l0", "constant", "mixed", "none")
# Provenance classes of written values (rules/model/values.toml, DESIGN section 2).
PROVENANCES = ("vmcs12", "constant", "l0-config", "snapshot", "runtime")
CACHES = ("controls-shadow", "segment-cache", "register-cache")
# Namespaces a model predicate may start with (see the header of rules/model/fields.toml).
ROOTS = ("vmcs02", "vmcs12", "vmcs01", "l0", "l2", "nested", "evmcs")
CODE_RE = re.compile(r"^VMX\d{3}$")
NAME_RE = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
# Condition language: true, false, not, and, or, parentheses and dotted predicates.
# Segments after the first dot may hold capitals for eVMCS group names (evmcs.clean.GUEST_GRP1).
_TOKEN_RE = re.compile(r"\s*(?:(?P<par>[()])|(?P<word>[a-z][a-z0-9_]*(?:\.[A-Za-z0-9_]+)*)"
                       r"|(?P<param>\$[a-z_][a-z0-9_]*)|(?P<bad>\S))")
_KEYWORDS = ("true", "false", "not", "and", "or")


T = TypeVar("T")


class PerModel(Generic[T]):
    """What MAKE makes of a model, made once per model for the process (every image of a
    series asks it); a few models are kept (the tests load others)."""

    def __init__(self, make: "Callable[[Model], T]") -> None:
        self._make = make
        self._held: dict[int, tuple[Model, T]] = {}

    def __call__(self, model: "Model") -> T:
        held = self._held.get(id(model))
        if held is None or held[0] is not model:     # the id of a model gone: made anew
            held = self._held[id(model)] = (model, self._make(model))
            while len(self._held) > 4:
                self._held.pop(next(iter(self._held), -1), None)   # (another thread)
        return held[1]


class ModelError(VmxlintError):
    """Bad rule or model data; the message is one line: file, key, problem."""

    def __init__(self, file: Path | str, key: str, problem: str) -> None:
        self.file, self.key, self.problem = str(file), key, " ".join(str(problem).split())
        super().__init__(f"{self.file}: {self.key}: {self.problem}")


class Rule(Struct, frozen=True):
    code: str
    name: str
    severity: str
    summary: str
    message: str
    rationale: str
    limits: str
    references: tuple[str, ...]
    default: bool


class FieldModel(Struct, frozen=True):
    name: str
    entry: str
    exit: str
    origin: str
    cache: str | None
    cache_helpers: tuple[str, ...]
    lazy: bool
    readers: tuple[str, ...]
    hot_constant: bool
    source: str


class Predicate(Struct, frozen=True):
    spelling: str
    means: str
    functions: tuple[str, ...]
    regex: bool
    source: str


class SummaryWrite(Struct, frozen=True):
    field: str
    when: str
    origin: str
    source: str
    value: str | None = None     # "$param": the written value is that argument of the call


class ValuePattern(Struct, frozen=True):
    """A leaf of a written value (``vcpu->arch.tsc_offset``) and its provenance class."""

    pattern: re.Pattern[str]
    provenance: str


class Summary(Struct, frozen=True):
    name: str
    params: tuple[str, ...]
    writes: tuple[SummaryWrite, ...]
    calls: tuple[str, ...]
    source: str


class Deferred(Struct, frozen=True):
    """A request made on the entry path whose handler runs before the VM entry."""

    request: str
    handlers: tuple[str, ...]      # names it has had, the first one the tree defines wins


class EntryModel(Struct, frozen=True):
    """``entry.toml``: roots, phases and their old names, deferred requests, context axioms."""

    roots: tuple[str, ...]
    consumer: str
    runtime_files: tuple[str, ...]
    every_entry: tuple[str, ...]
    restore_writers: tuple[str, ...]
    phases: dict[str, tuple[str, ...]]
    deferred: tuple[Deferred, ...]
    deferred_context: tuple[str, ...]
    axioms: tuple[str, ...]

    def phase_of(self, function: str) -> str | None:
        """The phase a function name stands for, under its current or an older name."""
        return next((p for p, names in self.phases.items() if function in names), None)


class CacheModel(Struct, frozen=True):
    """``caches.toml``: what keeps each software cache consistent."""

    effects: dict[str, tuple[re.Pattern[str], ...]]   # cache kind -> store patterns
    helper_files: tuple[str, ...]
    present: dict[str, re.Pattern[str]] = field(default_factory=dict)
    marker_files: tuple[str, ...] = ()

    def cache_of(self, store: str) -> str | None:
        """The cache a store (``lhs=rhs``, whitespace removed) invalidates or updates."""
        return next((k for k, rxs in self.effects.items() if any(r.search(store) for r in rxs)),
                    None)


class Model(Struct, dict=True):
    rules: dict[str, Rule]
    fields: dict[str, FieldModel]
    controls: dict[str, str]
    axioms: tuple[str, ...]
    predicates: tuple[Predicate, ...]
    summaries: dict[str, Summary]
    entry: EntryModel
    values: tuple[ValuePattern, ...] = ()
    caches: CacheModel = CacheModel({}, ())

    @functools.cached_property
    def control_formulas(self) -> dict:
        """vmcs02 controls as formulas over L0 and vmcs12 predicates, parsed once."""
        from vmxlint.logic import parse_expr

        return {k: parse_expr(v) for k, v in self.controls.items()}


def condition_atoms(text: str, *, params: bool = False) -> tuple[str, ...]:
    """Return the predicate names of a condition; raise ValueError if it is not well formed."""
    atoms: list[str] = []
    want_operand, depth = True, 0
    for m in _TOKEN_RE.finditer(text):
        kind = m.lastgroup
        tok = m.group(kind) if kind else ""
        if kind == "word" and tok not in _KEYWORDS and "." not in tok:
            raise ValueError(f"{tok!r} is neither a keyword nor a dotted predicate in {text!r}")
        if want_operand and tok in ("not", "("):
            depth += tok == "("
        elif want_operand and (kind == "word" and tok not in ("and", "or")
                               or kind == "param" and params):
            atoms += [] if tok in _KEYWORDS else [tok]
            want_operand = False
        elif not want_operand and tok in ("and", "or", ")"):
            want_operand, depth = tok != ")", depth - (tok == ")")
            if depth < 0:
                raise ValueError(f"unbalanced ')' in condition {text!r}")
        else:
            raise ValueError(f"unexpected {tok!r} in condition {text!r}")
    if want_operand or depth:
        raise ValueError(f"condition {text!r} is incomplete or leaves '(' open")
    return tuple(atoms)


class _Table:
    """One TOML table of ``file`` at ``where``, with typed, validated access to its keys."""

    def __init__(self, file: Path, value: Any, where: str) -> None:
        if not isinstance(value, dict):
            raise ModelError(file, where, "expected a table")
        self.file, self.data, self.where = file, value, where

    def err(self, key: str, problem: str) -> ModelError:
        return ModelError(self.file, f"{self.where}.{key}" if self.where else key, problem)

    def get(self, key: str, kind: type = str, default: Any = ...) -> Any:
        if key not in self.data:
            if default is ...:
                raise ModelError(self.file, self.where or "(top)", f"missing key {key!r}")
            return default
        if not isinstance(self.data[key], kind):
            raise self.err(key, f"expected {kind.__name__}, got {type(self.data[key]).__name__}")
        return self.data[key]

    def enum(self, key: str, allowed: tuple[str, ...], default: Any = ...) -> Any:
        value = self.get(key, str, default)
        if value is not None and value not in allowed:
            raise self.err(key, f"{value!r} is not one of {', '.join(allowed)}")
        return value

    def strs(self, key: str) -> tuple[str, ...]:
        items = self.get(key, list, [])
        if not all(isinstance(i, str) for i in items):
            raise self.err(key, "expected a list of strings")
        return tuple(items)

    def cond(self, key: str, *, params: tuple[str, ...] | None = None,
             roots: tuple[str, ...] | None = ROOTS, text: str | None = None) -> str:
        text = self.get(key) if text is None else text
        try:
            atoms = condition_atoms(text, params=params is not None)
        except ValueError as exc:
            raise self.err(key, str(exc)) from None
        for atom in atoms:
            if atom.startswith("$"):
                if atom[1:] not in (params or ()):
                    raise self.err(key, f"{atom} is not a parameter")
            elif roots is not None and atom.split(".")[0] not in roots:
                raise self.err(key, f"predicate {atom!r} is outside {', '.join(roots)}")
        return text

    def tables(self, key: str, kind: type) -> list[tuple[str, _Table]]:
        items = self.get(key, kind, kind())
        pairs = items.items() if kind is dict else ((f"[{i}]", t) for i, t in enumerate(items))
        return [(k, _Table(self.file, t, f"{key}{'.' if kind is dict else ''}{k}"))
                for k, t in pairs]


def _load_toml(file: Path) -> _Table:
    try:
        doc = toml_data(file.read_bytes())
    except ValueError as exc:           # not TOML, or not UTF-8
        raise ModelError(file, "(syntax)", str(exc)) from None
    except OSError as exc:
        raise ModelError(file, "(file)", exc.strerror or str(exc)) from None
    return _Table(file, doc, "")


def toml_data(data: bytes) -> dict[str, Any]:
    """A TOML document's data.  Every run loads the rules' 29 files: rtoml (Rust) parses
    them in 3 ms where Python's tomllib takes 20 ms."""
    import rtoml

    return rtoml.loads(data.decode("utf-8"))    # ValueError: not TOML or not UTF-8


def _load_rule(file: Path) -> Rule:
    t = _load_toml(file)
    code, name, severity = t.get("code"), t.get("name"), t.enum("severity", SEVERITIES)
    if not CODE_RE.match(code):
        raise t.err("code", f"{code!r} does not match VMXnnn")
    if not NAME_RE.match(name):
        raise t.err("name", f"{name!r} is not a kebab-case slug")
    if file.stem != f"{code}-{name}":
        raise t.err("code", f"file name must be {code}-{name}.toml")
    if "\n" in t.get("message"):
        raise t.err("message", "must be one line")
    return Rule(code, name, severity, t.get("summary"), t.get("message"), t.get("rationale"),
                t.get("limits"), t.strs("references"), t.get("default", bool, True))


def _load_fields(file: Path) -> dict[str, FieldModel]:
    fields: dict[str, FieldModel] = {}
    top = _load_toml(file)
    top.get("fields", dict)
    for name, t in top.tables("fields", dict):
        cache, helpers = t.enum("cache", CACHES, None), t.strs("cache_helpers")
        if helpers and cache is None:
            raise t.err("cache_helpers", "given without 'cache'")
        fields[name] = FieldModel(
            name, t.cond("entry"), t.cond("exit"), t.enum("origin", ORIGINS),
            cache, helpers, t.get("lazy", bool, False),
            t.strs("readers"),
            t.get("hot_constant", bool, False), t.get("source"))
    return fields


def _load_vmcs02(file: Path) -> tuple[dict[str, str], tuple[str, ...]]:
    top = _load_toml(file)
    top.get("controls", dict)
    controls: dict[str, str] = {}
    for key, t in top.tables("controls", dict):
        t.get("source")
        top.cond("controls", roots=("vmcs02",), text=key)
        controls[key] = t.cond("when", roots=tuple(r for r in ROOTS if r != "vmcs02"))
    axioms = []
    for _, t in top.tables("axioms", list):
        t.get("source")
        axioms.append(t.cond("rule"))
    return controls, tuple(axioms)


def _load_predicates(file: Path) -> tuple[Predicate, ...]:
    preds = []
    for _, t in _load_toml(file).tables("predicate", list):
        spelling, regex = t.get("spelling"), t.get("regex", bool, False)
        if regex:
            try:
                re.compile(spelling)
            except re.error as exc:
                raise t.err("spelling", f"bad regex: {exc}") from None
        # a regex's `means` may hold group references (\\1), checked when used
        means = t.get("means") if regex else t.cond("means", roots=None)
        preds.append(Predicate(spelling, means, t.strs("functions"), regex, t.get("source")))
    return tuple(preds)


def _load_summaries(file: Path) -> dict[str, Summary]:
    out: dict[str, Summary] = {}
    for name, t in _load_toml(file).tables("summaries", dict):
        params = t.strs("params")
        writes = []
        for _, w in t.tables("writes", list):
            value = w.get("value", str, None)
            if value is not None and value.lstrip("$") not in params:
                raise w.err("value", f"{value!r} is not one of the parameters")
            writes.append(SummaryWrite(w.get("field"), w.cond("when", params=params, roots=None),
                                       w.enum("origin", ORIGINS + PROVENANCES),
                                       w.get("source", str, ""), value))
        out[name] = Summary(name, params, tuple(writes), t.strs("calls"),
                            t.get("source", str, ""))
    return out


def _load_caches(file: Path) -> CacheModel:
    top = _load_toml(file)
    effects, present = {}, {}
    for kind, t in top.tables("caches", dict):
        if kind not in CACHES:
            raise t.err("(name)", f"{kind!r} is not one of {', '.join(CACHES)}")
        try:
            effects[kind] = tuple(re.compile(e) for e in t.strs("effects"))
            if t.get("present", str, None) is not None:
                present[kind] = re.compile(t.get("present"))
        except re.error as exc:
            raise t.err("effects", f"bad regex: {exc}") from None
    helpers = _Table(file, top.get("helpers", dict), "helpers")
    return CacheModel(effects, helpers.strs("files"), present, helpers.strs("markers"))


def _load_values(file: Path) -> tuple[ValuePattern, ...]:
    out = []
    for _, t in _load_toml(file).tables("value", list):
        t.get("source")
        try:
            rx = re.compile(t.get("pattern"))
        except re.error as exc:
            raise t.err("pattern", f"bad regex: {exc}") from None
        out.append(ValuePattern(rx, t.enum("provenance", PROVENANCES)))
    return tuple(out)


def _load_entry(file: Path) -> EntryModel:
    top = _load_toml(file)
    e = _Table(file, top.get("entry", dict), "entry")
    phases = {k: _Table(file, {"v": v}, f"phases.{k}").strs("v")
              for k, v in top.get("phases", dict, {}).items()}
    deferred = tuple(Deferred(t.get("request"), t.strs("handlers"))
                     for _, t in top.tables("deferred", list))
    context = tuple(t.get("spelling") for _, t in top.tables("deferred_context", list))
    axioms = []
    for _, t in top.tables("axioms", list):
        t.get("source")
        axioms.append(t.cond("rule"))
    return EntryModel(e.strs("roots"), e.get("consumer"), e.strs("runtime_files"),
                      e.strs("every_entry"), e.strs("restore_writers"), phases, deferred,
                      context, tuple(axioms))


@functools.lru_cache(maxsize=8)
def _load(directory: Path) -> Model:
    """The model of DIRECTORY, from the cache when its files and vmxlint's code are those
    it was made from: reading and checking the 29 files took 6 ms of every run, decoding
    it takes 2 (the first decoding of a Model, then its regular expressions compiled)."""
    from vmxlint import __version__, cache

    k = cache.key("model", __version__, cache.code_digest(),
                  cache.files_digest(directory, ".toml"))
    model = cache.get(k, Model)
    if model is None:
        model = _read(directory)
        cache.put(k, model)
    return model


def _read(directory: Path) -> Model:
    if not directory.is_dir():
        raise ModelError(directory, "(dir)", "rules directory does not exist")
    rules: dict[str, Rule] = {}
    for file in sorted(directory.glob("VMX*.toml")):
        rule = _load_rule(file)
        if rule.code in rules:
            raise ModelError(file, "code", f"{rule.code} is defined twice")
        rules[rule.code] = rule
    mdir = directory / "model"
    controls, axioms = _load_vmcs02(mdir / "vmcs02.toml")
    opt = {n: mdir / f"{n}.toml" for n in ("predicates", "summaries")}
    entry = _load_entry(mdir / "entry.toml")
    return Model(
        rules=rules, fields=_load_fields(mdir / "fields.toml"), controls=controls,
        axioms=axioms + entry.axioms, entry=entry, values=_load_values(mdir / "values.toml"),
        caches=_load_caches(mdir / "caches.toml"),
        predicates=_load_predicates(opt["predicates"]) if opt["predicates"].exists() else (),
        summaries=_load_summaries(opt["summaries"]) if opt["summaries"].exists() else {})


def load_model(rules_dir: Path | None = None) -> Model:
    """Load ``rules_dir`` (default: the packaged or checkout ``rules/``), cached per directory."""
    if rules_dir is None:
        from vmxlint.model_paths import rules_dir as default_dir
        rules_dir = default_dir()
    return _load(_resolved(Path(rules_dir)))


@functools.lru_cache(maxsize=8)
def _resolved(directory: Path) -> Path:
    # Every analysed image asks for the model several times; resolving costs system calls.
    return directory.resolve()
