"""Load and validate the rule catalogue (``rules/VMXnnn-*.toml``) and the reference model."""
from __future__ import annotations

import functools
import logging
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOG = logging.getLogger(__name__)

SEVERITIES = ("error", "warning", "info")
ORIGINS = ("vmcs12", "l0", "constant", "mixed", "none")
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


class ModelError(Exception):
    """Bad rule or model data; the message is one line: file, key, problem."""

    def __init__(self, file: Path | str, key: str, problem: str) -> None:
        self.file, self.key, self.problem = str(file), key, " ".join(str(problem).split())
        super().__init__(f"{self.file}: {self.key}: {self.problem}")


@dataclass(frozen=True)
class Rule:
    code: str
    name: str
    severity: str
    summary: str
    message: str
    rationale: str
    limits: str
    references: tuple[str, ...]
    default: bool


@dataclass(frozen=True)
class FieldModel:
    name: str
    entry: str
    exit: str
    origin: str
    runtime: bool
    cache: str | None
    cache_helpers: tuple[str, ...]
    readers: tuple[str, ...]
    hot_constant: bool
    source: str


@dataclass(frozen=True)
class Predicate:
    spelling: str
    means: str
    functions: tuple[str, ...]
    regex: bool
    source: str


@dataclass(frozen=True)
class SummaryWrite:
    field: str
    when: str
    origin: str
    source: str


@dataclass(frozen=True)
class Summary:
    name: str
    params: tuple[str, ...]
    writes: tuple[SummaryWrite, ...]
    calls: tuple[str, ...]
    source: str


@dataclass
class Model:
    rules: dict[str, Rule]
    fields: dict[str, FieldModel]
    controls: dict[str, str]
    axioms: tuple[str, ...]
    predicates: tuple[Predicate, ...]
    summaries: dict[str, Summary]


def condition_atoms(text: str, *, params: bool = False) -> tuple[str, ...]:
    """Return the predicate names of a condition; raise ValueError if it is not well formed."""
    tokens: list[tuple[str, str]] = []
    for m in _TOKEN_RE.finditer(text):
        kind = m.lastgroup
        tok = m.group(kind) if kind else ""
        if kind == "bad" or (kind == "param" and not params):
            raise ValueError(f"unexpected {tok!r} in condition {text!r}")
        if kind == "word" and tok not in _KEYWORDS and "." not in tok:
            raise ValueError(f"{tok!r} is neither a keyword nor a dotted predicate in {text!r}")
        tokens.append((kind, tok))
    pos = 0

    def peek() -> str | None:
        return tokens[pos][1] if pos < len(tokens) else None

    def operand() -> None:
        nonlocal pos
        tok = peek()
        if tok is None:
            raise ValueError(f"condition {text!r} ends early")
        pos += 1
        if tok == "not":
            operand()
        elif tok == "(":
            expr()
            if peek() != ")":
                raise ValueError(f"missing ')' in condition {text!r}")
            pos += 1
        elif tok in ("and", "or", ")"):
            raise ValueError(f"unexpected {tok!r} in condition {text!r}")

    def expr() -> None:
        nonlocal pos
        operand()
        while peek() in ("and", "or"):
            pos += 1
            operand()

    expr()
    if pos != len(tokens):
        raise ValueError(f"unexpected {tokens[pos][1]!r} in condition {text!r}")
    return tuple(t for k, t in tokens if k in ("word", "param") and t not in _KEYWORDS)


def _cond(file: Path, key: str, value: Any, *, params: bool = False,
          roots: tuple[str, ...] | None = ROOTS) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ModelError(file, key, "condition must be a non-empty string")
    try:
        atoms = condition_atoms(value, params=params)
    except ValueError as exc:
        raise ModelError(file, key, str(exc)) from None
    for atom in atoms:
        if roots is not None and not atom.startswith("$") and atom.split(".")[0] not in roots:
            raise ModelError(file, key, f"predicate {atom!r} is outside {', '.join(roots)}")
    return value


def _get(file: Path, table: dict, key: str, where: str, kind: type | tuple[type, ...],
         default: Any = ...) -> Any:
    if key not in table:
        if default is ...:
            raise ModelError(file, where, f"missing key {key!r}")
        return default
    value = table[key]
    if not isinstance(value, kind):
        raise ModelError(file, f"{where}.{key}", f"expected {getattr(kind, '__name__', kind)}, "
                         f"got {type(value).__name__}")
    return value


def _strs(file: Path, table: dict, key: str, where: str) -> tuple[str, ...]:
    items = _get(file, table, key, where, list, [])
    if not all(isinstance(i, str) for i in items):
        raise ModelError(file, f"{where}.{key}", "expected a list of strings")
    return tuple(items)


def _load_toml(file: Path) -> dict:
    try:
        with file.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ModelError(file, "(syntax)", str(exc)) from None
    except OSError as exc:
        raise ModelError(file, "(file)", exc.strerror or str(exc)) from None


def _load_rule(file: Path) -> Rule:
    data = _load_toml(file)
    s = functools.partial(_get, file, data, where="rule", kind=str)
    code, name, severity = s("code"), s("name"), s("severity")
    if not CODE_RE.match(code):
        raise ModelError(file, "code", f"{code!r} does not match VMXnnn")
    if not NAME_RE.match(name):
        raise ModelError(file, "name", f"{name!r} is not a kebab-case slug")
    if severity not in SEVERITIES:
        raise ModelError(file, "severity", f"{severity!r} is not one of {', '.join(SEVERITIES)}")
    if file.stem != f"{code}-{name}":
        raise ModelError(file, "code", f"file name must be {code}-{name}.toml")
    message = s("message")
    if "\n" in message:
        raise ModelError(file, "message", "must be one line")
    return Rule(code, name, severity, s("summary"), message, s("rationale"), s("limits"),
                _strs(file, data, "references", "rule"),
                _get(file, data, "default", "rule", bool, True))


