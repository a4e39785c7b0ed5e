#!/usr/bin/env python3
"""Gate vmxlint on its budgets (DESIGN.md section 7), measured side by side with its peers.

Every timed ``vmxlint check`` sees a code-changing patch generated from the real nested.c
that no cache has seen; each case runs vmxlint and its peer (``checkpatch.pl``,
``spatch``) interleaved in the same run, and a ratio is the median of each round's (the
two on the same input, one right after the other), so it holds on any machine.  Prints one
table row per budget and exits 0 when all pass, 1 when any is missed, 2 when the
benchmark itself cannot run.  See benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import patches  # noqa: E402  (benchmarks/patches.py, next to this file)

NESTED = patches.NESTED
COCCI = HERE / "duplicate-write.cocci"
RESULTS = HERE / "results.json"     # ignored by .gitignore, never committed
HANG_GUARD = 3600                   # seconds; a guard against a hang, not a budget
MEM_RUNS = 3


class BenchError(Exception):
    """The benchmark itself cannot run (exit status 2)."""


@dataclass
class Timing:
    """Wall and CPU seconds of repeated runs of one command."""

    name: str
    argv: list[str] = field(default_factory=list)
    walls: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)
    returncodes: list[int] = field(default_factory=list)
    error: str | None = None
    missing: bool = False     # a peer that is not installed

    @property
    def wall(self) -> float:
        """Median wall seconds (NaN when not measured)."""
        return statistics.median(self.walls) if self.walls and not self.error else NAN

    @property
    def cpu(self) -> float:
        """Median CPU seconds of the child (NaN when not measured)."""
        return statistics.median(self.cpus) if self.cpus and not self.error else NAN


NAN = float("nan")


@dataclass
class Budget:
    """One row of the table: a case, what was measured, and its limit."""

    case: str
    value: float
    limit: float
    unit: str
    higher_is_better: bool
    vmxlint: float = NAN
    peer: float = NAN
    peer_name: str = ""
    basis: str = "wall"
    note: str = ""
    skipped: bool = False     # a missing peer, excused by --allow-missing-peers

    @property
    def ok(self) -> bool:
        """Whether the budget is met; a value not measured (NaN) is a miss."""
        if self.value != self.value:
            return False
        return self.value >= self.limit if self.higher_is_better else self.value <= self.limit

    @property
    def result(self) -> str:
        """PASS, FAIL or SKIP."""
        return "SKIP" if self.skipped else "PASS" if self.ok else "FAIL"


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_once(argv: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None
             ) -> tuple[float, float, int, bytes, bytes]:
    """Run a command; return wall seconds, CPU seconds, exit status, stdout, stderr."""
    cpu0 = _children_cpu()
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, timeout=HANG_GUARD)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"{' '.join(argv)}: still running after {HANG_GUARD} s") from exc
    wall = time.perf_counter() - t0
    return wall, _children_cpu() - cpu0, proc.returncode, proc.stdout, proc.stderr


def record(t: Timing, argv: list[str], *, cwd: Path | None = None,
           env: dict[str, str] | None = None, ok_codes: tuple[int, ...] = (0, 1),
           vmxlint: bool = True) -> None:
    """Run ``argv`` once and add its timing to ``t``.

    A vmxlint exit status outside ``ok_codes`` (2 is bad input) is an error of the
    benchmark; a peer that cannot run leaves ``t`` marked as not measured.
    """
    if t.error:
        return
    t.argv = argv
    try:
        wall, cpu, rc, _, err = run_once(argv, cwd=cwd, env=env)
    except OSError as exc:
        if vmxlint:
            raise BenchError(f"{argv[0]}: {exc.strerror or exc}") from exc
        t.error, t.missing = f"{argv[0]}: {exc.strerror or exc}", True
        return
    if rc not in ok_codes:
        msg = f"exit {rc} from {' '.join(argv)}: {err.decode(errors='replace').strip()[-400:]}"
        if vmxlint:
            raise BenchError(msg)
        t.error = msg
        return
    t.walls.append(wall)
    t.cpus.append(cpu)
    t.returncodes.append(rc)


def rounds(steps: list[Callable[[], None]], repeat: int) -> None:
    """Run each step once per round, ``repeat`` rounds, rotating the order every round so
    that no command always runs first (or right after another) under the same load."""
    for i in range(repeat):
        k = i % len(steps)
        for step in steps[k:] + steps[:k]:
            step()


def vmxlint_argv() -> list[str]:
    """The console script next to this interpreter (not a slow pyenv shim) if there is
    one, else the one on PATH, else ``python -m vmxlint``."""
    sibling = Path(sys.executable).with_name("vmxlint")
    if sibling.is_file() and os.access(sibling, os.X_OK):
        return [str(sibling)]
    exe = shutil.which("vmxlint")
    return [exe] if exe else [sys.executable, "-m", "vmxlint"]


def base_env(cache_dir: Path | None = None) -> dict[str, str]:
    """The environment for vmxlint: this checkout first on the path, the given cache."""
    env = dict(os.environ)
    env.pop("VMXLINT_NO_CACHE", None)
    if cache_dir is not None:
        env["VMXLINT_CACHE_DIR"] = str(cache_dir)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env


def settled(d: Path) -> Path:
    """D once no vmxlint process writes into it: a run with much to write leaves it to a
    process of its own, which holds ``.writing`` locked meanwhile (``vmxlint.cache``)."""
    import fcntl

    try:
        fd = os.open(d / ".writing", os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return d
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
    finally:
        os.close(fd)
    return d


class Caches:
    """Cache directories under the work dir: empty ones, and copies of a primed one."""

    def __init__(self, work: Path, primed: Path) -> None:
        self.work, self.primed, self.n = work, primed, 0

    def empty(self) -> Path:
        """A fresh, empty cache directory."""
        self.n += 1
        d = self.work / f"cache-{self.n}"
        d.mkdir()
        return d

    def tree_warm(self) -> Path:
        """A fresh copy of the cache primed by one ``audit`` of the tree (copy untimed)."""
        d = self.empty()
        shutil.copytree(self.primed, d, dirs_exist_ok=True)
        return d


def supports_jobs(vmx: list[str]) -> bool:
    """Whether ``vmxlint check --help`` lists ``-j``/``--jobs``."""
    _, _, _, out, _ = run_once(vmx + ["check", "--help"], env=base_env())
    return bool(re.search(r"(^|[\s,\[])(-j\b|--jobs\b)", out.decode(errors="replace")))


def validate(tree: Path, work: Path, singles: list[Path], series: Path) -> str:
    """Check that every patch applies (``git apply --check``) to a copy of nested.c."""
    git = shutil.which("git")
    if git is None:
        return "git not found: patches not checked with git apply"
    scratch = work / "apply"
    (scratch / NESTED).parent.mkdir(parents=True)
    shutil.copy2(tree / NESTED, scratch / NESTED)
    for p in singles + [series]:
        proc = subprocess.run([git, "apply", "--check", str(p)], cwd=scratch,
                              capture_output=True, timeout=HANG_GUARD)
        if proc.returncode:
            raise BenchError(f"generated patch {p.name} does not apply: "
                             f"{proc.stderr.decode(errors='replace').strip()}")
    return f"{len(singles)} patches and a {series.name} checked with git apply --check"


def peak_rss_mb(argv: list[str], env: dict[str, str], work: Path) -> tuple[float, str]:
    """Peak resident set of one run of ``argv``, in MB, measured in a fresh process."""
    gnu_time = Path("/usr/bin/time")
    if gnu_time.is_file():
        out = work / "maxrss"
        proc = subprocess.run([str(gnu_time), "-f", "%M", "-o", str(out)] + argv, env=env,
                              capture_output=True, timeout=HANG_GUARD)
        text = out.read_text().strip().splitlines() if out.exists() else []
        how = "/usr/bin/time -f %M"
        if proc.returncode in (0, 1) and text and text[-1].isdigit():
            return int(text[-1]) / 1024, how
        if proc.returncode not in (0, 1):
            raise BenchError(f"exit {proc.returncode} from {' '.join(argv)}: "
                             f"{proc.stderr.decode(errors='replace').strip()[-400:]}")
    wrapper = ("import resource, subprocess, sys\n"
               "rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode\n"
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
               "sys.exit(rc)\n")
    proc = subprocess.run([sys.executable, "-c", wrapper] + argv, env=env,
                          capture_output=True, timeout=HANG_GUARD)
    if proc.returncode not in (0, 1):
        raise BenchError(f"exit {proc.returncode} from {' '.join(argv)}: "
                         f"{proc.stderr.decode(errors='replace').strip()[-400:]}")
    return int(proc.stdout.split()[-1]) / 1024, "RUSAGE_CHILDREN ru_maxrss"


def write_patches(work: Path, nested: str, n_single: int, batch_n: int
                  ) -> tuple[list[Path], Path]:
    """Unseen single patches (one per timed check) and a cumulative series, in WORK."""
    singles = []
    for k, text in enumerate(patches.singles(nested, n_single)):
        singles.append(work / f"single-{k}.patch")
        singles[-1].write_text(text, encoding="utf-8", errors="surrogateescape")
    series = work / "series.mbox"
    series.write_text("".join(patches.series(nested, batch_n)), encoding="utf-8",
                      errors="surrogateescape")
    return singles, series


# ---------------------------------------------------------------------- the cases

def bench(tree: Path, repeat: int, batch_n: int, allow_missing: bool) -> dict:
    """Run every case; return the results document."""
    vmx = vmxlint_argv()
    nested = (tree / NESTED).read_text(encoding="utf-8", errors="surrogateescape")
    work = Path(tempfile.mkdtemp(prefix="vmxlint-bench-"))
    t: dict[str, Timing] = {}
    notes: list[str] = []
    try:
        # Patches: one unseen single patch per timed check, and a cumulative series.
        singles, series = write_patches(work, nested, 2 * repeat + MEM_RUNS + 1, batch_n)
        notes.append(validate(tree, work, singles, series))
        fresh = iter(singles)

        # An installed package has its bytecode; a checkout under PYTHONDONTWRITEBYTECODE
        # would compile every module on every run and time the compiler.
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "vmxlint")],
                       capture_output=True, check=False)
        primed = work / "primed"
        audit = vmx + ["audit", "--tree", str(tree)]
        record(Timing("prime"), audit, env=base_env(primed))
        caches = Caches(work, settled(primed))
        warm = work / "warm"
        shutil.copytree(primed, warm)

        jobs = supports_jobs(vmx)
        cpus = os.cpu_count() or 1
        j_opt = ["-j", str(cpus)] if jobs else []
        j_eff = min(cpus, os.cpu_count() or 1) if jobs else 1
        if not jobs:
            notes.append("vmxlint check has no -j yet: the batch ran in one process, "
                         "so J_effective = 1")

        def check(patch: Path) -> list[str]:
            return vmx + ["check", "--tree", str(tree), str(patch)]

        # Warm the page cache of every command once, untimed.
        run_once(vmx + ["--version"], env=base_env())
        record(Timing("warm-up"), check(next(fresh)), env=base_env(caches.tree_warm()))

        # Case 6: start-up.
        t["version"] = Timing("vmxlint --version")
        t["python"] = Timing("python -c pass")
        rounds([lambda: record(t["version"], vmx + ["--version"], env=base_env()),
                lambda: record(t["python"], [sys.executable, "-c", "pass"], env=base_env())],
               repeat)

        # Case 1: a new patch against an analysed tree, vs checkpatch on the same patch.
        t["check_tree"] = Timing("vmxlint check, new patch, tree analysed")
        t["checkpatch"] = Timing("checkpatch.pl --terse --no-tree")
        checkpatch = tree / "scripts" / "checkpatch.pl"
        perl = shutil.which("perl")
        if not checkpatch.is_file() or perl is None:
            t["checkpatch"].error = ("perl not found" if perl is None
                                     else f"no {checkpatch}")
            t["checkpatch"].missing = True
        for i in range(repeat):
            patch = next(fresh)
            env = base_env(caches.tree_warm())
            steps = [lambda: record(t["check_tree"], check(patch), env=env),
                     lambda: record(t["checkpatch"], [perl or "perl", str(checkpatch),
                                                      "--terse", "--no-tree", str(patch)],
                                    cwd=tree, ok_codes=(0, 1), vmxlint=False)]
            for step in (steps if i % 2 == 0 else steps[::-1]):
                step()

        # Cases 2 and 3: check with an empty cache, audit cold and warm, vs spatch.
        spatch = shutil.which("spatch")
        t["spatch"] = Timing("spatch duplicate-write.cocci")
        if spatch is None:
            t["spatch"].error = "spatch not found (apt install coccinelle)"
            t["spatch"].missing = True
        sp_argv = [spatch or "spatch", "--very-quiet", "--sp-file", str(COCCI), "-D",
                   "report", str(tree / NESTED)]
        t["check_cold"] = Timing("vmxlint check, new patch, empty cache")
        t["audit_cold"] = Timing("vmxlint audit, empty cache")
        t["audit_warm"] = Timing("vmxlint audit, primed cache")
        cold_patches = iter([next(fresh) for _ in range(repeat)])
        rounds([lambda: record(t["spatch"], sp_argv, ok_codes=(0,), vmxlint=False),
                lambda: record(t["check_cold"], check(next(cold_patches)),
                               env=base_env(caches.empty())),
                lambda: record(t["audit_cold"], audit, env=base_env(caches.empty())),
                lambda: record(t["audit_warm"], audit, env=base_env(warm))], repeat)

        # Cases 4 and 5: the series as one mbox, tree analysed before.
        t["batch"] = Timing(" ".join(["vmxlint check"] + j_opt + [f"mbox of {batch_n}"]))
        batch_argv = vmx + ["check"] + j_opt + ["--tree", str(tree), str(series)]
        # Case 5: the same series the way b4 or a bot checks it, in one process (each -j
        # process pays a full analysis of its first image: CPU bought for wall time).
        t["series"] = Timing(f"vmxlint check mbox of {batch_n}, one process")
        series_argv = vmx + ["check", "--tree", str(tree), str(series)]
        # As many runs as every other case: the batch's budget is absolute, and the
        # median of three moved by up to 0.25 s with the machine's phases.
        for _ in range(repeat):
            record(t["batch"], batch_argv, env=base_env(caches.tree_warm()))
            record(t["series"], series_argv, env=base_env(caches.tree_warm()))

        # Case 7: peak memory of a case-1 check, a fresh helper process per measurement.
        mems = []
        for _ in range(MEM_RUNS):
            mb, how = peak_rss_mb(check(next(fresh)), base_env(caches.tree_warm()), work)
            mems.append(mb)
        notes.append(f"peak memory by {how}: " + ", ".join(f"{m:.1f}" for m in mems) + " MB")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    budgets = judge(t, mems, batch_n, j_eff, allow_missing)
    return {
        "version": 2,
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"python": platform.python_version(), "platform": platform.platform(),
                    "cpus": os.cpu_count(), "load": os.getloadavg()},
        "tree": str(tree),
        "vmxlint": vmx,
        "repeat": repeat,
        "batch_patches": batch_n,
        "jobs": j_opt[1] if j_opt else None,
        "j_effective": j_eff,
        "batch_patches_per_cpu_second": _ratio(batch_n, t["batch"].cpu),
        "peak_rss_mb": mems,
        "notes": notes,
        "timings": {k: {**asdict(v), "median_wall": v.wall, "median_cpu": v.cpu}
                    for k, v in t.items()},
        "budgets": [{**asdict(b), "pass": b.ok, "result": b.result} for b in budgets],
    }


def _ratio(a: float, b: float) -> float:
    return a / b if b and a == a and b == b else NAN


def _paired(a: Timing, b: Timing) -> float:
    """The median over rounds of A's wall over B's in the same round.

    The two ran side by side, on the same patch or tree, one right after the other: a
    slow phase of the machine that spans a round slows both, and the round's ratio
    holds.  The ratio of the two medians would pair one round's A with another's B (a
    run whose slow rounds were vmxlint's and fast ones checkpatch's read 2.10x where
    each of its rounds read 1.39-2.11x, median 1.70)."""
    if a.error or b.error or not a.walls or len(a.walls) != len(b.walls):
        return _ratio(a.wall, b.wall)
    return statistics.median(x / y for x, y in zip(a.walls, b.walls) if y)


def judge(t: dict[str, Timing], mems: list[float], n: int, j_eff: int,
          allow_missing: bool) -> list[Budget]:
    """One budget per row of DESIGN.md section 7."""
    sp, cp = t["spatch"], t["checkpatch"]
    batch, cold, series = t["batch"], t["check_cold"], t["series"]
    rows = [
        Budget("1 check new patch, tree analysed", _paired(t["check_tree"], cp), 2.0,
               "x", False, t["check_tree"].wall, cp.wall, "checkpatch", note=cp.error or ""),
        Budget("2 check new patch, empty cache", _paired(sp, cold), 2.0, "x", True,
               cold.wall, sp.wall, "spatch", note=sp.error or ""),
        Budget("3 audit, empty cache", _paired(sp, t["audit_cold"]), 3.0, "x", True,
               t["audit_cold"].wall, sp.wall, "spatch", note=sp.error or ""),
        Budget("3 audit, primed cache", _paired(sp, t["audit_warm"]), 3.0, "x", True,
               t["audit_warm"].wall, sp.wall, "spatch", note=sp.error or ""),
        Budget(f"4 batch of {n}, J_eff={j_eff}", _ratio(n, batch.wall * j_eff), 20.0,
               "/s/core", True, batch.wall, note=f"{_ratio(n, batch.cpu):.1f} patches per "
               "CPU second"),
        Budget(f"5 series of {n} vs {n} cold checks", _ratio(n * cold.cpu, series.cpu), 10.0,
               "x", True, series.cpu, n * cold.cpu, f"{n} x check", basis="cpu",
               note=f"with -j: {_ratio(n * cold.cpu, batch.cpu):.2f}x"),
        Budget("6 vmxlint --version", t["version"].wall, 0.15, "s", False, t["version"].wall,
               t["python"].wall, "python -c pass"),
        Budget("7 peak memory of a check", max(mems) if mems else NAN, 64.0, "MB", False,
               basis="rss"),
    ]
    if allow_missing:
        rows[0].skipped = cp.missing
        for b in rows[1:4]:
            b.skipped = sp.missing
    return rows


def _fmt(v: float, unit: str = "s") -> str:
    return "-" if v != v else f"{v:.3f}{unit}" if unit == "s" else f"{v:.2f}{unit}"


def print_table(doc: dict) -> None:
    """The human-readable report."""
    m = doc["machine"]
    print(f"tree: {doc['tree']}   cpus: {m['cpus']}   load: "
          f"{' '.join(f'{x:.2f}' for x in m['load'])}   python: {m['python']}")
    print(f"vmxlint: {' '.join(doc['vmxlint'])}   repeat: {doc['repeat']} (times: medians; "
          "ratios: the median of each round's)\n")
    print(f"{'case':<38} {'vmxlint':>9} {'peer':>9}  {'peer is':<15}{'measured':>15}"
          f" {'budget':>14}  result")
    for b in doc["budgets"]:
        op = ">=" if b["higher_is_better"] else "<="
        unit = b["unit"]
        basis = "" if b["basis"] == "wall" else f" ({b['basis']})"
        print(f"{b['case'] + basis:<38} {_fmt(b['vmxlint']):>9} {_fmt(b['peer']):>9}  "
              f"{b['peer_name'] or '-':<15}{_fmt(b['value'], unit):>15} "
              f"{op + ' ' + format(b['limit'], 'g') + unit:>14}  {b['result']}")
        if b["note"]:
            print(f"{'':<40}{b['note']}")
    print()
    for note in doc["notes"]:
        print(f"note: {note}")


def against(tree: Path, rev: str, repeat: int, batch_n: int) -> dict:
    """This checkout against git revision REV, interleaved run by run so both see the same
    machine load: the cold ``audit`` (wall), a ``check`` of a new patch with a primed
    cache (wall, b4's case) and the series in one process (CPU).  The ratios are what a
    change cost; each side's outputs of the series are compared too."""
    nested = (tree / NESTED).read_text(encoding="utf-8", errors="surrogateescape")
    with tempfile.TemporaryDirectory(prefix="vmxlint-against-") as tmp:
        work = Path(tmp)
        other = work / "rev"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach",
                        str(other), rev], check=True)
        try:
            return _against(tree, rev, {"this checkout": ROOT, rev: other}, work, nested,
                            repeat, batch_n)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                            str(other)], check=False)


