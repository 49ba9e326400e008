"""End to end: upload as a reply/forward of a stored message, and the visible text of a reply."""
from __future__ import annotations

import base64
import email
import re
from email import policy

import pytest

from tests.checks import assert_error
from tests.integration.helpers import flags_of, message

pytestmark = pytest.mark.integration


def listing(api, acc, path="INBOX") -> dict[str, dict]:
    resp = api.get(f"/v1/account/{acc.id}/messages", params={"path": path, "pageSize": 1000})
    assert resp.status_code == 200, resp.text
    return {e["subject"]: e for e in resp.json()["messages"]}


def count(acc, folder: str) -> int:
    conn = acc.imap()
    try:
        return conn.select_folder(folder, readonly=True)[b"EXISTS"]
    finally:
        conn.logout()


def stored(acc, folder: str, uid: int):
    conn = acc.imap()
    try:
        conn.select_folder(folder, readonly=True)
        data = conn.fetch([uid], ["BODY.PEEK[]", "FLAGS"])[uid]
    finally:
        conn.logout()
    return email.message_from_bytes(data[b"BODY[]"], policy=policy.default), set(data[b"FLAGS"])


PARENT = (b"From: Carol <carol@example.com>\r\nReply-To: Desk <desk@example.com>\r\n"
          b"To: Bob <bob@example.com>\r\nSubject: Quarterly numbers\r\n"
          b"Date: Mon, 04 Mar 2024 10:00:00 +0000\r\nMessage-ID: <parent@example.com>\r\n"
          b"In-Reply-To: <root@example.com>\r\nReferences: <root@example.com>\r\n"
          b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n"
          b"--b\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n"
          b"--b\r\nContent-Type: text/csv\r\nContent-Disposition: attachment; filename=q.csv\r\n"
          b"\r\na,b\r\n1,2\r\n--b--\r\n")


def test_upload_reply_and_forward_derive_headers_without_flagging(api, new_account):
    acc = new_account()
    acc.append(PARENT)
    parent = next(iter(listing(api, acc).values()))
    url = f"/v1/account/{acc.id}/message"
    base = {"path": "Drafts", "from": {"address": "bob@example.com"}, "text": "Sounds good\n"}

    resp = api.post(url, json={**base, "flags": ["\\Draft"],
                               "reference": {"message": parent["id"], "action": "reply"}})
    assert resp.status_code == 200, resp.text
    reply, flags = stored(acc, "Drafts", resp.json()["uid"])
    assert reply["In-Reply-To"] == "<parent@example.com>"
    assert reply["References"] == "<root@example.com> <parent@example.com>"
    assert reply["Subject"] == "Re: Quarterly numbers"
    assert reply["To"] == "Desk <desk@example.com>"       # Reply-To wins, as when sending
    assert flags - {b"\\Recent"} == {b"\\Draft"}

    resp = api.post(url, json={**base, "to": [{"address": "eve@example.com"}],
                               "subject": "FYI", "headers": {"References": "<spoof@x>"},
                               "reference": {"message": parent["id"], "action": "forward"}})
    assert resp.status_code == 200, resp.text
    fwd, _flags = stored(acc, "Drafts", resp.json()["uid"])
    assert fwd["Subject"] == "FYI" and fwd["In-Reply-To"] is None
    assert fwd["References"] == "<root@example.com> <parent@example.com>"
    assert [(p.get_filename(), p.get_payload(decode=True)) for p in fwd.iter_attachments()] == [
        ("q.csv", b"a,b\r\n1,2")]
    resp = api.post(url, json={**base, "to": [{"address": "eve@example.com"}], "reference": {
        "message": parent["id"], "action": "forward", "attachments": False}})
    fwd, _flags = stored(acc, "Drafts", resp.json()["uid"])
    assert fwd["Subject"] == "Fwd: Quarterly numbers" and list(fwd.iter_attachments()) == []

    # unlike the original, storing a reply does not mark the message answered
    assert flags_of(acc, "INBOX", parent["uid"]) == set()


def test_upload_with_missing_reference_is_404_and_stores_nothing(api, new_account):
    acc = new_account()
    acc.append(message("short-lived"))
    gone = next(iter(listing(api, acc).values()))
    conn = acc.imap()
    conn.select_folder("INBOX")
    conn.delete_messages([gone["uid"]])
    conn.expunge()
    conn.logout()
    url = f"/v1/account/{acc.id}/message"
    base = {"path": "Drafts", "from": {"address": "bob@example.com"}, "text": "hi"}
    for ref in ({"message": gone["id"]}, {"message": "AAAAAQAAAAE", "action": "forward"}):
        body = assert_error(api.post(url, json={**base, "reference": ref}), 404, "MessageNotFound")
        assert re.search("referenced", body["message"], re.I), body
    assert count(acc, "Drafts") == 0
    raw = base64.b64encode(message("raw")).decode()
    assert_error(api.post(url, json={"path": "Drafts", "raw": raw,
                                     "reference": {"message": gone["id"]}}), 400)
    assert_error(api.post(url, json={**base, "reference": {"message": gone["id"],
                                                           "action": "answer"}}), 400)


REPLY = ("From: Bob <bob@example.com>\r\nTo: Carol <carol@example.com>\r\n"
         "Subject: Re: Quarterly numbers\r\nMessage-ID: <reply@example.com>\r\n"
         "In-Reply-To: <parent@example.com>\r\nMIME-Version: 1.0\r\n"
         "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
         "Sounds good – ship it.\r\n\r\n"
         "On Mon, 4 Mar 2024 at 10:00, Carol <carol@example.com> wrote:\r\n"
         "> See attached.\r\n> Carol\r\n").encode()


def test_reply_details_have_the_visible_text(api, new_account):
    acc = new_account()
    acc.append(REPLY)
    acc.append(message("not a reply", body="Hello\r\n\r\n> quoted anyway"))
    found = listing(api, acc)
    url = f"/v1/account/{acc.id}/message/{found['Re: Quarterly numbers']['id']}"
    text = api.get(url, params={"textType": "*"}).json()["text"]
    assert text["visible"] == "Sounds good – ship it."
    assert text["plain"].startswith("Sounds good") and "> See attached." in text["plain"]
    # only with every text type asked for, and only for replies, as in the original
    assert "visible" not in api.get(url, params={"textType": "plain"}).json()["text"]
    assert "visible" not in api.get(url).json()["text"]
    other = f"/v1/account/{acc.id}/message/{found['not a reply']['id']}"
    assert "visible" not in api.get(other, params={"textType": "*"}).json()["text"]
