"""vmxlint on the real Debian 6.12 and 6.1 trees: graph, guards, audit, seed, planted bugs."""
from __future__ import annotations

import difflib
import re
from pathlib import Path

import pytest

from vmxlint.analysis import analyse, entry_path
from vmxlint.dataflow import build_graph, to_json
from vmxlint.mail import read_mails
from vmxlint.series import check
from vmxlint.tree import NESTED_C, Tree

pytestmark = pytest.mark.kernel

PREPARE = ("prepare_vmcs02_constant_state", "prepare_vmcs02_early_rare", "prepare_vmcs02_early",
           "prepare_vmcs02_rare", "prepare_vmcs02")
WRITE = re.compile(r"\bvmcs_write(16|32|64|l)\s*\(")


@pytest.fixture(autouse=True)
def _no_cache(monkeypatch):
    monkeypatch.setenv("VMXLINT_NO_CACHE", "1")


def test_graph_has_every_textual_write(kernel_tree: Path):
    tree = Tree.open(kernel_tree)
    unit, path = entry_path(tree)
    lines = tree.read(NESTED_C).splitlines()
    data = to_json(build_graph(path))
    nodes = {(n["function"], n["line"]) for n in data["nodes"] if n["kind"] == "write"}
    expected = set()
    for name in PREPARE:
        fn = unit.functions[name]
        for no in range(fn.start_line, fn.end_line + 1):
            if WRITE.search(lines[no - 1]) and not lines[no - 1].lstrip().startswith("*"):
                expected.add((name, no))
    assert len(expected) > 60
    assert expected <= nodes, sorted(expected - nodes)
    for n in data["nodes"]:
        if n["kind"] == "write":
            assert {"function", "field", "path", "line", "accessor", "guard"} <= set(n)


def test_pdptr_guards(kernel_tree: Path):
    _, path = entry_path(Tree.open(kernel_tree))
    g = {n["function"]: n["guard"] for n in to_json(build_graph(path, "GUEST_PDPTR0"))["nodes"]
         if n["kind"] == "write" and not n["via"]}
    assert "enable_ept" in g["prepare_vmcs02_rare"]
    assert "HV_VMX_ENLIGHTENED_CLEAN_FIELD_GUEST_GRP1" in g["prepare_vmcs02_rare"]
    assert "is_pae_paging" in g["prepare_vmcs02"]


# Every finding on the shipped trees; the README says what was read to judge each one.
PDPTR = {("VMX101", f"GUEST_PDPTR{i}") for i in range(4)}
# Info only: VMX302 asks for an eVMCS clean-group gate around a vmcs12 value.
SHIPPED_INFO = {("VMX302", "XSS_EXIT_BITMAP")}


def test_audit_findings_are_the_documented_ones(kernel_tree: Path):
    findings = analyse(Tree.open(kernel_tree)).findings
    # Nothing at warning or above but the four PDPTR writes the seed patch deletes.
    assert {(f.code, f.field) for f in findings if f.severity != "info"} == PDPTR
    assert {(f.code, f.field) for f in findings if f.severity == "info"} <= SHIPPED_INFO
    assert not any(f.field == "GUEST_BNDCFGS" for f in findings)
    pdptr = [f for f in findings if f.code == "VMX101"]
    assert {f.function for f in pdptr} == {"prepare_vmcs02_rare"}
    for f in pdptr:
        covering = {e.function for e in f.evidence if e.role == "covering write"}
        assert covering == {"prepare_vmcs02", "nested_vmx_load_cr3"}
        assert "covered by" in f.message


def test_seed_resolves_pdptr_findings(kernel_tree: Path, seed_path: Path):
    result = check(read_mails(seed_path.read_bytes(), str(seed_path)), Tree.open(kernel_tree))
    status = {(f.code, f.field): f.status for f in result.findings}
    assert {k: v for k, v in status.items() if k[0] == "VMX101"} == {
        ("VMX101", f"GUEST_PDPTR{i}"): "resolved" for i in range(4)}
    assert not [f for f in result.findings if f.status == "new" and f.code != "VMX002"]
    assert any(f.code == "VMX002" for f in result.findings)