def _load_fields(file: Path) -> dict[str, FieldModel]:
    fields: dict[str, FieldModel] = {}
    for name, t in _get(file, _load_toml(file), "fields", "(top)", dict).items():
        w = f"fields.{name}"
        if not isinstance(t, dict):
            raise ModelError(file, w, "expected a table")
        origin = _get(file, t, "origin", w, str)
        if origin not in ORIGINS:
            raise ModelError(file, f"{w}.origin", f"{origin!r} is not one of {', '.join(ORIGINS)}")
        cache = _get(file, t, "cache", w, str, None)
        if cache is not None and cache not in CACHES:
            raise ModelError(file, f"{w}.cache", f"{cache!r} is not one of {', '.join(CACHES)}")
        helpers = _strs(file, t, "cache_helpers", w)
        if helpers and cache is None:
            raise ModelError(file, f"{w}.cache_helpers", "given without 'cache'")
        fields[name] = FieldModel(
            name, _cond(file, f"{w}.entry", _get(file, t, "entry", w, str)),
            _cond(file, f"{w}.exit", _get(file, t, "exit", w, str)), origin,
            _get(file, t, "runtime", w, bool, False), cache, helpers, _strs(file, t, "readers", w),
            _get(file, t, "hot_constant", w, bool, False), _get(file, t, "source", w, str))
    return fields


def _load_vmcs02(file: Path) -> tuple[dict[str, str], tuple[str, ...]]:
    data = _load_toml(file)
    controls: dict[str, str] = {}
    for key, t in _get(file, data, "controls", "(top)", dict).items():
        w = f"controls.{key}"
        _cond(file, w, key, roots=("vmcs02",))
        if not isinstance(t, dict):
            raise ModelError(file, w, "expected a table with 'when' and 'source'")
        _get(file, t, "source", w, str)
        controls[key] = _cond(file, f"{w}.when", _get(file, t, "when", w, str),
                              roots=tuple(r for r in ROOTS if r != "vmcs02"))
    axioms = []
    for i, t in enumerate(_get(file, data, "axioms", "(top)", list, [])):
        w = f"axioms[{i}]"
        if not isinstance(t, dict):
            raise ModelError(file, w, "expected a table with 'rule' and 'source'")
        _get(file, t, "source", w, str)
        axioms.append(_cond(file, f"{w}.rule", _get(file, t, "rule", w, str)))
    return controls, tuple(axioms)


def _load_predicates(file: Path) -> tuple[Predicate, ...]:
    preds = []
    for i, t in enumerate(_get(file, _load_toml(file), "predicate", "(top)", list, [])):
        w = f"predicate[{i}]"
        if not isinstance(t, dict):
            raise ModelError(file, w, "expected a table")
        spelling, regex = _get(file, t, "spelling", w, str), _get(file, t, "regex", w, bool, False)
        if regex:
            try:
                re.compile(spelling)
            except re.error as exc:
                raise ModelError(file, f"{w}.spelling", f"bad regex: {exc}") from None
        means = _get(file, t, "means", w, str)
        if not regex:   # a regex's means may hold group references (\\1), checked when used
            means = _cond(file, f"{w}.means", means, roots=None)
        preds.append(Predicate(spelling, means,
                               _strs(file, t, "functions", w), regex, _get(file, t, "source", w, str)))
    return tuple(preds)


def _load_summaries(file: Path) -> dict[str, Summary]:
    out: dict[str, Summary] = {}
    for name, t in _get(file, _load_toml(file), "summaries", "(top)", dict, {}).items():
        w = f"summaries.{name}"
        if not isinstance(t, dict):
            raise ModelError(file, w, "expected a table")
        params = _strs(file, t, "params", w)
        writes = []
        for i, wt in enumerate(_get(file, t, "writes", w, list, [])):
            ww = f"{w}.writes[{i}]"
            if not isinstance(wt, dict):
                raise ModelError(file, ww, "expected a table")
            origin = _get(file, wt, "origin", ww, str)
            if origin not in ORIGINS:
                raise ModelError(file, f"{ww}.origin", f"{origin!r} is not one of "
                                 f"{', '.join(ORIGINS)}")
            when = _cond(file, f"{ww}.when", _get(file, wt, "when", ww, str), params=True,
                         roots=None)
            for atom in condition_atoms(when, params=True):
                if atom.startswith("$") and atom[1:] not in params:
                    raise ModelError(file, f"{ww}.when", f"{atom} is not a parameter of {name}")
            writes.append(SummaryWrite(_get(file, wt, "field", ww, str), when, origin,
                                       _get(file, wt, "source", ww, str, "")))
        out[name] = Summary(name, params, tuple(writes), _strs(file, t, "calls", w),
                            _get(file, t, "source", w, str, ""))
    return out


@functools.lru_cache(maxsize=8)
def _load(directory: Path) -> Model:
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
    return Model(
        rules=rules, fields=_load_fields(mdir / "fields.toml"), controls=controls, axioms=axioms,
        predicates=_load_predicates(opt["predicates"]) if opt["predicates"].exists() else (),
        summaries=_load_summaries(opt["summaries"]) if opt["summaries"].exists() else {})


def load_model(rules_dir: Path | None = None) -> Model:
    """Load ``rules_dir`` (default: the packaged or checkout ``rules/``), cached per directory."""
    if rules_dir is None:
        from vmxlint.model_paths import rules_dir as default_dir
        rules_dir = default_dir()
    return _load(Path(rules_dir).resolve())
