"""Content-addressed cache of analysis results: data only, private, bounded (DESIGN §8).

Where: ``VMXLINT_CACHE_DIR``, else the user cache directory; ``VMXLINT_NO_CACHE=1``
turns it off.  The directory is created 0700; when it is owned by another user or
group/others can write it, one notice goes to stderr and the run goes on uncached.

Format: one file ``<key>.json`` per entry, a header line
``vmxlint-cache 3 <key> <CRC-32 of the body>`` then a JSON body: the value as msgspec
writes it.  The reader names the type it expects (``get(k, Analysis)``) and msgspec
decodes the body into that type only, checking every value against the annotations on
the way.  Nothing in an entry can run code or name a class: no pickle, no type tags
(a regular expression of the model is kept as its source text, compiled again).
Any failure (short, corrupt, foreign, not a regular file, wrong key or checksum, wrong
shape) is a miss and the result is recomputed.  Special files are never opened
blockingly (lstat, then ``O_NONBLOCK | O_NOFOLLOW``).

Writes go to a ``.tmp-*`` file in the directory, renamed into place, removed on failure
(and swept after an hour if a killed process left one; so are the pickle subdirectories
of earlier versions).  What a run keeps to write at its end (the trees it parsed, the
walk's summaries) is written by a process forked for it when it is much (`finish`): that
process holds an exclusive ``flock`` on ``.writing`` in the directory while it writes,
and a run takes it shared before its first read.  Size cap: ``MAX_BYTES`` (64 MiB) over
all entries; the oldest entries by mtime (a hit refreshes it) are removed until the
total fits, on a process's first write and then whenever what it wrote since may have
filled the room it saw (a series writes two entries a patch; scanning the directory
after each cost more than writing them).  Processes writing at once may each leave the
directory over the cap by what the others wrote meanwhile, until their next scan.
Callers put the package's code (``code_digest()``), the rules, the tree inputs and
the patch in the key.
"""
from __future__ import annotations

import atexit
import contextlib
import functools
import hashlib
import os
import re
import stat
import sys
import tempfile
import time
import typing
import zlib
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

import msgspec

T = TypeVar("T")

MAX_BYTES = 64 * 1024 * 1024
MAGIC = b"vmxlint-cache 3"
_KEY = re.compile(r"[0-9a-f]{64}")
_noticed: set[str] = set()


class _Invalid(Exception):
    """An entry that does not decode to a value of the expected shape."""


def cache_dir() -> Path | None:
    """The private cache directory, created 0700; None when off or not private."""
    if os.environ.get("VMXLINT_NO_CACHE"):
        return None
    env = os.environ.get("VMXLINT_CACHE_DIR")
    if env:
        d = Path(env)
    else:
        import platformdirs
        d = Path(platformdirs.user_cache_dir("vmxlint"))
    try:
        d.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = os.stat(d)
    except OSError:
        return None
    why = _not_private(st)
    if why:
        if str(d) not in _noticed:
            _noticed.add(str(d))
            from vmxlint.textsafe import escape_text
            print(f"vmxlint: cache directory {escape_text(str(d))} is not private ({why}); "
                  "running without cache", file=sys.stderr)
        return None
    _wait_once(d)
    return d


def _not_private(st: os.stat_result) -> str:
    if not stat.S_ISDIR(st.st_mode):
        return "not a directory"
    if st.st_uid != os.getuid():
        return f"owned by uid {st.st_uid}"
    if st.st_mode & 0o022:
        return f"mode {stat.S_IMODE(st.st_mode):04o}, writable by group or others"
    return ""


def key(*parts: str) -> str:
    """SHA-256 over the parts, each NUL-terminated."""
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode("utf-8", "replace"))
        h.update(b"\0")
    return h.hexdigest()


def code_digest() -> str:
    """Hash of the vmxlint package's .py files (see `files_digest`)."""
    return files_digest(_package(), ".py")


