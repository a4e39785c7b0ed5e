"""Where the reference model (``rules/``) lives: in an installed wheel or in a checkout."""
from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).resolve().parent


def rules_dir() -> Path:
    """``vmxlint/_rules`` inside an installed wheel, else ``<checkout>/rules``."""
    packaged = _HERE / "_rules"
    if packaged.is_dir():
        return packaged
    return _HERE.parent / "rules"


def model_dir() -> Path:
    """The directory of the reference-model TOML files (``rules/model``)."""
    return rules_dir() / "model"
