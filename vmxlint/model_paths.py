"""Where the reference model (``rules/``) lives: in an installed wheel or in a checkout."""
from __future__ import annotations

import functools
import os
from pathlib import Path

_HERE = Path(__file__).resolve().parent


def rules_dir() -> Path:
    """``$VMXLINT_RULES_DIR``, else ``vmxlint/_rules`` in a wheel, else ``<checkout>/rules``."""
    env = os.environ.get("VMXLINT_RULES_DIR")
    if env:
        return Path(env)
    return _installed()


@functools.lru_cache(maxsize=1)
def _installed() -> Path:
    # Where the package was installed does not change while it runs: one stat, not one
    # per analysed image.
    packaged = _HERE / "_rules"
    if packaged.is_dir():
        return packaged
    return _HERE.parent / "rules"


def model_dir() -> Path:
    """The directory of the reference-model TOML files (``rules/model``)."""
    return rules_dir() / "model"
