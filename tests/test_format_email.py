"""The email format on hostile input: one strict message per reply, no injected header."""
from __future__ import annotations

import base64
import email
import email.policy
import io
import mailbox
from email.message import EmailMessage
from pathlib import Path

import pytest

from vmxlint.findings import Evidence, Finding, PatchRef, Report
from vmxlint.formats import write_report

NESTED = "arch/x86/kvm/vmx/nested.c"
STRICT = email.policy.default.clone(raise_on_defect=True)

# A synthetic one-hunk patch; {headers} is replaced by each test's header block.
MAIL = """\
{headers}
Message-ID: <20250301120000.1-dev@example.org>
To: kvm@vger.kernel.org
Cc: Reviewer <rev@example.com>
Date: Sat, 1 Mar 2025 12:00:00 +0000

Synthetic patch for the email format tests.

Signed-off-by: Dev Eloper <dev@example.org>
---
diff --git a/arch/x86/kvm/vmx/nested.c b/arch/x86/kvm/vmx/nested.c
--- a/arch/x86/kvm/vmx/nested.c
+++ b/arch/x86/kvm/vmx/nested.c
@@ -10,4 +10,5 @@ static void prepare_vmcs02(struct vcpu_vmx *vmx)
 \tline_10();
 \tline_11();
+\tvmcs_write64(GUEST_RIP, vmcs12->guest_rip);
 \tline_12();
 \tline_13();
"""

SUBJECT = "[PATCH] KVM: nVMX: Write GUEST_RIP"
PATCH = PatchRef(SUBJECT, None, "<20250301120000.1-dev@example.org>",
                 "Dev Eloper <dev@example.org>")
COVER = Evidence(NESTED, 2400, "prepare_vmcs02_rare", "covering write")
FINDING = Finding("VMX101", "redundant-write", "warning", "GUEST_RIP is written twice", NESTED,
                  12, 2, "prepare_vmcs02", "GUEST_RIP", "new", (COVER,), PATCH)

# Encoded-word subjects whose decoded text holds CR/LF: a Bcc header, and (base64) a whole
# second mbox message addressed to a victim.
Q_SUBJECT = "=?utf-8?q?hello=0D=0ABcc:_victim@example.org?="
SMUGGLED = ("hello\r\nBcc: victim@example.org\r\n\r\n"
            "From evil Mon Sep 17 00:00:00 2001\r\nTo: victim2@example.org\r\n"
            "Subject: pwned\r\n\r\nsend money\r\n\r\n"
            "From evil Mon Sep 17 00:00:00 2001\r\nTo: victim3@example.org\r\n\r\nmore")
B_SUBJECT = "=?utf-8?b?" + base64.b64encode(SMUGGLED.encode()).decode() + "?="


def reply(headers: str, patch: PatchRef = PATCH, finding: Finding = FINDING) -> str:
    """Render the email format for one patch whose mail carries ``headers``."""
    mail = MAIL.format(headers=headers)
    out = io.StringIO()
    write_report(Report([finding.with_(patch=patch)], mails={patch: mail}), "email", out)
    return out.getvalue()


def messages(text: str, tmp_path: Path) -> list[EmailMessage]:
    """Read the output as an mbox file, the way a mail client or git send-email would."""
    path = tmp_path / "replies.mbox"
    path.write_text(text, encoding="utf-8")
    box = mailbox.mbox(path, factory=lambda f: email.message_from_binary_file(f, policy=STRICT))
    try:
        return list(box)
    finally:
        box.close()


def assert_only_original_recipients(msg: EmailMessage) -> None:
    assert msg.get_all("Bcc") is None
    assert [str(v) for v in msg.get_all("To") or []] == ["Dev Eloper <dev@example.org>"]
    assert [str(v) for v in msg.get_all("Cc") or []] == [
        "kvm@vger.kernel.org, Reviewer <rev@example.com>"]
    assert "victim" not in " ".join(str(v) for k, v in msg.items() if k != "Subject")


