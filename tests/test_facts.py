"""Facts from the tree: encodings, vmcs12 members, shadow lists, eVMCS groups."""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from vmxlint import model_paths
from vmxlint.facts import Facts, FieldInfo, accessor_width, load_facts
from vmxlint.facts import _common, encodings, evmcs, shadow, vmcs12
from vmxlint.tree import Tree

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "fixtures" / "facts"

VMX_H = "arch/x86/include/asm/vmx.h"
VMCS12_C = "arch/x86/kvm/vmx/vmcs12.c"
SHADOW_H = "arch/x86/kvm/vmx/vmcs_shadow_fields.h"
EVMCS_C = "arch/x86/kvm/vmx/hyperv_evmcs.c"
OLD_EVMCS_C = "arch/x86/kvm/vmx/evmcs.c"
TLFS_H = "arch/x86/include/asm/hyperv-tlfs.h"
ALL_FILES = (VMX_H, VMCS12_C, SHADOW_H, EVMCS_C, TLFS_H)


@pytest.fixture(scope="module")
def fixture_tree() -> Tree:
    return Tree(FIXTURE)


@pytest.fixture(scope="module")
def facts(fixture_tree: Tree) -> Facts:
    return load_facts(fixture_tree)


# --- the synthetic tree -------------------------------------------------------------

def test_fixture_fields_come_from_the_tree(facts: Facts) -> None:
    assert facts.fallbacks == []
    assert facts.notes == []
    assert facts.sources == {"encodings": VMX_H, "vmcs12": VMCS12_C, "shadow": SHADOW_H,
                             "evmcs": EVMCS_C, "evmcs_bits": TLFS_H}
    assert len(facts.fields) == 16
    assert "NOT_A_FIELD" not in facts.fields            # commented out
    assert "WIDTH_U16" not in facts.fields              # from another enum


def test_type_comes_from_the_bits_not_the_name(facts: Facts) -> None:
    gpa = facts.get("GUEST_PHYSICAL_ADDRESS")
    assert gpa == FieldInfo("GUEST_PHYSICAL_ADDRESS", 0x2400, "64", "exit-info", False,
                            "guest_physical_address", "ro", "NONE")
    assert gpa.read_only
    link = facts.get("VMCS_LINK_POINTER")
    assert (link.type, link.width) == ("guest", "64")


def test_high_alias(facts: Facts) -> None:
    high = facts.get("GUEST_PDPTR0_HIGH")
    assert high == FieldInfo("GUEST_PDPTR0_HIGH", 0x280b, "32", "guest", True,
                             "guest_pdptr0", None, None)
    gpa_high = facts.get("GUEST_PHYSICAL_ADDRESS_HIGH")
    assert (gpa_high.type, gpa_high.width, gpa_high.high) == ("exit-info", "32", True)
    assert gpa_high.shadow == "ro"
    assert gpa_high.vmcs12_member == "guest_physical_address"


def test_widths_and_types(facts: Facts) -> None:
    got = {n: (f.width, f.type) for n, f in facts.fields.items() if not f.high}
    assert got == {
        "VIRTUAL_PROCESSOR_ID": ("16", "control"),
        "LAST_PID_POINTER_INDEX": ("16", "control"),
        "GUEST_INTR_STATUS": ("16", "guest"),
        "GUEST_PHYSICAL_ADDRESS": ("64", "exit-info"),
        "VMCS_LINK_POINTER": ("64", "guest"),
        "GUEST_PDPTR0": ("64", "guest"),
        "CPU_BASED_VM_EXEC_CONTROL": ("32", "control"),
        "CR3_TARGET_COUNT": ("32", "control"),
        "VM_EXIT_REASON": ("32", "exit-info"),
        "GUEST_CS_AR_BYTES": ("32", "guest"),
        "EXIT_QUALIFICATION": ("natural", "exit-info"),
        "GUEST_RIP": ("natural", "guest"),
        "HOST_RIP": ("natural", "host"),
    }


