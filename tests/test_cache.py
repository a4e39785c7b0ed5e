"""The analysis cache holds data, never code: validated, private, bounded (DESIGN §8)."""
from __future__ import annotations

import os
import pickle
import shutil
import stat
import tempfile
import threading
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vmxlint import cache
from vmxlint.analysis import Analysis
from vmxlint.findings import Evidence, Finding, PatchRef

ROOT = Path(__file__).resolve().parent.parent
K = cache.key("test", "entry")


@pytest.fixture
def cdir(tmp_path, monkeypatch) -> Path:
    d = tmp_path / "cache"
    monkeypatch.setenv("VMXLINT_CACHE_DIR", str(d))
    monkeypatch.delenv("VMXLINT_NO_CACHE", raising=False)
    return d


def sample() -> Analysis:
    ev = (Evidence("arch/x86/kvm/vmx/nested.c", 12, "prepare_vmcs02", "consumer"),
          Evidence("arch/x86/kvm/vmx/nested.c", 40, None, "guard"))
    f1 = Finding(code="VMX401", name="accessor-width", severity="error",
                 message="vmcs_write32() writes GUEST_PDPTR0, a 64-bit field",
                 path="arch/x86/kvm/vmx/nested.c", line=7, col=3, function="prepare_vmcs02",
                 field="GUEST_PDPTR0", status="new", evidence=ev,
                 patch=PatchRef("[PATCH 2/3] KVM: nVMX: x", "2/3", "<m@x>", "A <a@x>"),
                 details=(("guard", {"all": ["a", "b"], "n": 2, "x": None, "f": 1.5}),
                          ("counterexample", ["x", ["y", {"z": True}]]),
                          ("text", "tab\there \x1b[31m")))
    names = set(Finding.__struct_fields__)
    later = {k: v for k, v in (("statement", "vmcs_write32(GUEST_PDPTR0, x);"),
                               ("occurrence", 2)) if k in names}
    f1 = f1.with_(**later)
    f2 = Finding(code="VMX004", name="unparsed-function", severity="warning",
                 message="m", path="p", line=1)
    return Analysis(findings=[f1, f2], notes=["fallback: vmx.h table", ""])


def entry_files(d: Path) -> list[Path]:
    """Every regular file the cache holds, whatever its layout."""
    return [p for p in d.rglob("*") if p.is_file() and not p.is_symlink()]


def test_round_trip_is_equal_and_keeps_tuples(cdir):
    value = sample()
    cache.put(K, value)
    hit = cache.get(K, Analysis)
    assert hit == value and isinstance(hit, Analysis)
    f = hit.findings[0]
    assert type(f.details) is tuple and all(type(p) is tuple for p in f.details)
    assert type(f.evidence) is tuple and f.evidence[1].function is None


def test_fields_added_later_round_trip(cdir):
    """A field the core adds to a record (statement, occurrence) is carried without a
    change here: the reader's type says what an entry holds."""
    wider = msgspec.defstruct(
        "WiderFinding", [("later_text", str, ""), ("later_count", int, 0),
                         ("later_pairs", tuple[tuple[str, int], ...], ())],
        bases=(Finding,), frozen=True, module="vmxlint.findings")
    f = wider(**msgspec.structs.asdict(sample().findings[0]),
              later_text="x = 1;", later_count=2, later_pairs=(("a", 1),))
    cache.put(K, [f])
    assert cache.get(K, list[wider]) == [f]
    # Read as the narrower record, the entry is a miss, never misread.
    assert cache.get(K, list[Finding]) is None


def test_entry_is_data_not_pickle(cdir):
    cache.put(K, sample())
    (entry,) = entry_files(cdir)
    data = entry.read_bytes()
    assert not data.startswith(b"\x80")
    with pytest.raises(Exception):
        pickle.loads(data)


# Where a planted pickle would leave its trace if it ran (fixed, so a payload built once works).
MARKER = Path(tempfile.gettempdir()) / f"vmxlint-test-pwned-{os.getpid()}"


class _Payload:
    def __reduce__(self):
        return (os.mkdir, (str(MARKER),))


def ran_code() -> bool:
    if MARKER.exists():
        MARKER.rmdir()
        return True
    return False


@pytest.mark.parametrize("where", ["entry", "every-file"])
def test_planted_pickle_runs_no_code(cdir, where):
    cache.put(K, sample())
    payload = pickle.dumps(_Payload())
    targets = entry_files(cdir) if where == "every-file" else [cache.entry_path(cdir, K)]
    for p in targets:
        p.write_bytes(payload)
    assert cache.get(K, Analysis) is None
    assert not ran_code()