def _patch(tree_dir: Path, edit, path: str = NESTED_C) -> bytes:
    before = (tree_dir / path).read_text()
    after = edit(before)
    assert after != before, "the planted change did not apply to this tree"
    body = "".join(difflib.unified_diff(before.splitlines(True), after.splitlines(True),
                                        f"a/{path}", f"b/{path}"))
    mail = ("From: Test <t@example.org>\nSubject: [PATCH] KVM: nVMX: planted change\n"
            "Message-ID: <planted@example.org>\n\nplanted\n---\n"
            f"diff --git a/{path} b/{path}\n{body}")
    return mail.encode()


def _move(text: str, line_re: str, into_fn: str, new_line: str | None = None) -> str:
    """Delete the first line matching line_re and add it at the top of into_fn's body."""
    m = re.search(r"^.*" + line_re + r".*\n", text, re.M)
    assert m, line_re
    moved = new_line or m.group(0)
    text = text[:m.start()] + text[m.end():]
    head = re.search(r"^static \w+ " + into_fn + r"\(.*?\n\{\n(?:\t[^\n]*;\n)*", text,
                     re.M | re.S)
    assert head, into_fn
    return text[:head.end()] + moved + text[head.end():]


def _sub(pattern: str, repl: str, count: int = 1):
    """An edit replacing the first match of a regex (must match)."""
    def edit(t: str) -> str:
        out, n = re.subn(pattern, repl, t, count=count, flags=re.M)
        assert n, pattern
        return out
    return edit


def _move_statement(stmt_re: str, into_fn: str):
    """Move a whole statement (an if with its body, or one line) to the top of into_fn."""
    def edit(t: str) -> str:
        m = re.search(stmt_re, t, re.M)
        assert m, stmt_re
        return _insert(t[:m.start()] + t[m.end():], into_fn, m.group(0))
    return edit


def _insert(text: str, into_fn: str, lines: str) -> str:
    head = re.search(r"^static \w+ " + into_fn + r"\(.*?\n\{\n(?:\t[^\n]*;\n)*", text,
                     re.M | re.S)
    assert head, into_fn
    return text[:head.end()] + lines + text[head.end():]


def _clear_cache(t: str) -> str:
    """Delete the segment-cache clear after the segment writes, whatever its spelling."""
    out, n = re.subn(r"^\t\t(vmx_segment_cache_clear\(vmx\)|vmx->segment_cache\.bitmask = 0);\n",
                     "", t, count=1, flags=re.M)
    assert n
    return out


