"""The ``[vmxlint]`` section of setup.cfg, tox.ini or .vmxlint at the tree's top."""
from __future__ import annotations

from pathlib import Path

from vmxlint.errors import VmxlintError

FILES = ("setup.cfg", "tox.ini", ".vmxlint")
KEYS = {"select", "ignore", "extend-select", "extend-ignore", "format", "exit-zero",
        "output-file", "count", "statistics", "per-function-ignores"}


class ConfigError(VmxlintError):
    """A configuration file cannot be read."""


def load(top: Path | None) -> dict[str, str]:
    """Options from the first of FILES at top that has a [vmxlint] section."""
    if top is None:
        return {}
    for name in FILES:
        p = top / name
        if not p.is_file():
            continue
        import configparser     # only with a file to read: a kernel tree has none of them

        parser = configparser.RawConfigParser()
        try:
            parser.read(p, encoding="utf-8")
        except (configparser.Error, UnicodeDecodeError) as exc:
            raise ConfigError(f"{p}: {str(exc).splitlines()[0]}") from None
        if parser.has_section("vmxlint"):
            opts = {k.replace("_", "-"): v for k, v in parser.items("vmxlint")}
            unknown = set(opts) - KEYS
            if unknown:
                raise ConfigError(f"{p}: unknown option(s) in [vmxlint]: "
                                  f"{', '.join(sorted(unknown))}")
            return opts
    return {}