def _against(tree: Path, rev: str, sides: dict[str, Path], work: Path, nested: str,
             repeat: int, batch_n: int) -> dict:
    singles, series = write_patches(work, nested, repeat, batch_n)
    caches = {}                             # each side's caches: its primed one, copied
    for n, name in enumerate(sides):
        (work / f"side{n}").mkdir()
        caches[name] = Caches(work / f"side{n}", work / f"side{n}" / "primed")

    def run(name: str, t: Timing, args: list[str], cache: Path) -> bytes:
        """Time one run of vmxlint from the side's code into ``t``; return its output."""
        env = base_env(cache)
        env["PYTHONPATH"] = str(sides[name])
        argv = [sys.executable, "-m", "vmxlint", *args]
        wall, cpu, rc, out, err = run_once(argv, cwd=work, env=env)
        if rc not in (0, 1):
            raise BenchError(f"{name}: exit {rc} from {' '.join(args)}: "
                             f"{err.decode(errors='replace').strip()[-400:]}")
        t.walls.append(wall)
        t.cpus.append(cpu)
        return out

    for name, root in sides.items():      # the bytecode, and each side's primed cache
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(root / "vmxlint")],
                       capture_output=True, check=False)
        run(name, Timing("prime"), ["audit", "--tree", str(tree)], caches[name].primed)
        settled(caches[name].primed)
    t = {(case, name): Timing(f"{case}, {name}") for case in ("audit", "check", "series")
         for name in sides}
    outputs: dict[str, set[bytes]] = {name: set() for name in sides}
    for i in range(repeat):
        order = list(sides) if i % 2 == 0 else list(sides)[::-1]
        for name in order:
            run(name, t["audit", name], ["audit", "--tree", str(tree)], caches[name].empty())
            run(name, t["check", name], ["check", "--tree", str(tree), str(singles[i])],
                caches[name].tree_warm())
            if i < (repeat + 1) // 2:
                outputs[name].add(run(name, t["series", name],
                                      ["check", "--tree", str(tree), str(series)],
                                      caches[name].tree_warm()))
    now, before = list(sides)
    out: dict = {"rev": rev, "same_series_output": outputs[now] == outputs[before]}
    for case, measure in (("audit", "wall"), ("check", "wall"), ("series", "cpu")):
        a, b = t[case, now], t[case, before]
        out[case] = {"this": getattr(a, measure + "s"), "before": getattr(b, measure + "s"),
                     "measure": measure,
                     "ratio": _ratio(getattr(a, measure), getattr(b, measure))}
    return out


