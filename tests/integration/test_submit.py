"""End to end (issue 5): sending through a real aiosmtpd server, Sent copy and flags in Dovecot."""
from __future__ import annotations

import base64
import json
import struct
import time

import pytest

from imapapi import ids, keys
from tests.checks import assert_error, wait_until
from tests.integration.helpers import message

pytestmark = pytest.mark.integration

PNG_B64 = ("iVBORw0KGgoAAAANSUhEUgAAABAAAAAQAQMAAAAlPW0iAAAABlBMVEUAAAD///+l2Z/dAAAAM0lEQVR4nGP4/5/h/1"
           "+G/58ZDrAz3D/McH8yw83NDDeNGe4Ug9C9zwz3gVLMDA/A6P9/AFGGFyjOXZtQAAAAAElFTkSuQmCC")


def seed_body(message_id: str) -> dict:
    """The seed's submit example, verbatim except the reference id and the obfuscated addresses."""
    return json.loads("""{
    "reference": {
        "message": "%s",
        "action": "reply"
    },
    "from": {
        "name": "Example Sender",
        "address": "sender@example.com"
    },
    "to": [{
        "name": "Andris Reinman",
        "address": "andris@example.com"
    }],
    "text": "my reply to you",
    "html": "<p>my reply to you</p>",
    "attachments": [
        {
            "filename": "checkmark.png",
            "content": "%s"
        }
    ]
}""" % (message_id, PNG_B64))


def plant(acc, api, subject: str, **kw) -> str:
    """Put a message in INBOX directly, return its API id."""
    acc.append(message(subject, **kw))
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        resp = api.get(f"/v1/account/{acc.id}/messages", params={"path": "INBOX"})
        if resp.status_code == 200:
            for entry in resp.json().get("messages", []):
                if entry.get("subject") == subject:
                    return entry["id"]
        time.sleep(0.3)
    raise AssertionError(f"planted message {subject!r} not listed: {resp.text[:300]}")


def flags_of(acc, folder: str, header_msgid: str) -> list:
    with acc.imap() as client:
        client.select_folder(folder, readonly=True)
        uids = client.search(["HEADER", "Message-ID", header_msgid])
        if not uids:
            return None
        data = client.fetch(uids, ["FLAGS"])
        return [f.decode() for f in data[uids[0]][b"FLAGS"]]


def sent_copies(acc, message_id: str) -> list[bytes]:
    with acc.imap() as client:
        client.select_folder("Sent", readonly=True)
        uids = client.search(["HEADER", "Message-ID", message_id])
        if not uids:
            return []
        data = client.fetch(uids, ["BODY.PEEK[]", "FLAGS"])
        return [(d[b"BODY[]"], [f.decode() for f in d[b"FLAGS"]]) for d in data.values()]


def events_of(redis, account: str) -> list[dict]:
    return [json.loads(f[b"e"]) for _sid, f in redis.xrange(keys.events(account))]


def wait_state(api, queue_id: str, states, timeout: float = 30.0) -> dict:
    last: dict = {}

    def reached():
        last.update(api.get(f"/v1/outbox/{queue_id}").json())
        return dict(last) if last.get("state") in states else None

    return wait_until(reached, timeout, lambda: f"outbox item in {states}; stayed {last}")


@pytest.fixture
def account(new_account, smtp):
    return new_account(smtp=smtp.account_config(secure=False))


