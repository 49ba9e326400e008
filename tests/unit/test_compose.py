"""Message composition and reply/forward headers (pure functions, parsed back with `email`)."""
from __future__ import annotations

import base64
from email import policy
from email.parser import BytesParser

import pytest

from imapapi import compose
from imapapi.errors import BadRequest

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAABAAAAAQAQMAAAAlPW0iAAAABlBMVEUAAAD///+l2Z/dAAAAM0lEQVR4nGP4/5/h/1+G/58"
    "ZDrAz3D/McH8yw83NDDeNGe4Ug9C9zwz3gVLMDA/A6P9/AFGGFyjOXZtQAAAAAElFTkSuQmCC")


def parse(raw: bytes):
    return BytesParser(policy=policy.default).parsebytes(raw)


def base(**extra):
    payload = {"from": {"name": "Sender Person", "address": "sender@example.com"},
               "to": [{"name": "Rcpt", "address": "rcpt@example.com"}]}
    payload.update(extra)
    return payload


def test_text_and_html_are_alternative_and_message_id_is_returned():
    raw, mid = compose.build(base(subject="Hello", text="plain body", html="<p>html body</p>"))
    msg = parse(raw)
    assert msg["Message-ID"] == mid and mid.endswith("@example.com>")
    assert msg.get_content_type() == "multipart/alternative"
    parts = [p.get_content_type() for p in msg.iter_parts()]
    assert parts == ["text/plain", "text/html"]
    assert msg.get_body(("plain",)).get_content().strip() == "plain body"
    assert str(msg["From"]) == "Sender Person <sender@example.com>"
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")


def test_caller_message_id_is_used_verbatim_with_brackets():
    raw, mid = compose.build(base(text="x", messageId="custom-1@example.com"))
    assert mid == "<custom-1@example.com>" == parse(raw)["Message-ID"]


def test_bcc_is_envelope_only():
    payload = base(text="x", cc=[{"address": "cc@example.com"}],
                   bcc=[{"address": "hidden@example.com"}], headers={"Bcc": "leak@example.com"})
    raw, _ = compose.build(payload)
    assert b"hidden@example.com" not in raw and b"leak@" not in raw
    assert parse(raw)["Bcc"] is None
    assert compose.envelope(payload) == {
        "from": "sender@example.com",
        "to": ["rcpt@example.com", "cc@example.com", "hidden@example.com"]}


def test_attachments_inline_cid_in_related_and_rfc2231_filename():
    payload = base(text="t", html='<p><img src="cid:logo"></p>', attachments=[
        {"filename": "checkmark.png", "content": base64.b64encode(PNG).decode()},
        {"filename": "logo.png", "content": base64.b64encode(PNG).decode(), "cid": "logo"},
        {"filename": "naïve résumé.txt", "content": base64.b64encode("héllo".encode()).decode(),
         "contentType": "text/plain"},
    ])
    raw, _ = compose.build(payload)
    msg = parse(raw)
    assert msg.get_content_type() == "multipart/mixed"
    alternative = next(msg.iter_parts())
    assert alternative.get_content_type() == "multipart/alternative"
    related = list(alternative.iter_parts())[1]
    assert related.get_content_type() == "multipart/related"
    html, logo = list(related.iter_parts())
    assert html.get_content_type() == "text/html"
    assert logo["Content-ID"] == "<logo>" and logo.get_content_disposition() == "inline"
    assert logo.get_payload(decode=True) == PNG
    files = {a.get_filename(): a for a in msg.iter_attachments()}
    assert files["checkmark.png"].get_payload(decode=True) == PNG
    assert files["checkmark.png"].get_content_type() == "image/png"
    assert files["naïve résumé.txt"].get_payload(decode=True) == "héllo".encode()
    assert b"filename*=utf-8''na%C3%AFve%20r%C3%A9sum%C3%A9.txt" in raw


def test_bad_base64_names_the_field():
    with pytest.raises(BadRequest) as info:
        compose.build(base(text="x", attachments=[{"filename": "a", "content": "aGk="},
                                                  {"filename": "b", "content": "%%%"}]))
    assert info.value.extra["fields"][0]["key"] == "attachments.1.content"


def test_extra_headers_added_and_reserved_ones_ignored():
    raw, _ = compose.build(base(text="x", headers={"X-Campaign": "42",
                                                   "Content-Type": "text/evil"}))
    msg = parse(raw)
    assert msg["X-Campaign"] == "42"
    assert msg.get_content_type() == "text/plain"


def test_unicode_subject_and_names_are_encoded():
    raw, _ = compose.build(base(subject="Tere, Õie! ✓", text="õ",
                                to=[{"name": "Peter Põder", "address": "p@example.com"}]))
    assert raw.isascii()
    msg = parse(raw)
    assert msg["Subject"] == "Tere, Õie! ✓"
    assert msg["To"].addresses[0].display_name == "Peter Põder"


# -- reply / forward ------------------------------------------------------------------------
PARENT = {"messageId": "<p3@example.com>", "inReplyTo": "<p2@example.com>",
          "references": "<p1@example.com> <p2@example.com>", "subject": "Lunch",
          "from": [{"name": "Alice", "address": "alice@example.com"}],
          "replyTo": [{"name": "", "address": "lists@example.com"}]}


