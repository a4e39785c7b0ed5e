"""The rule catalogue and the reference model load, validate and cover the kernel's fields."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from vmxlint.model import ModelError, condition_atoms, load_model
from vmxlint.model_paths import rules_dir

DESIGN_RULES = {
    "VMX001": "unusable-patch", "VMX002": "repaired-patch", "VMX003": "patch-does-not-apply",
    "VMX004": "unparsed-function", "VMX005": "unknown-field", "VMX006": "analysis-budget",
    "VMX101": "redundant-write",
    "VMX102": "duplicate-write", "VMX103": "hot-path-constant", "VMX201": "missing-write",
    "VMX202": "stale-rare-write", "VMX203": "wrong-source", "VMX301": "wrong-evmcs-group",
    "VMX302": "ungated-evmcs-write",
    "VMX401": "accessor-width", "VMX402": "read-only-field", "VMX403": "cache-bypass",
}
ENUM_RE = re.compile(r"^enum vmcs_field \{(.*?)^\};", re.S | re.M)
NAME_RE = re.compile(r"^\s*([A-Z][A-Z0-9_]*)\s*=", re.M)


def test_catalogue_loads():
    model = load_model()
    assert set(model.rules) == set(DESIGN_RULES)
    for code, name in DESIGN_RULES.items():
        rule = model.rules[code]
        assert rule.name == name
        assert (rules_dir() / f"{code}-{name}.toml").is_file()
        assert rule.references and rule.rationale.strip() and rule.limits.strip()
    assert model.controls["vmcs02.proc2.ept"] == "l0.ept"
    assert model.fields["GUEST_PDPTR0"].entry == "vmcs02.proc2.ept and l2.pae_paging"
    assert load_model() is model  # cached per directory


def test_exit_info_fields_are_read_only():
    model = load_model()
    for name in ("EXIT_QUALIFICATION", "GUEST_PHYSICAL_ADDRESS", "VM_EXIT_REASON"):
        assert model.fields[name].entry == "false" and model.fields[name].origin == "none"


def test_condition_atoms():
    assert condition_atoms("not (a.b or c.d) and evmcs.clean.GUEST_GRP1") == (
        "a.b", "c.d", "evmcs.clean.GUEST_GRP1")
    assert condition_atoms("$rflags or true", params=True) == ("$rflags",)
    for bad in ("a.b and", "(a.b", "a.b c.d", "foo", "a.b && c.d", "$p"):
        with pytest.raises(ValueError):
            condition_atoms(bad)


@pytest.mark.kernel
def test_every_enum_field_has_a_model_entry(kernel_612: Path):
    text = (kernel_612 / "arch/x86/include/asm/vmx.h").read_text()
    names = {n for n in NAME_RE.findall(ENUM_RE.search(text).group(1)) if not n.endswith("_HIGH")}
    assert len(names) > 150
    fields = load_model().fields
    assert sorted(names - set(fields)) == []
    assert sorted(set(fields) - names) == []


def _copy(tmp_path: Path) -> Path:
    target = tmp_path / "rules"
    shutil.copytree(rules_dir(), target)
    return target


def _expect_error(directory: Path, *needles: str) -> None:
    with pytest.raises(ModelError) as info:
        load_model(directory)
    text = str(info.value)
    assert "\n" not in text
    for needle in needles:
        assert needle in text


def test_bad_toml_syntax(tmp_path):
    d = _copy(tmp_path)
    (d / "VMX101-redundant-write.toml").write_text('code = "VMX101\nname = 1\n')
    _expect_error(d, "VMX101-redundant-write.toml", "(syntax)")


@pytest.mark.parametrize("old,new,needle", [
    ('severity = "warning"', 'severity = "fatal"', "severity"),
    ('code = "VMX101"', 'code = "VMX1011"', "code"),
    ('name = "redundant-write"', 'name = "redundant"', "file name"),
    ('severity = "warning"\n', "", "missing key 'severity'"),
])
def test_bad_rule(tmp_path, old, new, needle):
    d = _copy(tmp_path)
    path = d / "VMX101-redundant-write.toml"
    path.write_text(path.read_text().replace(old, new, 1))
    _expect_error(d, "VMX101-redundant-write.toml", needle)


@pytest.mark.parametrize("old,new,needle", [
    ('origin = "vmcs12"', 'origin = "l1"', "origin"),
    ('entry = "vmcs02.proc2.ept and l2.pae_paging"', 'entry = "vmcs02.proc2.ept &&"', "entry"),
    ('entry = "vmcs02.proc2.ept and l2.pae_paging"', 'entry = "vmcs03.ept"', "outside"),
])
def test_bad_field(tmp_path, old, new, needle):
    d = _copy(tmp_path)
    path = d / "model" / "fields.toml"
    path.write_text(path.read_text().replace(old, new, 1))
    _expect_error(d, "fields.toml", needle)


def test_bad_predicates_and_summaries(tmp_path):
    d = _copy(tmp_path)
    (d / "model" / "summaries.toml").write_text(
        '[summaries.vmx_set_rflags]\nparams = ["vcpu", "rflags"]\n'
        '[[summaries.vmx_set_rflags.writes]]\nfield = "GUEST_RFLAGS"\nwhen = "$flags"\n'
        'origin = "vmcs12"\n')
    _expect_error(d, "summaries.toml", "$flags")
    (d / "model" / "summaries.toml").unlink()
    (d / "model" / "predicates.toml").write_text(
        '[[predicate]]\nspelling = "enable_ept"\nmeans = "l0.ept or"\nsource = "x"\n')
    _expect_error(d, "predicates.toml", "predicate[0].means")
