"""Command line: arguments and subcommands, nothing else (DESIGN.md section 5)."""
from __future__ import annotations

import argparse
import gc
import os
import re
import sys
from pathlib import Path
from typing import NoReturn, TextIO

from vmxlint import __version__
from vmxlint.errors import VmxlintError
from vmxlint.textsafe import escape_text

FORMATS = ("default", "checkpatch", "json", "sarif", "rdjson", "github", "email",
           "b4-json", "patchwork", "gitlab")
# Formats a program reads: --count and --statistics go to stderr, never into them.
HUMAN_FORMATS = ("default",)
EXIT_OK, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2


class UsageError(VmxlintError):
    """Bad usage or unusable input: printed on one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, like every other bad input
        raise UsageError(message)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tree", metavar="DIR", help="kernel tree (default: nearest above the "
                   "current directory holding arch/x86/kvm/vmx/nested.c)")
    p.add_argument("--rev", metavar="REV", help="analyse this git revision of the tree")
    p.add_argument("--format", choices=FORMATS, help="output format (default: default)")
    p.add_argument("--select", help="comma-separated code prefixes to report")
    p.add_argument("--ignore", help="comma-separated code prefixes to leave out")
    p.add_argument("--extend-select", help="add to --select")
    p.add_argument("--extend-ignore", help="add to --ignore")
    p.add_argument("--output-file", metavar="FILE", help="write the report here")
    p.add_argument("--exit-zero", action="store_true", default=None,
                   help="exit 0 even when there are findings")
    p.add_argument("--count", action="store_true", default=None,
                   help="print the number of findings last")
    p.add_argument("--statistics", action="store_true", default=None,
                   help="print a count per code")
    p.add_argument("-q", "--quiet", action="store_true", default=None,
                   help="default format: print only the path:line of each finding")
    p.add_argument("--show-source", action="store_true", default=None,
                   help="default format: print each finding's source line, with a caret "
                   "(from the post-image, or the pre-image for a resolved finding)")
    p.add_argument("--color", "--colour", dest="color", choices=("auto", "always", "never"),
                   default="auto", help="colour the default format (auto: on a terminal, "
                   "unless NO_COLOR is set)")
    p.add_argument("--per-function-ignores", metavar="LIST",
                   help="CODE:FUNCTION[:FIELD] entries to leave out, comma separated "
                   "(also in the [vmxlint] config)")


def _jobs(text: str) -> int:
    """``-j N``: a positive count, or ``auto``."""
    if text == "auto":
        from vmxlint.jobs import cpu_jobs

        return cpu_jobs()
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number or 'auto', not {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="vmxlint", description="Review nested VMX patches for missing, stale, "
                 "redundant and ill-formed vmcs02 writes.")
    ap.add_argument("--version", action="version", version=f"vmxlint {__version__}")
    sub = ap.add_subparsers(dest="command", parser_class=_Parser)
    c = sub.add_parser("check", help="findings a patch or series introduces or resolves")
    c.add_argument("patches", nargs="*", default=["-"], metavar="PATCH",
                   help="patch files, mails or mboxes; - for stdin (the default)")
    c.add_argument("--all", action="store_true", help="also report existing findings")
    c.add_argument("--staged", action="store_true",
                   help="check the staged changes of the tree's git index against HEAD "
                   "(for pre-commit); at pre-commit's pre-push stage "
                   "(PRE_COMMIT_FROM_REF and PRE_COMMIT_TO_REF set), the pushed commits")
    c.add_argument("--git", metavar="A..B",
                   help="check each commit of a range against its parent, from git objects")
    c.add_argument("-j", "--jobs", metavar="N", type=_jobs, default=1,
                   help="analyse the patches of a series in N processes, or 'auto' for one "
                   "per CPU (default: 1)")
    _common(c)
    a = sub.add_parser("audit", help="every finding of the tree as it is")
    _common(a)
    a.add_argument("--baseline", metavar="FILE",
                   help="leave out the findings recorded in FILE")
    a.add_argument("--write-baseline", metavar="FILE",
                   help="record the findings in FILE (JSON; outside the kernel tree)")
    sub.add_parser("rules", help="list the rules")
    e = sub.add_parser("explain", help="a rule's rationale, and its findings in a tree")
    e.add_argument("code")
    e.add_argument("--tree", metavar="DIR")
    g = sub.add_parser("graph", help="the dataflow graph of the nested VM-entry path")
    g.add_argument("--tree", metavar="DIR")
    g.add_argument("--rev", metavar="REV")
    g.add_argument("--field", metavar="NAME")
    g.add_argument("--format", choices=("json", "dot"), default="json")
    g.add_argument("--output-file", metavar="FILE")
    return ap


def run() -> NoReturn:
    """The console script: `main`, then out without tearing the interpreter down.

    A check leaves some 10^5 objects (syntax trees, guards, BDD nodes) that teardown would
    free one by one, 0.15 s of a 0.5 s run; there is nothing left to release.  What must
    outlive the process is written first: the streams, then what the cache keeps pending
    (by a process of its own when it is much: `vmxlint.cache.finish`).

    Those objects live to the end, and few form cycles: with Python's default threshold
    (a collection every 700 allocations) the collector traverses them again and again as
    they age, 0.1 s of a 0.5 s audit with an empty cache.  Collecting every 10^5
    allocations costs about 1 MB more at the peak."""
    gc.set_threshold(100_000, 20, 20)
    code = main()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BrokenPipeError:
            _stdout_gone()
        except (OSError, ValueError):
            pass
    cache = sys.modules.get("vmxlint.cache")
    if cache is not None:
        cache.finish()      # in a process of its own when there is much to write
    os._exit(code)


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except VmxlintError as exc:     # UsageError and every other user-facing error
        _error(str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        _stdout_gone()
        return EXIT_OK
    except Exception as exc:  # noqa: BLE001 - the contract: one line, never a traceback
        from vmxlint.errors import describe
        _error(describe(exc))
        return EXIT_USAGE


def _error(message: str) -> None:
    """One line on stderr, control characters from the input escaped."""
    print(f"vmxlint: {escape_text(message)}", file=sys.stderr)


def _stdout_gone() -> None:
    """After EPIPE, point stdout at /dev/null so the exit flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    if args.command is None:
        raise UsageError("a command is needed: check, audit, rules, explain or graph")
    _import_msgspec()
    return {"check": _check, "audit": _audit, "rules": _rules, "explain": _explain,
            "graph": _graph}[args.command](args)