# -- the seed example: a reply ----------------------------------------------------------------
def test_seed_reply_example(api, account, smtp, redis):
    parent_id = "<parent-1@example.net>"
    ref = plant(account, api, "Lunch plans", msgid=parent_id, sender="Alice <alice@example.net>")
    resp = api.post(f"/v1/account/{account.id}/submit", json=seed_body(ref))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["response"].startswith("250") and body["queueId"]
    [got] = smtp.wait_for(1)
    msg = got.message()
    assert msg["Message-ID"] == body["messageId"]
    assert msg["In-Reply-To"] == parent_id and msg["References"] == parent_id
    assert msg["Subject"] == "Re: Lunch plans"
    assert got.mail_from == "sender@example.com" and got.rcpt_tos == ["andris@example.com"]
    assert got.login == smtp.user   # authenticated after STARTTLS
    alternative = next(msg.iter_parts())
    assert [p.get_content_type() for p in alternative.iter_parts()] == ["text/plain", "text/html"]
    [att] = list(msg.iter_attachments())
    assert att.get_filename() == "checkmark.png" and att.get_content_type() == "image/png"
    assert att.get_payload(decode=True) == base64.b64decode(PNG_B64)
    assert "\\Answered" in flags_of(account, "INBOX", parent_id)
    [(copy, flags)] = sent_copies(account, body["messageId"])
    assert "\\Seen" in flags and copy.replace(b"\r\n", b"\n") == got.raw.replace(b"\r\n", b"\n")
    assert [e["event"] for e in events_of(redis, account.id)].count("messageSent") == 1


def test_new_message_over_implicit_tls_bcc_is_envelope_only(api, new_account, smtp):
    acc = new_account(smtp=smtp.account_config(secure=True))
    resp = api.post(f"/v1/account/{acc.id}/submit", json={
        "from": {"name": "Me", "address": "me@example.com"},
        "to": [{"address": "to@example.com"}], "cc": [{"name": "C", "address": "cc@example.com"}],
        "bcc": [{"address": "secret@example.com"}], "subject": "Tere ✓", "html":
        '<p>logo <img src="cid:logo1"></p>', "headers": {"X-Trace": "abc"},
        "attachments": [{"filename": "logo.png", "content": PNG_B64, "cid": "logo1"},
                        {"filename": "résumé.txt", "content": base64.b64encode(b"cv").decode(),
                         "contentType": "text/plain"}]})
    assert resp.status_code == 200, resp.text
    [got] = smtp.wait_for(1)
    assert got.port == smtp.tls_port and got.login == smtp.user
    assert got.rcpt_tos == ["to@example.com", "cc@example.com", "secret@example.com"]
    assert b"secret@example.com" not in got.raw
    msg = got.message()
    assert msg["Bcc"] is None and msg["X-Trace"] == "abc" and msg["Subject"] == "Tere ✓"
    assert msg["Message-ID"] == resp.json()["messageId"] and msg["In-Reply-To"] is None
    related = next(msg.iter_parts())
    assert related.get_content_type() == "multipart/related"
    html, logo = related.iter_parts()
    assert logo["Content-ID"] == "<logo1>" and logo.get_payload(decode=True) == base64.b64decode(PNG_B64)
    files = {a.get_filename(): a.get_payload(decode=True) for a in msg.iter_attachments()}
    assert files == {"résumé.txt": b"cv"}
    assert b"filename*=utf-8''r%C3%A9sum%C3%A9.txt" in got.raw
    [(copy, _flags)] = sent_copies(acc, msg["Message-ID"])
    assert b"secret@example.com" not in copy


def test_forward_sets_forwarded_and_carries_attachments(api, account, smtp):
    parent_id = "<fw-parent@example.net>"
    raw = (f"From: Alice <alice@example.net>\r\nTo: me@example.com\r\nSubject: Report\r\n"
           f"Message-ID: {parent_id}\r\nMIME-Version: 1.0\r\n"
           "Content-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\n"
           "Content-Type: text/plain\r\n\r\nsee attached\r\n--XX\r\n"
           "Content-Type: application/pdf; name=report.pdf\r\n"
           "Content-Disposition: attachment; filename=report.pdf\r\n"
           "Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQ=\r\n--XX--\r\n").encode()
    account.append(raw)
    plant(account, api, "marker", msgid="<marker@example.net>")   # appended after: wait for it
    listing = api.get(f"/v1/account/{account.id}/messages", params={"path": "INBOX"}).json()
    ref = next(m["id"] for m in listing["messages"] if m.get("subject") == "Report")
    resp = api.post(f"/v1/account/{account.id}/submit", json={
        "reference": {"message": ref, "action": "forward"},
        "from": {"address": "me@example.com"}, "to": [{"address": "boss@example.com"}],
        "text": "FYI"})
    assert resp.status_code == 200, resp.text
    [got] = smtp.wait_for(1)
    msg = got.message()
    assert msg["Subject"] == "Fwd: Report" and msg["In-Reply-To"] is None
    assert msg["References"] == parent_id
    files = {a.get_filename(): a.get_payload(decode=True) for a in msg.iter_attachments()}
    assert files == {"report.pdf": b"%PDF-1.4"}
    flags = flags_of(account, "INBOX", parent_id)
    assert "$Forwarded" in flags and "\\Answered" not in flags


