"""Pure parts of the sidecar's submit ops: Sent folder choice, attachments of a forwarded message."""
from __future__ import annotations

import base64
from email import policy
from email.parser import BytesParser

import pytest

from imapapi import compose
from sidecar.ops.submit import _attachments, pick_sent_folder


@pytest.mark.parametrize("folders, expected", [
    ([((b"\\HasNoChildren",), b"/", "INBOX"), ((b"\\Sent",), b"/", "Gesendet")], "Gesendet"),
    ([((), b"/", "INBOX"), ((), b"/", "Sent Items")], "Sent Items"),
    ([((), b".", "INBOX"), ((), b".", "sent messages"), ((), b".", "Sent")], "Sent"),
    ([((), b"/", "INBOX"), ((), b"/", "Archive")], None),
])
def test_pick_sent_folder(folders, expected):
    assert pick_sent_folder(folders) == expected


def test_attachments_of_a_forwarded_message_round_trip():
    png = base64.b64encode(b"\x89PNG fake").decode()
    raw, _ = compose.build({
        "from": {"address": "a@example.com"}, "to": [{"address": "b@example.com"}],
        "text": "body", "html": '<img src="cid:pic">',
        "attachments": [{"filename": "pic.png", "content": png, "cid": "pic"},
                        {"filename": "doc.pdf", "content": base64.b64encode(b"%PDF").decode()}]})
    found = _attachments(BytesParser(policy=policy.default).parsebytes(raw))
    by_name = {a["filename"]: a for a in found}
    assert set(by_name) == {"pic.png", "doc.pdf"}   # the text and html bodies are not attachments
    assert by_name["pic.png"]["cid"] == "pic" and by_name["pic.png"]["contentDisposition"] == "inline"
    assert base64.b64decode(by_name["doc.pdf"]["content"]) == b"%PDF"
    assert by_name["doc.pdf"]["contentType"] == "application/pdf"
