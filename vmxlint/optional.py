"""Importing a library as if one of its optional dependencies were not installed."""
from __future__ import annotations

import importlib
import sys
from types import ModuleType

__all__ = ("import_without",)


def import_without(module: str, absent: str) -> ModuleType:
    """Import MODULE while ABSENT looks uninstalled to it: a ``None`` in ``sys.modules``
    makes an import of ABSENT fail as if it were missing, and it is taken out again at
    once, so whatever imports ABSENT later gets it.  When ABSENT is already imported,
    MODULE is imported as it is."""
    blocked = absent not in sys.modules
    if blocked:
        sys.modules[absent] = None  # type: ignore[assignment]
    try:
        return importlib.import_module(module)
    finally:
        if blocked and sys.modules.get(absent, 0) is None:
            del sys.modules[absent]