def test_missing_reference_is_404_and_nothing_sent(api, account, smtp, redis):
    real = plant(account, api, "exists")
    mailbox_no, uid = ids.decode_message_id(real)
    gone = ids.b64encode(struct.pack(">II", mailbox_no, uid + 1000))
    body = seed_body(gone)
    resp = api.post(f"/v1/account/{account.id}/submit", json=body)
    assert_error(resp, 404, "MessageNotFound")
    time.sleep(1)
    assert smtp.attempts == 0
    assert api.get("/v1/outbox", params={"account": account.id}).json()["messages"] == []


def test_451_then_accept_is_retried_and_delivered_once(api, account, smtp, redis):
    smtp.reply_next("451 4.3.0 Try again later")
    resp = api.post(f"/v1/account/{account.id}/submit", json={
        "from": {"address": "me@example.com"}, "to": [{"address": "x@example.com"}],
        "subject": "retry me", "text": "hi"})
    assert resp.status_code == 202, resp.text
    queued = resp.json()
    assert queued["queueId"] and queued["messageId"] and queued["state"] == "deferred"
    item = wait_state(api, queued["queueId"], ("sent", "failed"))
    assert item["state"] == "sent" and item["attempts"] == 2
    time.sleep(1)
    assert smtp.attempts == 2 and len(smtp.received) == 1
    assert smtp.received[0].message()["Message-ID"] == queued["messageId"]
    names = [e["event"] for e in events_of(redis, account.id)]
    assert names.count("messageDeliveryError") == 1 and names.count("messageSent") == 1


def test_550_fails_with_event(api, account, smtp, redis):
    smtp.reply_next("550 5.7.1 Rejected by policy")
    resp = api.post(f"/v1/account/{account.id}/submit", json={
        "from": {"address": "me@example.com"}, "to": [{"address": "x@example.com"}],
        "text": "hi"})
    body = assert_error(resp, 502, "SubmitFail")
    assert "550" in body["message"]
    item = api.get(f"/v1/outbox/{body['queueId']}").json()
    assert item["state"] == "failed" and item["lastError"]["code"] == 550
    assert smtp.received == []
    failed = [e for e in events_of(redis, account.id) if e["event"] == "messageFailed"]
    assert len(failed) == 1 and failed[0]["data"]["queueId"] == body["queueId"]


def test_idempotency_key_sends_once(api, account, smtp):
    payload = {"from": {"address": "me@example.com"}, "to": [{"address": "x@example.com"}],
               "text": "once"}
    headers = {"Idempotency-Key": "order-42"}
    first = api.post(f"/v1/account/{account.id}/submit", json=payload, headers=headers)
    second = api.post(f"/v1/account/{account.id}/submit", json=payload, headers=headers)
    assert first.status_code == second.status_code == 200, (first.text, second.text)
    assert first.json()["queueId"] == second.json()["queueId"]
    assert first.json()["messageId"] == second.json()["messageId"]
    time.sleep(1)
    assert len(smtp.received) == 1


