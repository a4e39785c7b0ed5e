"""Tests for vmxlint.mail: every input form, and junk."""
from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from vmxlint.mail import Mail, MailError, parse_tags, read_mails, read_source, split_body

INPUTS = Path(__file__).resolve().parent.parent / "fixtures" / "inputs"


def read(name: str) -> list[Mail]:
    """Read a fixture input the way the command line does."""
    return read_mails((INPUTS / name).read_bytes(), name)


def test_format_patch() -> None:
    [mail] = read("format-patch.patch")
    assert mail.subject == "[PATCH] KVM: nVMX: drop the early PDPTR writes from the rare path"
    assert mail.sender == "Ada Example <ada@example.org>"
    assert mail.date == "Tue, 2 Jan 2024 10:00:00 +0100"
    assert mail.message_id == "20240102-pdptr-1-ada@example.org"
    assert (mail.index, mail.version) == (None, None)
    assert mail.body.startswith("The rare path copies the PDPTRs")
    assert mail.body.endswith("Signed-off-by: Ada Example <ada@example.org>")
    assert "1 file changed" not in mail.body          # the diffstat is not the message
    assert mail.diff.startswith("diff --git a/arch/x86/kvm/vmx/nested.c")
    assert "2.43.0" not in mail.diff and not mail.diff.endswith("-- \n")
    assert mail.diff.endswith("& VM_ENTRY_LOAD_BNDCFGS))\n")
    assert "Subject:" in mail.raw


def test_mbox_series_keeps_order_and_cover_letter() -> None:
    mails = read("series.mbox")
    assert [m.index for m in mails] == ["0/3", "1/3", "2/3", "3/3"]
    assert all(m.version == 2 for m in mails)
    assert mails[0].diff == ""
    assert "tidies prepare_vmcs02_rare" in mails[0].body
    assert all(m.diff.startswith("diff --git ") for m in mails[1:])
    assert [m.message_id for m in mails] == [f"series-{k}-bo@example.net" for k in range(4)]
    assert mails[2].subject == "[PATCH v2 2/3] KVM: nVMX: drop the early PDPTR copy"


def test_plain_diff_takes_its_name_as_subject() -> None:
    [mail] = read("plain.diff")
    assert mail.subject == "plain.diff"
    assert (mail.sender, mail.date, mail.message_id, mail.index) == (None, None, None, None)
    assert mail.body == ""
    assert mail.diff == (INPUTS / "plain.diff").read_text()


def test_quoted_printable_and_encoded_words() -> None:
    [mail] = read("quoted-printable.eml")
    assert mail.sender == "Zoë Exämple <zoe@example.com>"
    assert mail.subject.startswith("[PATCH v3 1/1] KVM: nVMX: wrap the page-fault match write")
    assert "\n" not in mail.subject and mail.subject.endswith("— no functional change")
    assert (mail.index, mail.version) == ("1/1", 3)
    assert "résumé" in mail.body
    # Soft line breaks and =20 are undone, so the diff is byte-exact again.
    assert "-\tvmcs_write32(PAGE_FAULT_ERROR_CODE_MATCH, " \
           "vmcs12->page_fault_error_code_match);\n" in mail.diff
    assert "\n \n static int prepare_vmcs02(" in mail.diff
    assert "=20" not in mail.diff and "=\n" not in mail.diff


def test_archive_page() -> None:
    [mail] = read("archive-page.txt")
    assert mail.subject == "[PATCH 3/4] KVM: nVMX: drop the early PDPTR copy"
    assert (mail.index, mail.version) == ("3/4", None)
    assert mail.sender == "Cy Example"
    assert mail.date == "Fri Jan 05 2024 - 08:00:00 EST"
    assert mail.body.startswith("The early PDPTR copy")
    assert mail.body.endswith("<cy@xxxxxxxxxxx>")
    assert mail.diff.startswith("diff --git ")
    assert not mail.diff.rstrip().endswith("--") and "2.43.0" not in mail.diff


def test_git_show_output() -> None:
    [mail] = read("git-show.txt")
    assert mail.subject == "KVM: nVMX: also write GUEST_CS_BASE"
    assert mail.sender == "Ada Example <ada@example.org>"
    assert mail.body.startswith("Keep CS with ES.")
    assert mail.diff.startswith("diff --git ")


def test_mail_without_diff_is_not_an_error() -> None:
    [mail] = read("no-diff.eml")
    assert mail.diff == ""
    assert mail.subject.startswith("Re: [PATCH v2 2/3]")
    assert mail.index == "2/3"
    assert "Reviewed-by: Di Example" in mail.body


def test_binary_junk() -> None:
    with pytest.raises(MailError) as info:
        read("binary-junk.bin")
    assert "not a text patch or mail" in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("junk", [b"\x00\x01\x02", bytes(range(256)) * 4,
                                  b"\x01\x02\x03\x04\x05\x06 abc", b"\xff\xfe\xfa" * 50])