@pytest.mark.parametrize("subject", [Q_SUBJECT, B_SUBJECT], ids=["q", "b"])
def test_encoded_word_subject_adds_no_header_and_no_message(subject, tmp_path):
    text = reply(f"From: Dev Eloper <dev@example.org>\nSubject: {subject}")
    (msg,) = messages(text, tmp_path)
    assert_only_original_recipients(msg)
    assert str(msg["Subject"]).startswith("Re: hello Bcc: victim@example.org")
    assert "\r" not in str(msg["Subject"]) and "\n" not in str(msg["Subject"])
    # The same text read as one message (not an mbox): one Subject, no Bcc, no defect.
    single = email.message_from_string(text.split("\n", 1)[1], policy=STRICT)
    assert single.get_all("Subject") == [msg["Subject"]] and single.get_all("Bcc") is None
    assert text.count("\nFrom ") == 0 and text.startswith("From vmxlint ")


def test_patch_fields_from_the_mail_reader_are_flattened_too(tmp_path):
    patch = PatchRef("x\r\nBcc: victim@example.org", None,
                     "<id@example.org>\r\nBcc: victim@example.org",
                     "Dev Eloper <dev@example.org>\nBcc: victim@example.org")
    text = reply("From: Dev Eloper <dev@example.org>\nSubject: plain", patch)
    (msg,) = messages(text, tmp_path)
    assert msg.get_all("Bcc") is None
    # Not a message id once flattened: the mail's own Message-ID is used instead.
    assert msg["In-Reply-To"] == "<20250301120000.1-dev@example.org>"
    assert "victim" not in " ".join(str(v) for k, v in msg.items() if k != "Subject")


def test_references_keep_message_ids_only(tmp_path):
    refs = "References: <a@example.org> =?utf-8?q?<b@x>=0D=0ABcc:_victim@example.org?="
    text = reply(f"From: Dev Eloper <dev@example.org>\nSubject: s\n{refs}")
    (msg,) = messages(text, tmp_path)
    assert msg["References"] == "<a@example.org> <b@x> <20250301120000.1-dev@example.org>"
    assert msg["In-Reply-To"] == "<20250301120000.1-dev@example.org>"
    assert_only_original_recipients(msg)


@pytest.mark.parametrize("sender", ["Dev Eloper", "Dev Eloper <[email protected]>", ""])
def test_no_to_header_without_an_address(sender, tmp_path):
    patch = PatchRef(SUBJECT, None, PATCH.message_id, sender or None)
    text = reply(f"From: {sender}\nSubject: s" if sender else "Subject: s", patch)
    (msg,) = messages(text, tmp_path)
    assert msg.get_all("To") is None
    assert "\nTo:" not in text.split("\n\n", 1)[0]
    assert msg["Cc"] == "kvm@vger.kernel.org, Reviewer <rev@example.com>"


def test_non_ascii_headers_are_encoded_words(tmp_path):
    patch = PatchRef(SUBJECT, None, PATCH.message_id, None)
    text = reply("From: Jörg Entwickler <joerg@example.org>\nSubject: KVM: nVMX: größer", patch)
    head = text.split("\n\n", 1)[0]
    assert head.isascii() and "=?utf-8?" in head
    (msg,) = messages(text, tmp_path)
    assert msg["Subject"] == "Re: KVM: nVMX: größer"
    assert msg["To"].addresses[0].display_name == "Jörg Entwickler"


def test_control_characters_in_the_body_are_escaped(tmp_path):
    odd = FINDING.with_(message="GUEST_RIP \x1b]0;owned\x07 written\x0bagain \u2028here")
    text = reply("From: Dev Eloper <dev@example.org>\nSubject: s", finding=odd)
    assert "\x1b" not in text and "\x07" not in text and "\u2028" not in text
    assert "\\x1b]0;owned\\x07 written" in text
    (msg,) = messages(text, tmp_path)
    assert "VMX101 (warning): GUEST_RIP" in msg.get_content()