def test_members_shadow_groups(facts: Facts) -> None:
    pdptr0 = facts.get("GUEST_PDPTR0")
    assert pdptr0 == FieldInfo("GUEST_PDPTR0", 0x280a, "64", "guest", False,
                               "guest_pdptr0", None, "GUEST_GRP1")
    assert facts.get("LAST_PID_POINTER_INDEX").vmcs12_member is None
    assert facts.get("GUEST_RIP").shadow == "rw"
    assert facts.get("GUEST_CS_AR_BYTES").shadow == "ro"
    assert facts.get("HOST_RIP").shadow is None          # commented out in the fixture
    assert facts.get("CR3_TARGET_COUNT").evmcs_group == "ALL"
    assert facts.get("VM_EXIT_REASON").evmcs_group == "NONE"
    assert facts.get("GUEST_INTR_STATUS").evmcs_group is None
    assert facts.evmcs_group_bits["GUEST_GRP1"] == 1 << 11
    assert facts.evmcs_group_bits["ALL"] == 0xFFFF
    assert facts.get("NO_SUCH_FIELD") is None
    assert facts.by_encoding(0x280a) is pdptr0


# --- fallbacks ----------------------------------------------------------------------

def test_missing_vmcs12_uses_embedded_map(fixture_tree: Tree) -> None:
    f = load_facts(fixture_tree.with_overlay({VMCS12_C: None}))
    assert f.fallbacks == [f"{VMCS12_C} not found: using the embedded vmcs12 map"]
    assert f.sources["vmcs12"] == "embedded:vmcs12.toml"
    assert f.get("GUEST_PDPTR0").vmcs12_member == "guest_pdptr0"
    assert len(f.fields) == 16                           # encodings still from the tree
    assert f.get("GUEST_PDPTR0").evmcs_group == "GUEST_GRP1"


def test_missing_evmcs_reads_the_old_file(fixture_tree: Tree) -> None:
    old = fixture_tree.read(EVMCS_C)
    f = load_facts(fixture_tree.with_overlay({EVMCS_C: None, OLD_EVMCS_C: old}))
    assert f.fallbacks == []
    assert f.sources["evmcs"] == OLD_EVMCS_C
    assert f.get("GUEST_PDPTR0").evmcs_group == "GUEST_GRP1"
    f = load_facts(fixture_tree.with_overlay({EVMCS_C: None}))
    assert f.fallbacks == [f"{EVMCS_C} and {OLD_EVMCS_C} not found: "
                           "using the embedded eVMCS group table"]


def test_empty_tree_uses_every_embedded_table() -> None:
    f = load_facts(Tree(None))
    assert len(f.fallbacks) == 5
    assert all("using the embedded" in m for m in f.fallbacks)
    assert len(f.fields) == 194
    info = f.get("GUEST_PDPTR0")
    assert (info.encoding, info.type, info.width) == (0x280a, "guest", "64")
    assert (info.vmcs12_member, info.evmcs_group) == ("guest_pdptr0", "GUEST_GRP1")
    assert f.get("GUEST_INTR_STATUS").shadow == "rw"
    assert f.evmcs_group_bits["GUEST_GRP1"] == 0x800


GARBAGE = ["", "\x00\xff garbage {{{ ((( ,,,", "enum vmcs_field {", "enum vmcs_field { = , = }",
           "FIELD64(", "EVMCS1_FIELD(A, b, c)", "SHADOW_FIELD_RW(,)", "/* unterminated",
           "#define HV_VMX_ENLIGHTENED_CLEAN_FIELD_X BIT(99999999999999999999)"]


@pytest.mark.parametrize("junk", GARBAGE)
def test_garbage_files_do_not_raise(fixture_tree: Tree, junk: str) -> None:
    f = load_facts(fixture_tree.with_overlay({p: junk for p in ALL_FILES}))
    assert len(f.fallbacks) == 5
    assert any(m.startswith(f"{VMX_H} has no enum vmcs_field") for m in f.fallbacks)
    assert len(f.fields) == 194