def _import_msgspec() -> None:
    """Import msgspec, which every command uses, without typing_extensions: msgspec takes
    ``get_type_hints`` from it when it is installed (for TypedDict's ``Required``, which
    vmxlint's types do not use), else from typing; the same answers here, and 3 ms less
    of every run."""
    from vmxlint.optional import import_without

    import_without("msgspec", "typing_extensions")


def _tree(args):
    from vmxlint import api
    return api.open_tree(args.tree, getattr(args, "rev", None))


def _options(args, tree) -> dict:
    from vmxlint.selection import Selection, split_codes
    from vmxlint.config import ConfigError, load
    from vmxlint.suppress import SuppressError, parse_ignores

    try:
        conf = load(tree.root if tree is not None else None)
        # The tree's config may hide findings; the command line adds to it.
        ignores = parse_ignores(conf.get("per-function-ignores")) + parse_ignores(
            getattr(args, "per_function_ignores", None))
    except (ConfigError, SuppressError) as exc:
        raise UsageError(str(exc)) from None

    def opt(name: str):
        v = getattr(args, name.replace("-", "_"), None)
        return v if v is not None else conf.get(name)

    def flag(name: str) -> bool:
        v = opt(name)
        return v is True or str(v).lower() in ("1", "true", "yes", "on")

    for name in ("select", "ignore", "extend-select", "extend-ignore"):
        for code in split_codes(opt(name)):
            if not re.fullmatch(r"V(M(X\d{0,3})?)?", code):
                raise UsageError(f"--{name}: {code!r} is not a vmxlint code or prefix "
                                 "(VMX, VMX1, VMX101, ...)")
    sel = Selection(select=split_codes(opt("select")) or ["VMX"],
                    ignore=split_codes(opt("ignore")),
                    extend_select=split_codes(opt("extend-select")),
                    extend_ignore=split_codes(opt("extend-ignore")))
    fmt = opt("format") or "default"
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})")
    if conf.get("output-file") is not None:
        raise UsageError("output-file in the [vmxlint] section of the tree's setup.cfg, tox.ini "
                         "or .vmxlint is not allowed: a tree's config may not choose where "
                         "output is written (use --output-file)")
    output = getattr(args, "output_file", None)
    if output is not None:
        _check_output(output, tree)
    return dict(selection=sel, format=fmt, output=output,
                exit_zero=flag("exit-zero"), count=flag("count"),
                statistics=flag("statistics"), ignores=ignores,
                quiet=bool(getattr(args, "quiet", None)), show_source=flag("show-source"),
                color=getattr(args, "color", None) or "auto")


def _colour(choice: str, out: TextIO) -> bool:
    """Colour on a terminal unless NO_COLOR is set (https://no-color.org), or when forced."""
    if choice != "auto":
        return choice == "always"
    if os.environ.get("NO_COLOR"):
        return False
    try:
        return out.isatty()
    except (AttributeError, ValueError):
        return False