def test_send_at_queues_and_cancel(api, account, smtp):
    resp = api.post(f"/v1/account/{account.id}/submit", json={
        "from": {"address": "me@example.com"}, "to": [{"address": "x@example.com"}],
        "text": "later", "sendAt": "2099-01-01T00:00:00Z"})
    assert resp.status_code == 202, resp.text
    qid = resp.json()["queueId"]
    item = api.get(f"/v1/outbox/{qid}").json()
    assert item["state"] == "queued" and item["sendAt"].startswith("2099-01-01")
    listed = api.get("/v1/outbox", params={"account": account.id}).json()["messages"]
    assert [m["queueId"] for m in listed] == [qid]
    assert api.delete(f"/v1/outbox/{qid}").json() == {"deleted": True, "queueId": qid}
    assert api.get(f"/v1/outbox/{qid}").json()["state"] == "cancelled"
    assert_error(api.delete(f"/v1/outbox/{qid}"), 409, "NotCancellable")
    assert_error(api.get("/v1/outbox/nope"), 404, "QueueItemNotFound")
    assert smtp.attempts == 0


def test_copy_false_skips_sent_folder(api, account, smtp):
    resp = api.post(f"/v1/account/{account.id}/submit", json={
        "from": {"address": "me@example.com"}, "to": [{"address": "x@example.com"}],
        "text": "no copy", "copy": False})
    assert resp.status_code == 200, resp.text
    assert sent_copies(account, resp.json()["messageId"]) == []


# -- bad input ----------------------------------------------------------------------------------
@pytest.mark.parametrize("patch, key", [
    ({"to": []}, "to"),
    ({"to": [{"address": "not-an-address"}]}, "to.0.address"),
    ({"from": {"address": "me@"}}, "from.address"),
    ({"attachments": [{"filename": "a", "content": "@@not base64@@"}]}, "attachments.0.content"),
    ({"reference": {"message": "!!", "action": "reply"}}, "reference.message"),
    ({"bogus": 1}, "bogus"),
    ({"subject": "a\r\nBcc: x@evil.example"}, "subject"),
    ({"messageId": "<>"}, "messageId"),
    ({"cc": [{"name": "x\nBcc: y", "address": "c@example.com"}]}, "cc.0.name"),
])
def test_bad_input_is_400_naming_the_field(api, account, smtp, patch, key):
    payload = {"from": {"address": "me@example.com"}, "to": [{"address": "x@example.com"}],
               "text": "x", **patch}
    body = assert_error(api.post(f"/v1/account/{account.id}/submit", json=payload), 400)
    assert key in [f["key"] for f in body["fields"]], body
    assert smtp.attempts == 0


def test_too_large_is_400(api, account, smtp):
    big = base64.b64encode(b"\0" * (25 * 1024 * 1024 + 10)).decode()
    body = assert_error(api.post(f"/v1/account/{account.id}/submit", json={
        "from": {"address": "me@example.com"}, "to": [{"address": "x@example.com"}],
        "attachments": [{"filename": "big.bin", "content": big}]}, timeout=120), 400)
    assert body["fields"][0]["key"] == "attachments"


def test_account_without_smtp_is_404(api, new_account):
    acc = new_account()
    body = assert_error(api.post(f"/v1/account/{acc.id}/submit", json={
        "from": {"address": "me@example.com"}, "to": [{"address": "x@example.com"}],
        "text": "x"}), 404, "SMTPUnavailable")
    assert "SMTP" in body["message"]


# -- SMTP server problems -------------------------------------------------------------------------
def test_smtp_down_is_deferred_then_cancellable(api, new_account, smtp, redis):
    from tests.fixtures.dovecot import free_port

    acc = new_account(smtp={**smtp.account_config(), "port": free_port()})  # nothing listens
    resp = api.post(f"/v1/account/{acc.id}/submit", json={
        "from": {"address": "me@example.com"}, "to": [{"address": "x@example.com"}],
        "text": "x"})
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert body["state"] == "deferred"
    item = api.get(f"/v1/outbox/{body['queueId']}").json()
    assert item["lastError"]["transient"] is True and item["nextAttempt"]
    assert api.delete(f"/v1/outbox/{body['queueId']}").status_code == 200
    errors_seen = [e for e in events_of(redis, acc.id) if e["event"] == "messageDeliveryError"]
    assert errors_seen and errors_seen[0]["data"]["queueId"] == body["queueId"]
    time.sleep(3)   # the scheduled retry finds the item cancelled and does nothing
    assert api.get(f"/v1/outbox/{body['queueId']}").json()["state"] == "cancelled"