@pytest.mark.parametrize("parent, action, expected", [
    (PARENT, "reply", {"inReplyTo": "<p3@example.com>",
                       "references": "<p1@example.com> <p2@example.com> <p3@example.com>",
                       "subject": "Re: Lunch", "to": [{"name": "", "address": "lists@example.com"}]}),
    (PARENT, "forward", {"references": "<p1@example.com> <p2@example.com> <p3@example.com>",
                         "subject": "Fwd: Lunch"}),
    ({**PARENT, "subject": "RE: Lunch", "replyTo": []}, "reply",
     {"subject": "RE: Lunch", "to": [{"name": "Alice", "address": "alice@example.com"}]}),
    ({**PARENT, "subject": "Fwd: Lunch"}, "forward", {"subject": "Fwd: Lunch"}),
    ({**PARENT, "subject": "Re: Lunch"}, "forward", {"subject": "Fwd: Re: Lunch"}),
    # no References: the parent's In-Reply-To starts the chain (RFC 5322 3.6.4)
    ({**PARENT, "references": None}, "reply",
     {"references": "<p2@example.com> <p3@example.com>"}),
    # bare ids get brackets; duplicates and the parent's own id are not repeated
    ({**PARENT, "references": "p1@example.com <p1@example.com> <p3@example.com>"}, "reply",
     {"references": "<p1@example.com> <p3@example.com>"}),
    ({"messageId": None, "subject": None, "from": []}, "reply", {"to": []}),
])
def test_reference_headers(parent, action, expected):
    got = compose.reference_headers(parent, action)
    for key, value in expected.items():
        assert got.get(key) == value, key
    if action == "forward":
        assert "inReplyTo" not in got and "to" not in got


def test_apply_reference_keeps_caller_subject_and_recipients():
    payload = base(subject="Mine", reference={"message": "AAAAAQAAAAE", "action": "reply"})
    out = compose.apply_reference(payload, PARENT, "reply")
    assert out["subject"] == "Mine" and out["to"] == payload["to"]
    assert out["inReplyTo"] == "<p3@example.com>"
    raw, _ = compose.build(out)
    msg = parse(raw)
    assert msg["In-Reply-To"] == "<p3@example.com>"
    assert msg["References"] == "<p1@example.com> <p2@example.com> <p3@example.com>"


def test_reply_without_to_goes_to_reply_to():
    payload = {"from": {"address": "me@example.com"}, "text": "ok",
               "reference": {"message": "AAAAAQAAAAE", "action": "reply"}}
    out = compose.apply_reference(payload, PARENT, "reply")
    assert compose.envelope(out)["to"] == ["lists@example.com"]
    assert parse(compose.build(out)[0])["Subject"] == "Re: Lunch"


def test_forward_includes_original_attachments_unless_disabled():
    parent = {**PARENT, "attachments": [{"filename": "orig.pdf", "contentType": "application/pdf",
                                         "content": base64.b64encode(b"%PDF").decode()}]}
    ref = {"message": "AAAAAQAAAAE", "action": "forward"}
    out = compose.apply_reference(base(text="see below", reference=ref), parent, "forward")
    files = {a.get_filename(): a for a in parse(compose.build(out)[0]).iter_attachments()}
    assert files["orig.pdf"].get_payload(decode=True) == b"%PDF"
    out = compose.apply_reference(base(text="x", reference={**ref, "attachments": False}),
                                  parent, "forward")
    assert not list(parse(compose.build(out)[0]).iter_attachments())


def test_strip_bcc_removes_folded_bcc_header():
    raw = b"From: a@example.com\r\nBcc: x@example.com,\r\n y@example.com\r\nSubject: s\r\n\r\nBcc: body\r\n"
    assert compose.strip_bcc(raw) == b"From: a@example.com\r\nSubject: s\r\n\r\nBcc: body\r\n"


def test_idn_domain_is_punycoded_in_headers_and_envelope():
    payload = base(text="x", to=[{"name": "Jürgen", "address": "user@bücher.de"}])
    raw, _ = compose.build(payload)
    assert raw.isascii() and b"<user@xn--bcher-kva.de>" in raw
    assert compose.envelope(payload)["to"] == ["user@xn--bcher-kva.de"]


def test_non_ascii_local_part_uses_utf8_headers():
    raw, _ = compose.build(base(text="x", to=[{"address": "δοκιμή@example.com"}]))
    assert "To: δοκιμή@example.com".encode() in raw


@pytest.mark.parametrize("patch, key", [
    ({"to": [{"name": "Evil\r\nBcc: x@evil.com", "address": "b@example.com"}]}, "to"),
    ({"subject": "Hi\r\nBcc: x@evil.com"}, "_schema"),
    ({"attachments": [{"filename": "a\r\nBcc: x@evil.com", "content": "aGk="}]}, "_schema"),
])
def test_line_breaks_in_header_values_are_400_not_injection(patch, key):
    with pytest.raises(BadRequest) as info:
        compose.build(base(text="x", **patch))
    assert info.value.extra["fields"][0]["key"] == key