def default_tree() -> Path:
    """``$VMXLINT_KERNEL_CACHE/linux-6.12``, as scripts/fetch-kernel-sources puts it."""
    base = (os.environ.get("VMXLINT_KERNEL_CACHE") or os.environ.get("VMXLINT_KERNELS")
            or Path.home() / ".cache" / "vmxlint-kernels")
    return Path(base) / "linux-6.12"


def main(argv: list[str] | None = None) -> int:
    """Parse options, run, print; the exit status is the verdict."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--tree", type=Path, default=default_tree(),
                    help="kernel tree, Debian 6.12 or 6.1 (default: %(default)s)")
    ap.add_argument("--repeat", type=int, help="runs per measurement, medians (default 5)")
    ap.add_argument("--batch", type=int, help="patches in the batch series (default 40)")
    ap.add_argument("--quick", action="store_true", help="repeat 3, batch 20 (development)")
    ap.add_argument("--json", action="store_true", help="print the results document instead")
    ap.add_argument("--output", type=Path, default=RESULTS,
                    help="results file (default: %(default)s, ignored by git)")
    ap.add_argument("--allow-missing-peers", action="store_true",
                    help="a case whose peer (spatch, perl) is missing is skipped, not missed")
    ap.add_argument("--against", metavar="REV",
                    help="only compare this checkout with git revision REV, side by side: "
                    "cold audit, check of a new patch, series")
    args = ap.parse_args(argv)
    repeat = max(1, args.repeat or (3 if args.quick else 5))
    batch_n = max(1, args.batch or (20 if args.quick else 40))
    tree = args.tree.resolve()
    if not (tree / NESTED).is_file():
        print(f"run.py: no {NESTED} under {tree}; fetch the Debian trees with\n"
              f"    {ROOT / 'scripts' / 'fetch-kernel-sources'}\n"
              "or name one with --tree DIR", file=sys.stderr)
        return 2
    try:
        if args.against:
            cmp = against(tree, args.against, repeat, batch_n)
            for case, what in (("audit", "cold audit"), ("check", "check of a new patch, "
                               "tree analysed"), ("series", f"series of {batch_n}")):
                c = cmp[case]
                print(f"{what} ({c['measure']}, median of {len(c['this'])} interleaved runs): "
                      f"this checkout {statistics.median(c['this']):.3f}s, {cmp['rev']} "
                      f"{statistics.median(c['before']):.3f}s, ratio {c['ratio']:.2f}x")
            print("series output: " + ("the same" if cmp["same_series_output"] else "DIFFERS"))
            return 0 if cmp["same_series_output"] else 1
        doc = bench(tree, repeat, batch_n, args.allow_missing_peers)
    except (BenchError, subprocess.CalledProcessError) as exc:
        print(f"run.py: the benchmark cannot run: {exc}", file=sys.stderr)
        return 2
    args.output.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    if args.json:
        print(json.dumps(doc, indent=1))
    else:
        print_table(doc)
        print(f"written: {args.output}")
    missed = [b for b in doc["budgets"] if b["result"] == "FAIL"]
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