@functools.lru_cache(maxsize=1)
def _package() -> Path:
    # Resolving the path costs system calls; every cache key of every image asks.
    return Path(__file__).resolve().parent


@functools.lru_cache(maxsize=8)
def files_digest(directory: Path, suffix: str) -> str:
    """SHA-256 over the relative path and the content of each file named ``*SUFFIX``
    under DIRECTORY, once per process.

    Kept in the cache under what ``stat`` says of the files (path, size, modification
    time): the test Python makes before it trusts a ``.pyc``.  Reading and hashing the
    package (550 KB) and the rules cost 3-5 ms of every run; their ``stat`` calls 0.3."""
    files = _stats(directory, suffix)
    stamp = key("files", str(directory), *(f"{rel}\0{size}\0{ns}" for rel, size, ns in files))
    known = get(stamp, str)
    if known is not None and _KEY.fullmatch(known):
        return known
    h = hashlib.sha256()
    for rel, _, _ in files:
        h.update(rel.encode() + b"\0")
        h.update((directory / rel).read_bytes() + b"\0")
    digest = h.hexdigest()
    if _stats(directory, suffix) == files:      # none changed while it was read
        put(stamp, digest)
    return digest


def _stats(directory: Path, suffix: str) -> list[tuple[str, int, int]]:
    """(relative path, size, mtime in ns) of each file named ``*SUFFIX``, in path order.
    (Paths as strings: ``pathlib`` took two thirds of the 0.8 ms of every run.)"""
    root = str(directory)
    out = []
    for top, dirs, names in os.walk(root):
        dirs[:] = [n for n in dirs if n != "__pycache__"]
        for name in names:
            if name.endswith(suffix):
                path = os.path.join(top, name)
                st = os.stat(path)
                rel = path[len(root):].lstrip(os.sep).replace(os.sep, "/")  # under root
                out.append((rel, st.st_size, st.st_mtime_ns))
    return sorted(out)


def entry_path(d: Path, k: str) -> Path:
    return d / f"{k}.json"


def get(k: str, kind: type[T]) -> T | None:
    """The value of type ``kind`` stored under `k`, or None on a miss or any invalid
    entry (``kind`` may be a generic alias such as ``dict[str, list[Writer]]``)."""
    d = cache_dir()
    if d is None or not _KEY.fullmatch(k):
        return None
    data = _read(entry_path(d, k))
    if data is None:
        return None
    try:
        return loads(data, k, kind)
    except Exception:   # noqa: BLE001 - whatever is wrong with an entry, recompute
        return None


_AT_EXIT: list[Callable[[], None]] = []
_PENDING: dict[Callable[[], None], Callable[[], int]] = {}


def at_exit(fn: Callable[[], None], pending: Callable[[], int] | None = None) -> None:
    """Write what fn keeps pending when the process ends: at interpreter exit, or before
    the console script leaves without tearing the interpreter down (`finish`).  PENDING
    says how many entries fn would write now (a large one counts for several)."""
    if fn not in _AT_EXIT:
        _AT_EXIT.append(fn)
        atexit.register(fn)
    if pending is not None:
        _PENDING[fn] = pending


def run_exit_hooks() -> None:
    """Run the `at_exit` functions now (each once: they leave nothing pending)."""
    for fn in list(_AT_EXIT):
        try:
            fn()
        except Exception:   # noqa: BLE001 - a cache write never fails a run
            pass


# Entries pending at the end of a run worth a process of their own: writing 16 costs
# some 10 ms, a fork 2-4 ms.  An analysis from scratch leaves 40-50 (30-50 ms).
WRITE_BEHIND_AT = 16
# How long a run waits at most for the writes of the run before it (then it goes on: an
# entry not there yet is a miss, recomputed).
WAIT_AT_MOST = 5.0
_WRITING = ".writing"           # the lock file in the cache directory