def test_comment_sits_under_its_quoted_line_and_signature_after_the_delimiter(tmp_path):
    text = reply("From: Dev Eloper <dev@example.org>\nSubject: s")
    (msg,) = messages(text, tmp_path)
    body = msg.get_content()
    assert ("> +\tvmcs_write64(GUEST_RIP, vmcs12->guest_rip);\n\n"
            "VMX101 (warning): GUEST_RIP is written twice\n"
            f"  covering write: {NESTED}:2400 (prepare_vmcs02_rare)\n") in body
    comments, signature = body.rsplit("\n-- \n", 1)
    assert "vmxlint" in signature and "VMX101" not in signature
    assert comments.count("\n-- \n") == 0


def test_b4_does_not_read_the_signature_as_a_comment(tmp_path):
    b4mbox = pytest.importorskip("b4.mbox")
    review = pytest.importorskip("b4.review")
    extract = getattr(review, "_extract_comments_from_quoted_reply", None)
    if extract is None or not hasattr(b4mbox, "minimize_thread"):
        pytest.skip("this b4 has no follow-up comment reader")
    text = reply("From: Dev Eloper <dev@example.org>\nSubject: s")
    # b4 review reads follow-ups through minimize_thread, which drops the signature.
    (mini,) = b4mbox.minimize_thread(messages(text, tmp_path))
    comments = extract(mini.get_payload(decode=True).decode())
    assert [(c["path"], c["line"]) for c in comments] == [(NESTED, 12)]
    assert comments[0]["text"].startswith("VMX101 (warning): GUEST_RIP is written twice")
    assert "explain" not in comments[0]["text"] and "-- " not in comments[0]["text"]


def test_a_series_gives_one_message_per_patch_with_findings(tmp_path):
    other = PatchRef("[PATCH 2/2] x", "2/2", "<two@example.org>", "Dev Eloper <dev@example.org>")
    report = Report([FINDING, FINDING.with_(patch=other), FINDING.with_(patch=None)],
                    mails={PATCH: MAIL.format(headers="From: d <dev@example.org>\nSubject: "
                                              + B_SUBJECT)})
    out = io.StringIO()
    write_report(report, "email", out)
    msgs = messages(out.getvalue(), tmp_path)
    assert len(msgs) == 3
    assert all(m.get_all("Bcc") is None for m in msgs)
    assert msgs[1]["In-Reply-To"] == "<two@example.org>"
    assert msgs[2]["Subject"] == "vmxlint: 1 finding in the tree"


def test_deeply_nested_mime_still_gives_one_reply(tmp_path):
    nest = "".join(f'Content-Type: multipart/mixed; boundary="b{i}"\n\n--b{i}\n'
                   for i in range(1200))
    text = reply("From: Dev Eloper <dev@example.org>\nSubject: s\n" + nest)
    (msg,) = messages(text, tmp_path)
    assert msg["To"] == "Dev Eloper <dev@example.org>"
    assert "VMX101 (warning): GUEST_RIP is written twice" in msg.get_content()


@pytest.mark.parametrize("fmt", ["default", "json", "sarif", "b4-json", "patchwork"])
def test_mails_are_read_only_for_the_format_that_quotes_them(fmt):
    """A series' report holds every mail; reading them again cost a check of 40 patches
    20 ms, and only the reply quotes them."""
    report = Report([FINDING], mails={PATCH: MAIL.format(headers="From: d <dev@example.org>\n"
                                                                 "Subject: s")})
    write_report(report, fmt, io.StringIO())
    assert report.patches == {}
    write_report(report, "email", io.StringIO())
    assert report.patches[PATCH].subject == "s"
    assert report.patch(PatchRef("unknown")).subject is None