def test_bad_enumerators_are_skipped_and_noted(fixture_tree: Tree) -> None:
    text = ("enum vmcs_field {\n GOOD = 0x4002,\n RESERVED12 = 0x1000,\n WIDE = 0x18000,\n"
            " ODD16 = 0x0001,\n EXPR = GOOD + 1,\n BARE,\n GOOD = 0x4004,\n"
            " OCTAL = 020000,\n DEC = 26624U\n}")
    f = load_facts(fixture_tree.with_overlay({VMX_H: text}))
    assert set(f.fields) == {"GOOD", "OCTAL", "DEC"}
    assert f.get("GOOD").encoding == 0x4002
    assert (f.get("OCTAL").width, f.get("DEC").width) == ("64", "natural")
    joined = "\n".join(f.notes)
    for name in ("RESERVED12", "WIDE", "ODD16", "EXPR", "BARE"):
        assert name in joined
    assert "defined twice" in joined
    f = load_facts(fixture_tree.with_overlay({VMX_H: "enum vmcs_field { BAD = 0x1000 };"}))
    assert f.fallbacks[0].startswith(f"{VMX_H} has no enum vmcs_field")
    assert any("BAD" in n for n in f.notes)
    assert "not in enum vmcs_field" in joined          # vmcs12.c etc. name other fields


def test_old_one_argument_shadow_form(fixture_tree: Tree) -> None:
    text = "SHADOW_FIELD_RW(GUEST_RIP)\nSHADOW_FIELD_RO(VM_EXIT_REASON)\n"
    f = load_facts(fixture_tree.with_overlay({SHADOW_H: None,
                                              "arch/x86/kvm/vmx_shadow_fields.h": text}))
    assert f.fallbacks == []
    assert f.get("GUEST_RIP").shadow == "rw"
    assert f.get("VM_EXIT_REASON").shadow == "ro"
    assert f.get("GUEST_CS_AR_BYTES").shadow is None


def test_comments_and_literals() -> None:
    text = ("char q = '\"'; /* FIELD(HIDDEN, a) */ const char *s = \"/* not a comment */\";\n"
            "// FIELD(ALSO_HIDDEN, b)\nFIELD(SEEN, c)\n")
    members, _ = vmcs12.parse(text)
    assert members == {"SEEN": "c"}


def test_broken_embedded_table_does_not_raise(fixture_tree: Tree, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "encodings.toml").write_text("[fields\nnot toml")
    (tmp_path / "vmcs12.toml").write_text("[members]\nGUEST_RIP = 3\n")
    monkeypatch.setattr(_common, "model_dir", lambda: tmp_path)
    f = load_facts(fixture_tree.with_overlay({VMX_H: None, VMCS12_C: None}))
    assert f.fields == {}
    assert len(f.fallbacks) == 2
    assert "unusable" in f.fallbacks[0] and "empty" in f.fallbacks[0]
    assert "has no [members]" in f.fallbacks[1]


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("enum vmcs_field{}=,0x1aF/*()_HIGH\nFIELD64"
                                             "SHADOW_RWEVMCS1HV_VMX_ENLIGHTENED_CLEAN"
                                             "#defineBIT ")), max_size=300))
def test_fuzzed_files_never_raise(fixture_tree: Tree, junk: str) -> None:
    f = load_facts(fixture_tree.with_overlay({p: junk for p in ALL_FILES}))
    for info in f.fields.values():
        assert encodings.invalid(info.encoding) is None


# --- helpers ------------------------------------------------------------------------

@pytest.mark.parametrize("accessor, width", [
    ("vmcs_write16", "16"), ("vmcs_write32", "32"), ("vmcs_write64", "64"),
    ("vmcs_writel", "natural"), ("vmcs_read16", "16"), ("vmcs_read32", "32"),
    ("vmcs_read64", "64"), ("vmcs_readl", "natural"), ("vmcs_set_bits", "32"),
    ("vmcs_clear_bits", "32"), ("__vmcs_writel", None), ("vmcs_write8", None),
    ("vmcs_write", None), ("pin_controls_set", None),
])
def test_accessor_width(accessor: str, width: str | None) -> None:
    assert accessor_width(accessor) == width