def finish() -> int | None:
    """Write what the `at_exit` functions keep pending, as the console script ends.

    When it is much, a process forked for it writes it (its pid is returned), and this
    one leaves at once: a user or a bot waiting for the run need not wait for the cache.
    That process holds an exclusive lock on a file in the cache directory until it is
    done, and every run takes the lock shared before it reads the cache (`cache_dir`), so
    a run started right after this one reads all it wrote."""
    weight = 0
    for fn in list(_AT_EXIT):
        with contextlib.suppress(Exception):    # a cache write never fails a run
            weight += _PENDING[fn]() if fn in _PENDING else 0
    # A container's first process writes itself: its children die with it.
    d = cache_dir() if weight >= WRITE_BEHIND_AT and hasattr(os, "fork") \
        and os.getpid() != 1 else None
    lock = _lock_for_writing(d) if d is not None else None
    if lock is None:
        run_exit_hooks()
        return None
    try:
        pid = os.fork()
    except OSError:
        os.close(lock)
        run_exit_hooks()
        return None
    if pid == 0:                # the writer: nothing of it reaches the run's output
        try:
            with contextlib.suppress(OSError):
                null = os.open(os.devnull, os.O_RDWR)
                for fd in (0, 1, 2):
                    os.dup2(null, fd)
            run_exit_hooks()
        finally:
            os._exit(0)
    os.close(lock)              # the writer's copy keeps the lock until it ends
    return pid


def _lock_for_writing(d: Path) -> int | None:
    """An exclusive lock on the cache directory's lock file, or None (taken by another
    writer, or no lock to be had here: then the entries are written in this process)."""
    try:
        import fcntl
        fd = os.open(d / _WRITING, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK,
                     0o600)
    except (ImportError, OSError):
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


_waited: set[str] = set()


def _wait_once(d: Path) -> None:
    """`wait_for_writers`, the first time this process reads D."""
    if str(d) not in _waited:
        _waited.add(str(d))
        wait_for_writers(d)


def wait_for_writers(d: Path) -> None:
    """Wait until no run writes into D (its lock taken shared, then given back), for
    ``WAIT_AT_MOST`` seconds at most."""
    try:
        import fcntl
        fd = os.open(d / _WRITING, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except (ImportError, OSError):
        return                  # no writer ever ran here
    try:
        deadline = time.monotonic() + WAIT_AT_MOST
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    return
                time.sleep(0.002)
            except OSError:
                return
    finally:
        os.close(fd)


def put(k: str, value: Any) -> None:
    """Store `value` under `k`; a value that cannot be encoded or a failed write is skipped."""
    put_many([(k, value)])


def put_many(items: Iterable[tuple[str, Any]]) -> None:
    """Store each `(key, value)` as `put` does, evicting once after all the writes."""
    d = cache_dir()
    if d is None:
        return
    wrote = sum(_write(d, k, value) for k, value in items)
    cap, room = _room.get(str(d), (MAX_BYTES, -1))
    if wrote and (wrote > room or cap != MAX_BYTES):
        try:
            _room[str(d)] = (MAX_BYTES, MAX_BYTES - evict(d))
        except OSError:
            pass   # a read-only or full cache directory costs speed, never the run
    elif wrote:
        _room[str(d)] = (cap, room - wrote)


# Per cache directory: the cap and how many bytes this process may still write before
# the entries may be over it, as far as it knows (its last scan, less what it wrote).
_room: dict[str, tuple[int, int]] = {}


def _write(d: Path, k: str, value: Any) -> int:
    """Write one entry into `d`: its size, 0 when it was skipped or the write failed."""
    if not _KEY.fullmatch(k):
        return 0
    try:
        data = dumps(value, k)
    except (TypeError, ValueError, RecursionError, msgspec.EncodeError):
        return 0
    if len(data) > MAX_BYTES:
        return 0
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, entry_path(d, k))
        tmp = None
        return len(data)
    except OSError:
        return 0   # a read-only or full cache directory costs speed, never the run
    finally:
        if tmp is not None:
            _unlink(tmp)


