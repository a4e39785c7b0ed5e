"""Process memos (vmxlint.memo): bounded dictionaries and lazily compiled patterns."""
from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from vmxlint.memo import LazyPattern, kept

PATTERNS = [(r"^diff --git (\S+) (\S+)\s*$", 0), (r"\b(\w+)\(\):(\d+)\b", 0),
            (r"^#define\s+([A-Z][A-Z0-9_]*)\s+(.+?)\s*$", re.M), (r"a|b*", 0)]
TEXTS = st.text(alphabet="ab ()#:_\n\t-+01defingtAZ", max_size=40)


def test_kept_empties_the_memo_at_its_bound():
    memo: dict[int, int] = {}
    for k in range(5):
        assert kept(memo, k, k * k, 3) == k * k
    assert memo == {3: 9, 4: 16}


def test_a_lazy_pattern_is_compiled_at_its_first_use():
    lazy = LazyPattern(r"^vmcs_(?:read|write)(16|32|64|l)$")
    assert lazy._compiled is None
    assert lazy.match("vmcs_write32").group(1) == "32"
    assert isinstance(lazy.compiled, re.Pattern)
    # From then on the methods are the compiled pattern's own, held by the instance.
    assert vars(lazy)["match"] == lazy.compiled.match
    assert lazy.pattern == lazy.compiled.pattern and lazy.groups == 1


@settings(max_examples=150)
@given(st.sampled_from(PATTERNS), TEXTS, st.integers(0, 40))
def test_a_lazy_pattern_answers_as_the_compiled_one(source, text, pos):
    pattern, flags = source
    want, lazy = re.compile(pattern, flags), LazyPattern(pattern, flags)
    assert _span(lazy.match(text, pos)) == _span(want.match(text, pos))
    assert _span(lazy.search(text, pos)) == _span(want.search(text, pos))
    assert [m.span() for m in lazy.finditer(text)] == [m.span() for m in want.finditer(text)]
    assert lazy.sub("<\\g<0>>", text) == want.sub("<\\g<0>>", text)
    assert lazy.split(text) == want.split(text) and lazy.findall(text) == want.findall(text)
    assert lazy.flags == want.flags


def _span(m: re.Match[str] | None) -> tuple[int, int] | None:
    return m.span() if m is not None else None