@pytest.mark.parametrize("change, needle", [
    ({"auth": {"user": "smtp-user", "pass": "wrong"}}, "535"),
    ({"tls": {"rejectUnauthorized": True}}, "certificate"),
])
def test_smtp_config_problems_fail_at_once(api, new_account, smtp, change, needle):
    acc = new_account(smtp={**smtp.account_config(secure=True), **change})
    body = assert_error(api.post(f"/v1/account/{acc.id}/submit", json={
        "from": {"address": "me@example.com"}, "to": [{"address": "x@example.com"}],
        "text": "x"}), 502, "SubmitFail")
    assert needle in body["message"] and smtp.received == []


def test_events_reach_the_webhook_receiver(api, new_account, smtp, webhook_receiver):
    hook = webhook_receiver.url("submit-events")
    acc = new_account(smtp=smtp.account_config(), webhooks=hook)
    smtp.reply_next("550 5.1.1 No such user")
    failed = assert_error(api.post(f"/v1/account/{acc.id}/submit", json={
        "from": {"address": "me@example.com"}, "to": [{"address": "gone@example.com"}],
        "text": "x"}), 502, "SubmitFail")
    ok = api.post(f"/v1/account/{acc.id}/submit", json={
        "from": {"address": "me@example.com"}, "to": [{"address": "x@example.com"}], "text": "y"})
    assert ok.status_code == 200, ok.text

    def both(evs):
        mine = {e["event"]: e for e in evs if e.get("account") == acc.id}
        return mine if {"messageFailed", "messageSent"} <= set(mine) else None

    got = webhook_receiver.wait_for(both, name="submit-events")
    assert got["messageFailed"]["data"]["queueId"] == failed["queueId"]
    assert "550" in got["messageFailed"]["data"]["error"]
    sent = got["messageSent"]["data"]
    assert sent["messageId"] == ok.json()["messageId"] and sent["response"].startswith("250")


def test_sending_does_not_need_the_imap_connection(api, new_account, smtp):
    acc = new_account(smtp=smtp.account_config(), api_password="wrong",
                      wait="authenticationError")
    resp = api.post(f"/v1/account/{acc.id}/submit", json={
        "from": {"address": "me@example.com"}, "to": [{"address": "x@example.com"}],
        "text": "IMAP is down, SMTP is not"})
    assert resp.status_code == 200, resp.text
    assert len(smtp.wait_for(1)) == 1
    item = api.get(f"/v1/outbox/{resp.json()['queueId']}").json()
    assert item["state"] == "sent" and "authenticated" in item["copyError"]
    # a reply needs the referenced message, so it does need IMAP
    assert_error(api.post(f"/v1/account/{acc.id}/submit", json=seed_body("AAAAAQAAAAE")), 503)


def test_send_at_soon_is_sent_at_that_time(api, account, smtp):
    from datetime import datetime, timedelta, timezone

    when = datetime.now(timezone.utc) + timedelta(seconds=3)
    resp = api.post(f"/v1/account/{account.id}/submit", json={
        "from": {"address": "me@example.com"}, "to": [{"address": "x@example.com"}],
        "text": "scheduled", "sendAt": when.isoformat()})
    assert resp.status_code == 202 and resp.json()["state"] == "queued", resp.text
    assert smtp.received == []
    [got] = smtp.wait_for(1, timeout=30)
    assert time.time() >= when.timestamp() - 0.5
    assert got.message()["Message-ID"] == resp.json()["messageId"]
    assert wait_state(api, resp.json()["queueId"], ("sent",))["attempts"] == 1