def test_decode() -> None:
    assert encodings.decode(0x280a) == ("64", "guest", False)
    assert encodings.decode(0x280b) == ("32", "guest", True)
    assert encodings.decode(0x640a) == ("natural", "exit-info", False)
    assert encodings.decode(0x482e) == ("32", "guest", False)
    assert encodings.decode(0x0002) == ("16", "control", False)
    assert encodings.invalid(0x1000) and encodings.invalid(0x8000)
    assert encodings.invalid(0x4001) and encodings.invalid(0x6c01)
    assert encodings.invalid(0x2001) is None


def test_rules_dir_is_the_checkout() -> None:
    assert model_paths.rules_dir() == ROOT / "rules"
    assert (model_paths.rules_dir() / "model" / "encodings.toml").is_file()


def test_import_is_cheap() -> None:
    code = ("import sys, vmxlint.facts; "
            "print(sorted(m for m in sys.modules if m.startswith(('vmxlint', 'tomllib'))))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "['vmxlint', 'vmxlint.facts']"


# --- the real trees -----------------------------------------------------------------

def _enum_lines(root: Path) -> list[tuple[str, int]]:
    text = (root / VMX_H).read_text()
    body = text[text.index("enum vmcs_field {"):]
    body = body[:body.index("};")]
    return [(n, int(v, 16)) for n, v in re.findall(r"^\s*(\w+)\s*=\s*(0x[0-9a-fA-F]+),",
                                                   body, re.M)]


@pytest.mark.kernel
def test_kernel_enumerators_decode(kernel_tree: Path) -> None:
    raw = _enum_lines(kernel_tree)
    f = load_facts(Tree(kernel_tree))
    assert f.fallbacks == [] and f.notes == []
    assert [(n, i.encoding) for n, i in f.fields.items()] == raw
    for info in f.fields.values():
        assert info.encoding & 0x1000 == 0 and info.encoding >> 15 == 0
        if info.high:
            base = f.get(info.name[:-len("_HIGH")])
            assert info.name.endswith("_HIGH") and base.encoding + 1 == info.encoding
            assert base.width == "64"
    assert all(i.high == i.name.endswith("_HIGH") for i in f.fields.values())
    if kernel_tree.name == "linux-6.12":
        assert len(f.fields) == 194 and "VE_INFORMATION_ADDRESS" in f.fields
        assert f.sources["evmcs"] == EVMCS_C
    else:
        assert len(f.fields) == 192 and "VE_INFORMATION_ADDRESS" not in f.fields
        assert f.sources["evmcs"] == OLD_EVMCS_C


@pytest.mark.kernel
def test_kernel_facts(kernel_tree: Path) -> None:
    f = load_facts(Tree(kernel_tree))
    assert f.get("GUEST_PDPTR0") == FieldInfo("GUEST_PDPTR0", 0x280a, "64", "guest", False,
                                              "guest_pdptr0", None, "GUEST_GRP1")
    assert f.get("GUEST_CS_AR_BYTES").shadow == "ro"
    assert f.get("GUEST_INTR_STATUS").shadow == "rw"
    assert f.get("GUEST_PHYSICAL_ADDRESS").type == "exit-info"
    assert f.get("GUEST_LINEAR_ADDRESS").width == "natural"
    assert f.get("VMX_PREEMPTION_TIMER_VALUE").type == "guest"
    assert f.get("TERTIARY_VM_EXEC_CONTROL").width == "64"
    assert sum(i.shadow == "rw" for i in f.fields.values()) == 24
    assert sum(i.shadow == "ro" for i in f.fields.values()) == 12
    assert sum(i.evmcs_group is not None for i in f.fields.values()) == 126
    assert f.get("TPR_THRESHOLD").evmcs_group == "NONE"
    assert f.get("VM_EXIT_MSR_STORE_ADDR").evmcs_group == "ALL"
    assert f.get("GUEST_INTR_STATUS").evmcs_group is None


@pytest.mark.kernel
def test_embedded_tables_are_fresh(kernel_612: Path) -> None:
    tree = Tree(kernel_612)
    for mod, paths, parse, embedded in (
            (encodings, encodings.PATHS, encodings.parse, encodings.embedded),
            (vmcs12, vmcs12.PATHS, vmcs12.parse, vmcs12.embedded),
            (shadow, shadow.PATHS, shadow.parse, shadow.embedded),
            (evmcs, evmcs.PATHS, evmcs.parse, evmcs.embedded),
            (evmcs, evmcs.BITS_PATHS, evmcs.parse_bits, evmcs.embedded_bits)):
        from_tree, _ = parse(tree.read(paths[0]))
        table, problem = embedded()
        assert problem is None, mod.__name__
        assert table == from_tree, f"{mod.TOML} is stale: run scripts/gen-embedded-facts"
    assert load_facts(Tree(None)).fields == load_facts(tree).fields
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen-embedded-facts"),
                           "--check", "--tree", str(kernel_612)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.kernel
def test_stale_check_ignores_the_point_release_only(kernel_612: Path, tmp_path: Path) -> None:
    """A table whose data differ is stale; one whose source label names another point
    release of the same kernel (Debian updates linux-source-6.12) is not."""
    import shutil

    def check(out: Path) -> int:
        return subprocess.run([sys.executable, str(ROOT / "scripts" / "gen-embedded-facts"),
                               "--check", "--tree", str(kernel_612), "--out", str(out)],
                              capture_output=True, text=True).returncode

    relabelled, changed = tmp_path / "relabelled", tmp_path / "changed"
    for out in (relabelled, changed):
        shutil.copytree(ROOT / "rules" / "model", out)
    doc = relabelled / encodings.TOML
    doc.write_text(re.sub(r"\(6\.12\.\d+\)", "(6.12.9999)", doc.read_text()))
    assert "6.12.9999" in doc.read_text() and check(relabelled) == 0
    doc = changed / encodings.TOML
    text = doc.read_text()
    name = re.search(r"^(GUEST_ES_SELECTOR) = (\S+)$", text, re.M)
    assert name is not None
    doc.write_text(text.replace(name.group(0), f"{name.group(1)} = 0x1234"))
    assert check(changed) == 1


def test_fact_files_are_what_the_fact_modules_read() -> None:
    """The files an analysis's facts are cached by are the ones the modules read (the
    package holds the lists, so that a cached analysis imports none of the modules)."""
    from vmxlint.facts import fact_files

    assert fact_files() == (encodings.PATHS + vmcs12.PATHS + shadow.PATHS + evmcs.PATHS
                            + evmcs.BITS_PATHS)


def test_an_analysis_with_cached_facts_imports_no_fact_module(tmp_path: Path) -> None:
    """An image analysed whose facts are in the cache imports none of the fact modules
    (a new process, the cache primed by a first one that analysed another image)."""
    tree = Path(__file__).resolve().parent.parent / "fixtures" / "trees" / "shape-modern"
    code = ("import sys; from vmxlint.analysis import analyse; from vmxlint.tree import "
            f"Tree, NESTED_C; t = Tree.open({str(tree)!r}); "
            "analyse(t.with_overlay({NESTED_C: t.read(NESTED_C) + sys.argv[1]})); "
            "print(sorted(m for m in sys.modules if m.startswith('vmxlint.facts.')))")
    env = {"VMXLINT_CACHE_DIR": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"}
    run = [subprocess.run([sys.executable, "-c", code, tail], capture_output=True,
                          text=True, env=env, check=True).stdout
           for tail in ("", "int unused_by_the_path(void) { return 0; }\n")]
    assert "vmxlint.facts.encodings" in run[0]
    assert not {"encodings", "evmcs", "shadow", "vmcs12"} & {
        m.rsplit(".", 1)[-1] for m in ast.literal_eval(run[1])}
