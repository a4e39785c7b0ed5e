"""Content-addressed cache of analysis results under the user cache directory.

Entries are pickles named by a SHA-256 key; writes go to a temporary file that is
renamed into place, so concurrent processes never see a half-written entry.  Set
``VMXLINT_CACHE_DIR`` to move it, or ``VMXLINT_NO_CACHE=1`` to turn it off.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any


def cache_dir() -> Path | None:
    if os.environ.get("VMXLINT_NO_CACHE"):
        return None
    env = os.environ.get("VMXLINT_CACHE_DIR")
    if env:
        return Path(env)
    import platformdirs
    return Path(platformdirs.user_cache_dir("vmxlint"))


def key(*parts: str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode("utf-8", "replace"))
        h.update(b"\0")
    return h.hexdigest()


def get(k: str) -> Any | None:
    d = cache_dir()
    if d is None:
        return None
    try:
        with open(d / k[:2] / k, "rb") as fh:
            return pickle.load(fh)
    except Exception:   # a missing, partial or foreign entry is simply a miss
        return None


def put(k: str, value: Any) -> None:
    d = cache_dir()
    if d is None:
        return
    try:
        sub = d / k[:2]
        sub.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=sub, prefix=".tmp-")
        with os.fdopen(fd, "wb") as fh:
            pickle.dump(value, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, sub / k)
    except OSError:
        pass   # a read-only or full cache directory costs speed, never the run