def _read(path: Path) -> bytes | None:
    """The bytes of a regular file, never blocking on a FIFO or following a symlink."""
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_BYTES:
            return None
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_BYTES:
            return None
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = fh.read(MAX_BYTES + 1)
        try:
            os.utime(fd)   # a hit is recent: eviction goes oldest first
        except OSError:
            pass
        return data if len(data) <= MAX_BYTES else None
    except OSError:
        return None
    finally:
        os.close(fd)


def evict(d: Path, limit: int | None = None) -> int:
    """Remove the oldest entries (and stale temp files) until they fit in `limit`
    (MAX_BYTES); the size of the entries left."""
    limit = MAX_BYTES if limit is None else limit
    entries = []
    for e in os.scandir(d):
        try:
            st = e.stat(follow_symlinks=False)
        except OSError:
            continue
        if e.name.endswith(".json") and stat.S_ISREG(st.st_mode):
            entries.append((st.st_mtime, st.st_size, e.path))
        elif e.name.startswith(".tmp-") and st.st_mtime < time.time() - 3600:
            _unlink(e.path)   # left by a process that was killed mid-write
        elif re.fullmatch(r"[0-9a-f]{2}", e.name) and stat.S_ISDIR(st.st_mode):
            _drop_legacy(Path(e.path))
    total = sum(size for _, size, _ in entries)
    for _, size, path in sorted(entries):
        if total <= limit:
            break
        if _unlink(path):
            total -= size
    return total


def _drop_legacy(sub: Path) -> None:
    """Remove a directory of pickled entries left by vmxlint before the JSON format."""
    for p in sub.iterdir():
        if _KEY.fullmatch(p.name):
            _unlink(p)
    try:
        sub.rmdir()
    except OSError:
        pass


def _unlink(path: str | Path) -> bool:
    try:
        os.unlink(path)
        return True
    except OSError:
        return False


# -- data-only encoding -----------------------------------------------------------------

def _encode_other(value: Any) -> Any:
    """A compiled regular expression (the model's) is kept as its source; no other type
    msgspec does not know is."""
    if isinstance(value, re.Pattern) and value.flags == re.UNICODE:
        return value.pattern
    raise TypeError(f"{type(value).__name__} is not kept in the cache")


def _decode_other(kind: Any, value: Any) -> Any:
    """The inverse of `_encode_other`: a pattern's source compiled again."""
    if (typing.get_origin(kind) or kind) is re.Pattern and isinstance(value, str):
        return re.compile(value)
    if kind is object:          # what msgspec gives for ``object`` without a hook
        return value
    raise NotImplementedError(f"{kind} is not kept in the cache")


_ENCODER = msgspec.json.Encoder(enc_hook=_encode_other)


def dumps(value: Any, k: str) -> bytes:
    """The bytes of an entry: header line with key and body checksum, then JSON."""
    body = _ENCODER.encode(value)
    return MAGIC + f" {k} {checksum(body)}\n".encode() + body


def checksum(body: bytes) -> str:
    """What an entry's header says of its body: a CRC-32, which finds a torn or damaged
    write (every error of one to four bytes), as a SHA-256 would at a tenth of its cost
    (a series writes 20 MB of entries).  It keeps out nothing a digest would: whoever
    can write the directory can write the right one."""
    return f"{zlib.crc32(body):08x}"


def loads(data: bytes, k: str, kind: Any) -> Any:
    """The value of type ``kind`` of an entry written by dumps() under `k`; raises on
    anything else (another key, a bad checksum, JSON that is not a ``kind``)."""
    head, sep, body = data.partition(b"\n")
    if not sep or head != MAGIC + f" {k} {checksum(body)}".encode():
        raise _Invalid("header, key or checksum")
    return _decoder(kind).decode(body)


@functools.lru_cache(maxsize=None)
def _decoder(kind: Any) -> msgspec.json.Decoder:
    return msgspec.json.Decoder(kind, dec_hook=_decode_other)
