"""Shared fixtures: the real Debian kernel trees and the synthetic fixture trees."""
from __future__ import annotations

import importlib.machinery
import importlib.util
import os
from pathlib import Path

import pytest
from hypothesis import settings

# No example may fail for being slow: a loaded CI machine is not a bug (no deadline).
settings.register_profile("vmxlint", deadline=None)
settings.load_profile("vmxlint")

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
SHARED = ROOT.parent / "shared"
SEED = SHARED / "seeds" / "000_a13a8eb555275a06.txt"


@pytest.fixture(scope="session", autouse=True)
def _cache_of_this_run(tmp_path_factory) -> None:
    """The suite never writes to the user's cache directory: unless the caller names one,
    every analysis, subprocess and exit hook of the run uses a directory of its own.  It
    stays set to the end of the process: the at-exit writes (parsed trees, the walk's
    summaries) come after the last fixture."""
    if not os.environ.get("VMXLINT_CACHE_DIR"):
        os.environ["VMXLINT_CACHE_DIR"] = str(tmp_path_factory.mktemp("vmxlint-cache"))


def _fetcher():
    path = ROOT / "scripts" / "fetch-kernel-sources"
    loader = importlib.machinery.SourceFileLoader("fetch_kernel_sources", str(path))
    spec = importlib.util.spec_from_loader("fetch_kernel_sources", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session", params=["6.12", "6.1"])
def kernel_tree(request) -> Path:
    """A real Debian kernel tree (fetched into the cache on first use)."""
    mod = _fetcher()
    return mod.fetch(request.param, mod.default_cache())


@pytest.fixture(scope="session")
def kernel_612() -> Path:
    mod = _fetcher()
    return mod.fetch("6.12", mod.default_cache())


@pytest.fixture(scope="session")
def seed_path() -> Path:
    if not SEED.exists():
        pytest.skip("../shared/seeds is not beside the checkout")
    return SEED