def test_one_byte_corruption_is_a_miss(cdir):
    """``error`` -> ``erroR`` in an entry must not serve a finding that lost its severity."""
    cache.put(K, sample())
    (entry,) = entry_files(cdir)
    data = entry.read_bytes()
    assert b'"error"' in data
    entry.write_bytes(data.replace(b'"error"', b'"erroR"', 1))
    assert cache.get(K, Analysis) is None


@pytest.mark.parametrize("body", [
    b'{"class":"os:system","fields":{}}',
    b'{"class":"vmxlint.tree:Tree","fields":{"root":"/"}}',
    b'{"findings":[{"path":1,"line":"x","function":null,"role":"r"}]}',
    b'{"findings":[' + b'[' * 100000 + b']}', b'{"notes":[1]}', b'[]', b'{"x":1',
    b'{"findings":[{"code":"VMX101"}]}',
], ids=["os.system", "not-a-record", "wrong-types", "deep", "wrong-item", "array",
        "truncated", "missing-fields"])
def test_well_checksummed_but_wrong_shape_is_a_miss(cdir, body):
    """Even an entry with a valid header is checked against the record's fields."""
    cache.put(K, sample())
    entry = cache.entry_path(cdir, K)
    entry.write_bytes(cache.MAGIC + f" {K} {cache.checksum(body)}\n".encode() + body)
    assert cache.get(K, Analysis) is None


def test_entry_under_another_key_is_a_miss(cdir):
    cache.put(K, sample())
    other = cache.key("another")
    shutil.copy(cache.entry_path(cdir, K), cache.entry_path(cdir, other))
    assert cache.get(other, Analysis) is None


def test_symlinked_entry_is_not_followed(cdir, tmp_path):
    cache.put(K, sample())
    real = tmp_path / "real.json"
    shutil.move(cache.entry_path(cdir, K), real)
    cache.entry_path(cdir, K).symlink_to(real)
    assert cache.get(K, Analysis) is None


def test_fifo_at_an_entry_does_not_block(cdir):
    cache.put(K, sample())
    for p in entry_files(cdir):
        p.unlink()
        os.mkfifo(p)
    result: list[object] = []
    t = threading.Thread(target=lambda: result.append(cache.get(K, Analysis)), daemon=True)
    t.start()
    t.join(120)   # a guard against a hang, not a measure of speed
    if t.is_alive():   # release the blocked reader before failing
        for p in cdir.rglob("*"):
            if stat.S_ISFIFO(p.lstat().st_mode):
                os.close(os.open(p, os.O_WRONLY | os.O_NONBLOCK))
        t.join()
        pytest.fail("cache.get() blocked on a FIFO")
    assert result == [None]


def test_directory_is_created_private(cdir):
    old = os.umask(0o022)
    try:
        cache.put(K, sample())
    finally:
        os.umask(old)
    assert stat.S_IMODE(cdir.stat().st_mode) == 0o700
    for p in entry_files(cdir):
        assert stat.S_IMODE(p.stat().st_mode) & 0o077 == 0


def _reset_notice(monkeypatch):
    monkeypatch.setattr(cache, "_noticed", set())


def test_group_writable_directory_is_refused_with_one_notice(cdir, capsys, monkeypatch):
    _reset_notice(monkeypatch)
    cdir.mkdir()
    cdir.chmod(0o770)
    cache.put(K, sample())
    assert cache.get(K, Analysis) is None
    cache.put(K, sample())
    assert list(cdir.iterdir()) == []
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"vmxlint: cache directory {cdir} is not private (")
    assert err.endswith("running without cache\n")


def test_directory_of_another_user_is_refused(cdir, capsys, monkeypatch):
    _reset_notice(monkeypatch)
    cdir.mkdir(mode=0o700)
    uid = os.getuid()
    monkeypatch.setattr(os, "getuid", lambda: uid + 1)
    cache.put(K, sample())
    assert cache.get(K, Analysis) is None
    monkeypatch.undo()
    assert list(cdir.iterdir()) == []
    assert "not private (owned by uid" in capsys.readouterr().err