PLANTED = {
    "dropped-branch-write": (_sub(
        r"^\t\tvmcs_write32\(PAGE_FAULT_ERROR_CODE_MATCH, vmcs12->page_fault_error_code_match\);"
        r"\n", ""), "VMX201", "PAGE_FAULT_ERROR_CODE_MATCH"),
    "shadow-field-into-rare": (lambda t: _move(
        t, r"vmcs_write32\(GUEST_INTERRUPTIBILITY_INFO,\s*$", "prepare_vmcs02_rare",
        "\tvmcs_write32(GUEST_INTERRUPTIBILITY_INFO, vmcs12->guest_interruptibility_info);\n"
    ).replace("\t\t\t     vmcs12->guest_interruptibility_info);\n", "", 1),
        "VMX202", "GUEST_INTERRUPTIBILITY_INFO"),
    "vcpu-state-only-in-rare": (lambda t: _move(
        t, r"vmcs_writel\(CR0_GUEST_HOST_MASK, ~vcpu->arch.cr0_guest_owned_bits\);",
        "prepare_vmcs02_rare",
        "\tvmcs_writel(CR0_GUEST_HOST_MASK, ~vmx->vcpu.arch.cr0_guest_owned_bits);\n"),
        "VMX202", "CR0_GUEST_HOST_MASK"),
    # The bug "KVM: nVMX: Always sync GUEST_BNDCFGS when it comes from vmcs01" fixed.
    "snapshot-into-rare": (_move_statement(
        r"^\tif \(kvm_mpx_supported\(\) && \(!vmx->nested\.nested_run_pending \|\|\n"
        r"[^\n]*\n\t\tvmcs_write64\(GUEST_BNDCFGS, vmx->nested\.pre_vmenter_bndcfgs\);\n",
        "prepare_vmcs02_rare"), "VMX202", "GUEST_BNDCFGS"),
    "tsc-offset-into-rare": (lambda t: _move(
        t, r"^\tvmcs_write64\(TSC_OFFSET, vcpu->arch\.tsc_offset\);", "prepare_vmcs02_rare",
        "\tvmcs_write64(TSC_OFFSET, vmx->vcpu.arch.tsc_offset);\n"), "VMX202", "TSC_OFFSET"),
    "event-reset-deleted": (_sub(
        r"\} else \{\n\t\tvmcs_write32\(VM_ENTRY_INTR_INFO_FIELD, 0\);\n\t\}", "}"),
        "VMX201", "VM_ENTRY_INTR_INFO_FIELD"),
    "only-write-deleted": (_sub(
        r"^\t+vmcs_write32\(GUEST_SYSENTER_CS, vmcs12->guest_sysenter_cs\);\n", ""),
        "VMX201", "GUEST_SYSENTER_CS"),
    "wrong-source-member": (_sub(
        r"vmcs_writel\(GUEST_FS_BASE, vmcs12->guest_fs_base\);",
        "vmcs_writel(GUEST_FS_BASE, vmcs12->guest_gs_base);"), "VMX203", "GUEST_FS_BASE"),
    "segment-cache-clear-deleted": (_clear_cache, "VMX403", "GUEST_CS_SELECTOR"),
    "raw-rflags": (_sub(
        r"^\tvmx_set_rflags\(vcpu, vmcs12->guest_rflags\);",
        "\tvmcs_writel(GUEST_RFLAGS, vmcs12->guest_rflags);"), "VMX403", "GUEST_RFLAGS"),
    "second-redundant-copy": (_sub(
        r"^(\t+)vmcs_write64\(GUEST_PDPTR0, vmcs12->guest_pdptr0\);\n",
        r"\1vmcs_write64(GUEST_PDPTR0, vmcs12->guest_pdptr0);\n"
        r"\1vmcs_write64(GUEST_PDPTR0, vmcs12->guest_pdptr0);\n"), "VMX101", "GUEST_PDPTR0"),
    "other-evmcs-group": (lambda t: _move(
        t, r"vmcs_write32\(GUEST_SYSENTER_CS, vmcs12->guest_sysenter_cs\);",
        "prepare_vmcs02_rare").replace(
        "\tvmcs_write32(GUEST_SYSENTER_CS, vmcs12->guest_sysenter_cs);\n", "", 1).replace(
        "\t\tvmcs_write16(GUEST_ES_SELECTOR, vmcs12->guest_es_selector);\n",
        "\t\tvmcs_write16(GUEST_ES_SELECTOR, vmcs12->guest_es_selector);\n"
        "\t\tvmcs_write32(GUEST_SYSENTER_CS, vmcs12->guest_sysenter_cs);\n", 1),
        "VMX301", "GUEST_SYSENTER_CS"),
    "accessor-width": (lambda t: t.replace(
        "\t\tvmcs_write64(GUEST_PDPTR0, vmcs12->guest_pdptr0);\n\t\tvmcs_write64(GUEST_PDPTR1",
        "\t\tvmcs_write32(GUEST_PDPTR0, vmcs12->guest_pdptr0);\n\t\tvmcs_write64(GUEST_PDPTR1"),
        "VMX401", "GUEST_PDPTR0"),
    "cache-bypass": (lambda t: t.replace(
        "\tpin_controls_set(vmx, exec_control);",
        "\tvmcs_write32(PIN_BASED_VM_EXEC_CONTROL, exec_control);"),
        "VMX403", "PIN_BASED_VM_EXEC_CONTROL"),
    "constant-on-hot-path": (lambda t: _move(
        t, r"vmcs_write64\(VM_FUNCTION_CONTROL, 0\);", "prepare_vmcs02_early",
        "\tvmcs_write64(VM_FUNCTION_CONTROL, 0);\n"), "VMX103", "VM_FUNCTION_CONTROL"),
}


def _readable(f) -> None:
    """A counterexample a reviewer can read: at most 6 conditions, none repeated, and a
    message line under 200 characters (the whole list is in the details)."""
    assert len(f.message) < 200, f.message
    cex = dict(f.details).get("counterexample")
    if cex is None:
        return
    conditions = dict(f.details)["conditions"]
    assert len(cex) <= 6 and len(conditions) == len(set(conditions)) == len(cex), f.message


@pytest.mark.parametrize("name", sorted(PLANTED))
def test_planted_bug_is_new(kernel_tree: Path, name: str):
    edit, code, field = PLANTED[name]
    result = check(read_mails(_patch(kernel_tree, edit), name), Tree.open(kernel_tree))
    new = {(f.code, f.field) for f in result.findings if f.status == "new"}
    assert (code, field) in new, new
    for f in result.findings:
        _readable(f)