def _report(findings, opts, command: str, tree, mails=None, source=None, notes=()) -> int:
    from vmxlint.findings import Report
    from vmxlint.formats import write_counts, write_report

    from vmxlint.suppress import without_ignored

    chosen = [f for f in findings if opts["selection"].selected(f.code)]
    chosen = without_ignored(chosen, opts["ignores"])
    report = Report(findings=chosen, command=command, mails=mails or {},
                    tree=tree.describe() if tree is not None else None,
                    source=source if opts["show_source"] else None, notes=list(notes))
    out: TextIO = open(opts["output"], "w", encoding="utf-8") if opts["output"] else sys.stdout
    # Counts follow the findings in the default format, as flake8's do; a document a
    # program reads stays intact and they go to stderr.
    extra = out if opts["format"] in HUMAN_FORMATS else sys.stderr
    try:
        if opts["format"] == "default":
            from vmxlint.formats import default
            default.write(report, out, quiet=opts["quiet"],
                          colour=_colour(opts["color"], out), show_source=opts["show_source"])
        else:
            write_report(report, opts["format"], out)
        write_counts(report, extra, statistics=opts["statistics"], count=opts["count"])
        out.flush()
    except BrokenPipeError:
        if out is not sys.stdout:
            raise
        _stdout_gone()   # `| head`: the reader left; the findings still decide the status
    finally:
        if out is not sys.stdout:
            out.close()
    bad = [f for f in chosen if f.status != "resolved" and f.severity in ("error", "warning")]
    return EXIT_FINDINGS if bad and not opts["exit_zero"] else EXIT_OK


def _check_output(name: str, tree) -> None:
    """Refuse an --output-file in the kernel tree, or reaching into it through a symlink."""
    root = getattr(tree, "root", None)
    if root is None:
        return
    given = Path(os.path.abspath(name))
    tops = {Path(os.path.abspath(root)), Path(root).resolve()}
    for path in (given, given.resolve()):
        if any(path == top or top in path.parents for top in tops):
            raise UsageError(f"--output-file {name}: refusing to write into the kernel tree "
                             f"{root} (or through a symlink in it)")


def _check(args) -> int:
    from vmxlint import api

    span = args.git
    if args.staged and not span:
        span = _pre_push_range()
    if args.staged and not span:
        args.rev = args.rev or "HEAD"
    if span and (args.rev or args.patches != ["-"]):
        raise UsageError("--git checks commits: give no PATCH and no --rev with it")
    tree = _tree(args)
    opts = _options(args, tree)
    done = api.check(tree, span=span, staged=bool(args.staged) and not span,
                     patches=args.patches, include_existing=args.all, jobs=args.jobs)
    if done.nothing:
        return EXIT_OK
    return _report(done.findings, opts, "check", tree, done.mails, done.source,
                   notes=_notes(done.notes))


def _notes(notes: list[str]) -> list[str]:
    """What the analysis could not take from the tree (embedded tables used), once each:
    in the report's summary for programs, and on stderr for a person at a terminal (b4
    and pre-commit read stdout; a pipe gets no extra lines)."""
    from vmxlint.textsafe import escape_text

    notes = list(dict.fromkeys(notes))
    if sys.stderr.isatty():
        for note in notes:
            print(f"vmxlint: note: {escape_text(note)}", file=sys.stderr)
    return notes


def _pre_push_range() -> str | None:
    """FROM..TO when pre-commit runs the hook at the pre-push stage (or with --from-ref)."""
    src, dst = os.environ.get("PRE_COMMIT_FROM_REF"), os.environ.get("PRE_COMMIT_TO_REF")
    if not src or not dst:
        return None
    return f"{src}..{dst}"


def _audit(args) -> int:
    from vmxlint import api

    tree = _tree(args)
    opts = _options(args, tree)
    if args.write_baseline:
        _check_output(args.write_baseline, tree)
    done = api.audit(tree, baseline=args.baseline, write_baseline=args.write_baseline,
                     selected=opts["selection"].selected)
    return _report(done.findings, opts, "audit", tree, source=done.source,
                   notes=_notes(done.notes))


def _rules(args) -> int:
    from vmxlint import api

    for rule in sorted(api.catalogue().values(), key=lambda r: r.code):
        print(f"{rule.code}  {rule.name:<22} {rule.severity:<8} {rule.summary}")
    return EXIT_OK


def _explain(args) -> int:
    import textwrap

    from vmxlint import api

    rules = api.catalogue()
    code = args.code.upper()
    if code not in rules:
        raise UsageError(f"no rule {args.code} (see 'vmxlint rules')")
    r = rules[code]
    print(f"{r.code} {r.name} ({r.severity}): {r.summary}\n")
    print(textwrap.dedent(r.rationale).strip() + "\n")
    if r.limits.strip():
        print("Known limits:\n" + textwrap.indent(textwrap.dedent(r.limits).strip(), "  ") + "\n")
    if r.references:
        print("References:")
        for ref in r.references:
            print(f"  - {ref}")
        if any("SDM" in ref for ref in r.references):
            from vmxlint.formats import SDM_NOTE
            print("\n" + textwrap.fill(SDM_NOTE, 88))
    if args.tree:
        for f in (f for f in api.audit(_tree(args)).findings if f.code == code):
            print()
            print(escape_text(f"{f.path}:{f.line}: {f.message}"))
            for k, v in f.details:
                print(escape_text(f"  {k}: {v}"))
            for e in f.evidence:
                print(escape_text(f"  {e.role}: {e.path}:{e.line} {e.function or ''}"))
    return EXIT_OK


def _graph(args) -> int:
    from vmxlint import api

    tree = _tree(args)
    if args.output_file:
        _check_output(args.output_file, tree)
    text = api.graph(tree, args.field, args.format)
    if args.output_file:
        Path(args.output_file).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return EXIT_OK