def test_failed_write_leaves_nothing(cdir, monkeypatch):
    cdir.mkdir(mode=0o700)

    def fail(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    cache.put(K, sample())
    monkeypatch.undo()
    assert list(cdir.iterdir()) == []


def test_value_that_is_not_data_is_not_cached(cdir):
    cache.put(K, Analysis(notes=[object()]))    # no data-only encoding
    cache.put(K, Analysis(notes=[lambda: 1]))
    assert cache.get(K, Analysis) is None
    assert entry_files(cdir) == []


def test_value_of_another_shape_is_a_miss(cdir):
    cache.put(K, Analysis(notes=[{1, 2}]))      # written as data, but not a list of str
    assert cache.get(K, Analysis) is None
    cache.put(K, Analysis(notes=["a"]))
    assert cache.get(K, Finding) is None and cache.get(K, Analysis) == Analysis(notes=["a"])


def test_size_cap_evicts_oldest_first(cdir, monkeypatch):
    cache.put(K, sample())
    size = cache.entry_path(cdir, K).stat().st_size
    monkeypatch.setattr(cache, "MAX_BYTES", 3 * size + size // 2)
    keys = [cache.key("entry", str(i)) for i in range(6)]
    for i, k in enumerate(keys):
        cache.put(k, sample())
        os.utime(cache.entry_path(cdir, k), (1_000_000 + i, 1_000_000 + i))
    cache.put(K, sample())   # the newest write
    total = sum(p.stat().st_size for p in entry_files(cdir))
    assert total <= cache.MAX_BYTES
    assert cache.get(K, Analysis) is not None and cache.get(keys[-1], Analysis) is not None
    assert cache.get(keys[0], Analysis) is None


def test_stale_temp_files_are_swept(cdir, monkeypatch):
    cache.put(K, sample())
    stale = cdir / ".tmp-abandoned"
    stale.write_bytes(b"half")
    os.utime(stale, (1_000_000, 1_000_000))
    monkeypatch.setattr(cache, "_room", {})     # the first write of the next run
    cache.put(cache.key("other"), sample())
    assert not stale.exists()


def test_a_process_scans_the_directory_again_only_when_it_may_be_full(cdir, monkeypatch):
    scans: list[int] = []
    evict = cache.evict
    monkeypatch.setattr(cache, "evict", lambda d, limit=None: (scans.append(1), evict(d))[1])
    monkeypatch.setattr(cache, "_room", {})
    cache.put(K, sample())
    size = cache.entry_path(cdir, K).stat().st_size
    assert len(scans) == 1                      # a process's first write
    for i in range(3):
        cache.put(cache.key("more", str(i)), sample())
    assert len(scans) == 1                      # room enough for them
    monkeypatch.setattr(cache, "_room", {str(cdir): (cache.MAX_BYTES, 2 * size)})
    for i in range(3):
        cache.put(cache.key("fill", str(i)), sample())
    assert len(scans) == 2                      # the third write may have filled it


def test_old_pickle_entries_are_swept(cdir):
    legacy = cdir / K[:2]
    legacy.mkdir(parents=True)
    (legacy / K).write_bytes(pickle.dumps(_Payload()))
    cache.put(K, sample())
    assert not legacy.exists() and not ran_code()
    assert cache.get(K, Analysis) == sample()


def test_code_digest_covers_the_package(tmp_path, cdir):
    d = cache.code_digest()
    assert len(d) == 64 and d == cache.code_digest()
    pkg = tmp_path / "vmxlint"
    shutil.copytree(ROOT / "vmxlint", pkg, ignore=shutil.ignore_patterns("__pycache__"))
    digest = cache.files_digest.__wrapped__   # the function without its in-process memo
    before = digest(pkg, ".py")
    with open(pkg / "checks" / "__init__.py", "a", encoding="utf-8") as fh:
        fh.write("# changed\n")
    assert digest(pkg, ".py") != before
    (pkg / "checks" / "__pycache__").mkdir()
    (pkg / "checks" / "__pycache__" / "stray.py").write_text("x = 1\n")
    (pkg / "notes.txt").write_text("not code\n")
    assert digest(pkg, ".py") == digest(pkg, ".py") != before


def test_files_digest_is_kept_under_the_files_stat(tmp_path, cdir, monkeypatch):
    """A run reads and hashes the files only when their stat changed since a run saw
    them; another file with the same name, size and time is the one case it misses (as
    Python's own check of a .pyc does)."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "a.py").write_text("a = 1\n")
    (pkg / "sub" / "b.py").write_text("b = 2\n")
    digest = cache.files_digest.__wrapped__
    first = digest(pkg, ".py")
    reads = []
    real = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: reads.append(self) or real(self))
    assert digest(pkg, ".py") == first and reads == []
    os.utime(pkg / "sub" / "b.py", ns=(1, 1))           # same bytes, another time
    assert digest(pkg, ".py") == first and len(reads) == 2
    stamp = os.stat(pkg / "a.py")
    (pkg / "a.py").write_text("a = 3\n")               # same size and time: kept digest
    os.utime(pkg / "a.py", ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert digest(pkg, ".py") == first
    os.utime(pkg / "a.py", ns=(2, 2))
    assert digest(pkg, ".py") != first


def test_the_model_is_kept_as_it_was_read(tmp_path, cdir, monkeypatch):
    """A run takes the model from the cache, regular expressions compiled again from
    their source, equal to the one read from the files; changed rules, or a damaged
    entry, are read again."""
    from vmxlint import model
    from vmxlint.model_paths import rules_dir

    rules = tmp_path / "rules"
    shutil.copytree(rules_dir(), rules)
    load = model._load.__wrapped__             # without the in-process memo
    fresh = model._read(rules)
    assert fresh.values and fresh.caches.effects
    assert load(rules) == fresh                 # read, then kept
    real_read = model._read
    monkeypatch.setattr(model, "_read", lambda d: pytest.fail("read again"))
    kept = load(rules)
    assert kept == fresh and kept is not fresh
    assert all(type(v.pattern) is type(fresh.values[0].pattern) for v in kept.values)
    (entry,) = [p for p in entry_files(cdir) if b'"rules":' in p.read_bytes()]
    entry.write_bytes(entry.read_bytes().replace(b'"rules":', b'"rulez":'))
    monkeypatch.setattr(model, "_read", real_read)
    assert load(rules) == fresh                 # damaged: a miss, read again
    toml = rules / "model" / "caches.toml"
    toml.write_text(toml.read_text() + "\n# an edit\n")
    cache.files_digest.cache_clear()            # as a new process
    reads = []
    monkeypatch.setattr(model, "_read", lambda d: reads.append(d) or real_read(d))
    assert load(rules) == fresh and reads == [rules]


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(junk=st.binary(max_size=2048), keep_header=st.booleans())
def test_any_bytes_in_an_entry_are_a_miss(cdir, junk, keep_header):
    cache.put(K, sample())
    entry = cache.entry_path(cdir, K)
    head = entry.read_bytes().partition(b"\n")[0] + b"\n" if keep_header else b""
    entry.write_bytes(head + junk)
    assert cache.get(K, Analysis) is None


# -- the analysis pipeline through a hostile cache ----------------------------------------

TREE = ROOT / "fixtures" / "rules" / "VMX401-accessor-width"


@pytest.fixture(scope="module")
def uncached() -> Analysis:
    from vmxlint.analysis import analyse
    from vmxlint.tree import Tree

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VMXLINT_NO_CACHE", "1")
        return analyse(Tree.open(TREE))


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(junk=st.one_of(st.binary(max_size=4096),
                      st.just(pickle.dumps(_Payload())),
                      st.sampled_from([b"", b"\x00" * 64, cache.MAGIC + b"\n{}",
                                       b"vmxlint-cache 2\n{}"])))
def test_analysis_through_any_corrupt_entry_equals_uncached(cdir, uncached, junk):
    from vmxlint.analysis import analyse
    from vmxlint.tree import Tree

    assert analyse(Tree.open(TREE)) == uncached     # fills the cache
    for p in entry_files(cdir):
        p.write_bytes(junk)
    assert analyse(Tree.open(TREE)) == uncached
    assert analyse(Tree.open(TREE)) == uncached     # and the recomputed entry is good
    assert not ran_code()


# -- analyses as the cache keeps them (vmxlint.stored) ----------------------------------

_TEXT = st.text(alphabet=st.sampled_from("ab \0\u00e91"), max_size=6).map(
    lambda s: s * 60 if s.endswith("1") else s)     # some long, some starting with NUL
_VALUE = st.one_of(_TEXT, st.lists(st.one_of(_TEXT, st.integers(), st.lists(_TEXT)),
                                   max_size=4),
                   st.dictionaries(_TEXT, st.one_of(_TEXT, st.booleans()), max_size=3),
                   st.integers(), st.none())


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.tuples(st.sampled_from(["guard", "covering_guards", "x"]),
                                   _VALUE), max_size=4), max_size=5))
def test_an_analysis_stored_reads_back_as_a_plain_entry(details):
    """Long detail strings written once and referred to: read back, the analysis is the
    one a plain entry gives, whatever the strings hold (NUL at their start included)."""
    from vmxlint.stored import Stored, restored, stored

    a = Analysis(findings=[Finding(code="VMX101", name="n", severity="warning", message="m",
                                   path="p", line=k + 1, details=tuple(d))
                           for k, d in enumerate(details)])
    plain = msgspec.json.decode(msgspec.json.encode(a), type=Analysis)
    entry = msgspec.json.decode(msgspec.json.encode(stored(a)), type=Stored)
    assert restored(entry) == plain
    assert len(entry.strings) == len(set(entry.strings))


def test_a_stored_analysis_is_smaller_and_a_dangling_reference_a_miss(cdir):
    """A guard repeated by findings is written once; an entry whose reference points at no
    string is a miss, and the analysis is made again."""
    from vmxlint.stored import Stored, restored, stored

    guard = "!(vmcs12->guest_cr4 & X86_CR4_CET) && " * 40
    a = Analysis(findings=[Finding(code="VMX101", name="n", severity="warning", message="m",
                                   path="p", line=k, details=(("guard", guard),
                                                              ("covering_guards", [guard])))
                           for k in range(1, 6)])
    assert len(msgspec.json.encode(stored(a))) < len(msgspec.json.encode(a)) / 4
    entry = stored(a)
    broken = Stored(entry.analysis, [])
    assert restored(broken) is None
    cache.put(K, broken)
    from vmxlint.analysis import _cached
    assert _cached(K) is None
    cache.put(K, entry)
    assert _cached(K) == msgspec.json.decode(msgspec.json.encode(a), type=Analysis)


def test_much_to_write_is_written_by_a_process_the_next_run_waits_for(cdir, monkeypatch):
    """At the end of a run with much to write, a forked process writes it while the run
    leaves (``cache.finish``); it holds the directory's lock until it has written, and a
    run that reads the cache waits for it."""
    import fcntl

    gate_r, gate_w = os.pipe()
    here = os.getpid()

    def hook():
        if os.getpid() != here:
            os.read(gate_r, 1)          # the writer waits until the test lets it go on
        cache.put(K, "written")

    monkeypatch.setattr(cache, "_AT_EXIT", [hook])
    monkeypatch.setattr(cache, "_PENDING", {hook: lambda: cache.WRITE_BEHIND_AT})
    pid = cache.finish()
    assert pid is not None
    try:
        fd = os.open(cdir / ".writing", os.O_RDONLY)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)      # the writer holds it
        finally:
            os.close(fd)
        assert not (cdir / f"{K}.json").exists()
        os.write(gate_w, b"x")
        cache._waited.discard(str(cdir))        # as a run that starts now
        assert cache.get(K, str) == "written"   # it waited for the writer
    finally:
        os.write(gate_w, b"x")
        os.waitpid(pid, 0)
        os.close(gate_r)
        os.close(gate_w)


@pytest.mark.parametrize("how", ["little", "first process"])
def test_little_to_write_is_written_before_the_run_ends(cdir, monkeypatch, how):
    """Little to write is written in the run; so is anything by a container's first
    process (pid 1), whose children end with it."""
    def hook():
        cache.put(K, "here")

    pending = cache.WRITE_BEHIND_AT - 1 if how == "little" else cache.WRITE_BEHIND_AT
    if how == "first process":
        monkeypatch.setattr(os, "getpid", lambda: 1)
    monkeypatch.setattr(cache, "_AT_EXIT", [hook])
    monkeypatch.setattr(cache, "_PENDING", {hook: lambda: pending})
    assert cache.finish() is None and cache.get(K, str) == "here"
    assert not (cdir / ".writing").exists()


def test_the_console_script_leaves_what_it_would_write_itself(tmp_path):
    """An audit with an empty cache ends with much to write (the trees, the walk's
    summaries): what the process forked for it leaves is what the run writes itself."""
    import subprocess
    import sys

    tree = ROOT / "fixtures" / "trees" / "shape-modern"
    inline = "from vmxlint import cache, cli; cache.WRITE_BEHIND_AT = 1 << 30; cli.run()"
    out = {}
    for how, argv in (("behind", ["-m", "vmxlint"]), ("inline", ["-c", inline])):
        d = tmp_path / how
        env = {**os.environ, "VMXLINT_CACHE_DIR": str(d)}
        env.pop("VMXLINT_NO_CACHE", None)
        proc = subprocess.run([sys.executable, *argv, "audit", "--tree", str(tree)],
                              env=env, capture_output=True, text=True, cwd=tmp_path)
        assert proc.returncode in (0, 1), proc.stderr
        cache.wait_for_writers(d)
        out[how] = (proc.stdout, sorted(p.name for p in d.glob("*.json")),
                    (d / ".writing").exists())
    assert out["behind"][:2] == out["inline"][:2] and len(out["inline"][1]) > 5
    assert out["behind"][2] and not out["inline"][2]