def test_harmless_changes_add_nothing_at_all(kernel_tree: Path):
    def edit(t: str) -> str:
        t = t.replace("\t\tvmcs_writel(GUEST_SYSENTER_ESP, vmcs12->guest_sysenter_esp);\n"
                      "\t\tvmcs_writel(GUEST_SYSENTER_EIP, vmcs12->guest_sysenter_eip);\n",
                      "\t\tvmcs_writel(GUEST_SYSENTER_EIP, vmcs12->guest_sysenter_eip);\n"
                      "\t\tvmcs_writel(GUEST_SYSENTER_ESP, vmcs12->guest_sysenter_esp);\n")
        return t.replace("\tvmcs_write64(VMCS_LINK_POINTER, INVALID_GPA);\n",
                         "\t/* The link pointer is always checked on entry. */\n"
                         "\tvmcs_write64(VMCS_LINK_POINTER, INVALID_GPA);\n")
    result = check(read_mails(_patch(kernel_tree, edit), "harmless"), Tree.open(kernel_tree))
    assert result.usable == 1
    assert [f for f in result.findings if f.status == "new"] == []


def _helper_for_sysenter_cs(t: str) -> str:
    """Move one write into a new static helper called from the same place."""
    t = _sub(r"^(\t+)vmcs_write32\(GUEST_SYSENTER_CS, vmcs12->guest_sysenter_cs\);\n",
             r"\1nested_write_sysenter_cs(vmcs12);\n")(t)
    helper = ("static void nested_write_sysenter_cs(struct vmcs12 *vmcs12)\n{\n"
              "\tvmcs_write32(GUEST_SYSENTER_CS, vmcs12->guest_sysenter_cs);\n}\n\n")
    return _sub(r"^static void prepare_vmcs02_rare\(", helper.replace("\\", "\\\\")
                + "static void prepare_vmcs02_rare(")(t)


LEGITIMATE = {
    "helper-into-write": _helper_for_sysenter_cs,
    "independent-writes-swapped": _sub(
        r"^(\t+)(vmcs_writel\(GUEST_SYSENTER_ESP, [^\n]*\n)\1(vmcs_writel\(GUEST_SYSENTER_EIP, "
        r"[^\n]*\n)", r"\1\3\1\2"),
    "comment": _sub(r"^(\t+)(vmcs_write64\(VMCS_LINK_POINTER, INVALID_GPA\);)",
                    r"\1/* The link pointer is always checked on entry. */\n\1\2"),
}


@pytest.mark.parametrize("name", sorted(LEGITIMATE))
def test_legitimate_edit_adds_no_warning(kernel_tree: Path, name: str):
    result = check(read_mails(_patch(kernel_tree, LEGITIMATE[name]), name),
                   Tree.open(kernel_tree))
    assert result.usable == 1
    assert [f for f in result.findings if f.status == "new" and f.severity != "info"] == []


def test_open_coded_cache_clear_is_the_helper(kernel_612: Path):
    """6.12's vmx_segment_cache_clear() replaced by 6.1's open-coded store: same effect."""
    edit = _sub(r"^\t\tvmx_segment_cache_clear\(vmx\);", "\t\tvmx->segment_cache.bitmask = 0;")
    result = check(read_mails(_patch(kernel_612, edit), "open-coded"), Tree.open(kernel_612))
    assert result.usable == 1
    assert [f for f in result.findings if f.status == "new"] == []


def test_a_patch_to_a_runtime_writer_changes_the_findings(kernel_tree: Path):
    """vmx.c's state-restore writers give GUEST_INTERRUPTIBILITY_INFO its value on entries
    that do not emulate VMLAUNCH/VMRESUME; a vmx.c patch that drops them is seen."""
    def edit(t: str) -> str:
        t, n = re.subn(r"^\t+vmcs_(write32|set_bits|clear_bits)\(GUEST_INTERRUPTIBILITY_INFO,"
                       r"[^;]*;\n", "", t, flags=re.M | re.S)
        assert n >= 2
        return t
    vmx_c = "arch/x86/kvm/vmx/vmx.c"
    result = check(read_mails(_patch(kernel_tree, edit, vmx_c), "vmx.c"), Tree.open(kernel_tree))
    new = [f for f in result.findings if f.status == "new"]
    assert ("VMX201", "GUEST_INTERRUPTIBILITY_INFO") in {(f.code, f.field) for f in new}