def test_junk_variants(junk: bytes) -> None:
    with pytest.raises(MailError):
        read_mails(junk, "junk")


@pytest.mark.parametrize("data", [b"", b"\n\n  \n"])
def test_empty_input_yields_one_empty_mail(data: bytes) -> None:
    [mail] = read_mails(data, "empty.txt")
    assert mail.subject == "empty.txt" and mail.diff == ""


def test_crlf_format_patch() -> None:
    data = (INPUTS / "format-patch.patch").read_bytes().replace(b"\n", b"\r\n")
    [mail] = read_mails(data, "crlf.patch")
    assert "\r" not in mail.diff
    assert mail.diff == read("format-patch.patch")[0].diff


def test_latin1_mail_with_charset() -> None:
    data = ("From: Fran\xe7ois <f@example.org>\nSubject: [PATCH] caf\xe9\n"
            "Content-Type: text/plain; charset=iso-8859-1\n"
            "Content-Transfer-Encoding: 8bit\n\nCaf\xe9 au lait.\n").encode("latin-1")
    [mail] = read_mails(data)
    assert mail.body == "Café au lait."


def test_unknown_charset_falls_back() -> None:
    data = (b"Subject: [PATCH] x\nFrom: a <a@b>\nContent-Type: text/plain; charset=bogus\n\n"
            b"body\n---\ndiff --git a/f b/f\n--- a/f\n+++ b/f\n@@ -1 +1 @@\n-a\n+b\n")
    [mail] = read_mails(data)
    assert mail.body == "body" and mail.diff.endswith("+b\n")


def test_in_body_from_overrides_sender() -> None:
    data = (b"From: Sender <s@example.org>\nSubject: [PATCH] x\n\n"
            b"From: Author <a@example.org>\n\nThe message.\n")
    [mail] = read_mails(data)
    assert mail.sender == "Author <a@example.org>"
    assert mail.body == "The message."


def test_mboxrd_from_quoting_is_undone() -> None:
    data = (b"From mboxrd@z Thu Jan  1 00:00:00 1970\nSubject: [PATCH] q\nFrom: a <a@b>\n\n"
            b">From the start.\n")
    [mail] = read_mails(data)
    assert mail.body == "From the start."


def test_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    data = (INPUTS / "series.mbox").read_bytes()
    fake = io.TextIOWrapper(io.BytesIO(data))
    monkeypatch.setattr(sys, "stdin", fake)
    mails = read_source("-")
    assert len(mails) == 4
    assert read_mails(data)[0].subject == mails[0].subject


def test_read_source_missing_file(tmp_path: Path) -> None:
    with pytest.raises(MailError) as info:
        read_source(str(tmp_path / "nope.patch"))
    assert "cannot read" in str(info.value)


@pytest.mark.parametrize("subject, expected", [
    ("[PATCH v2 2/5] KVM: x", ("2/5", 2)),
    ("[PATCH 1/1] x", ("1/1", None)),
    ("[RFC PATCH net-next v10 03/12] x", ("3/12", 10)),
    ("[PATCH] [v3] x", (None, 3)),
    ("Re: [PATCH v2 2/5] x", ("2/5", 2)),
    ("Re: Re: [PATCH v2 2/5] x", ("2/5", 2)),
    ("KVM: nVMX: no tags 1/2", (None, None)),
])
def test_parse_tags(subject: str, expected: tuple[str | None, int | None]) -> None:
    assert parse_tags(subject) == expected


def test_split_body_keeps_double_dash_in_hunks() -> None:
    text = ("msg\n---\ndiff --git a/f b/f\n--- a/f\n+++ b/f\n@@ -1,2 +1,1 @@\n"
            "--\n a\n-- \n2.43.0\n")
    body, diff = split_body(text)
    assert body == "msg"
    assert diff.endswith("@@ -1,2 +1,1 @@\n--\n a\n")


@pytest.mark.kernel
def test_seed(seed_path: Path) -> None:
    [mail] = read_mails(seed_path.read_bytes(), seed_path.name)
    assert mail.subject == ("[PATCH v2 2/5] KVM: nVMX: remove unnecessary code in "
                            "prepare_vmcs02_rare")
    assert (mail.index, mail.version) == ("2/5", 2)
    assert mail.sender == "Paolo Bonzini"
    assert mail.date == "Sat May 30 2026 - 13:00:46 EST"
    assert mail.body.startswith("The early vmwrite of the PDPTRs")
    assert mail.diff.startswith("diff --git a/arch/x86/kvm/vmx/nested.c")
    assert mail.diff.endswith("vmcs_write64(GUEST_BNDCFGS, vmcs12->guest_bndcfgs);\n")
