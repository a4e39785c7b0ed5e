"""flake8-style code selection: --select/--ignore prefixes, the longest prefix wins."""
from __future__ import annotations

from msgspec import Struct, field


class Selection(Struct):
    select: list[str] = field(default_factory=lambda: ["VMX"])
    ignore: list[str] = field(default_factory=list)
    extend_select: list[str] = field(default_factory=list)
    extend_ignore: list[str] = field(default_factory=list)

    def selected(self, code: str) -> bool:
        sel = [p for p in self.select + self.extend_select if code.startswith(p)]
        ign = [p for p in self.ignore + self.extend_ignore if code.startswith(p)]
        if not sel:
            return False
        if not ign:
            return True
        # Like flake8's DecisionEngine: the more specific prefix decides; a tie selects
        # only when the select was explicit about this code.
        return max(map(len, sel)) > max(map(len, ign))


def split_codes(value: str | None) -> list[str]:
    if not value:
        return []
    return [c.strip() for c in value.replace("\n", ",").split(",") if c.strip()]
