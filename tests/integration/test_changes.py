"""Change detection end to end: another IMAP client changes mail -> webhooks + the /changes feed.

Real Dovecot, real sidecar/worker/API (the `stack`), a real HTTP receiver on 127.0.0.1.
"""
from __future__ import annotations

import hashlib
import hmac
import threading
import time

import pytest

from .helpers import message

pytestmark = pytest.mark.integration


@pytest.fixture
def hooked(new_account, webhook_receiver):
    """new_account with its own webhook URL (per-account override) -> (account, receiver name)."""
    def make(**kw):
        name = f"r{time.time_ns()}"
        acc = new_account(webhooks=webhook_receiver.url(name), **kw)
        return acc, name
    return make


def explain(api, account: str, receiver, name: str, predicate, timeout: float):
    """receiver.wait_for, and on failure say whether the event was committed (feed) at all."""
    try:
        return receiver.wait_for(predicate, timeout, name)
    except AssertionError as exc:
        feed = api.get(f"/v1/account/{account}/changes", params={"limit": 1000}).json()
        tail = [(e["event"], e.get("path"), e["data"].get("subject")) for e in feed.get("events", [])]
        raise AssertionError(f"{exc}\nfeed tail: {tail[-8:]}") from None


def by_event(events, name, path=None):
    return [e for e in events if e["event"] == name and (path is None or e.get("path") == path)]


def subjects(events, path=None):
    return {e["data"].get("subject") for e in by_event(events, "messageNew", path)}


def test_inbox_append_flag_expunge(hooked, webhook_receiver, api):
    assert api.post("/v1/settings", json={"webhookSecret": "topsecret"}).status_code == 200
    acc, name = hooked()
    client = acc.imap()
    client.append("INBOX", message("hello inbox"))
    got = explain(api, acc.id, webhook_receiver, name,
                  lambda ev: by_event(ev, "messageNew", "INBOX"), 15)
    new = got[0]
    assert new["account"] == acc.id and new["specialUse"] == "\\Inbox"
    assert new["data"]["subject"] == "hello inbox" and new["data"]["id"] and new["id"]
    uid = new["data"]["uid"]
    client.select_folder("INBOX")
    client.add_flags([uid], [b"\\Seen"])
    upd = webhook_receiver.wait_for(lambda ev: by_event(ev, "messageUpdated"), 15, name)[0]
    # emailId: the same message in every event (Dovecot's X-GUID; tests/integration/test_email_id.py)
    assert upd["data"] == {"id": new["data"]["id"], "uid": uid, "emailId": new["data"]["emailId"],
                           "changes": {"flags": {"added": ["\\Seen"]}}}
    client.delete_messages([uid])
    client.expunge()
    gone = webhook_receiver.wait_for(lambda ev: by_event(ev, "messageDeleted"), 15, name)[0]
    assert gone["data"] == {"id": new["data"]["id"], "uid": uid, "emailId": new["data"]["emailId"]}
    # signed with the configured secret, event id in a header
    raw = [r for r in webhook_receiver.received(name) if r["json"]["id"] == new["id"]][0]
    assert raw["headers"]["x-imapapi-event-id"] == new["id"]
    ts = raw["headers"]["x-imapapi-timestamp"].encode()
    assert raw["headers"]["x-imapapi-signature"] == hmac.new(
        b"topsecret", ts + b"." + raw["body"], hashlib.sha256).hexdigest()
    # the same events, same ids, through the replayable feed
    feed = api.get(f"/v1/account/{acc.id}/changes").json()
    ids = [e["id"] for e in feed["events"]]
    for e in (new, upd, gone):
        assert e["id"] in ids
    rest = api.get(f"/v1/account/{acc.id}/changes", params={"cursor": feed["cursor"]}).json()
    assert rest["events"] == [] and rest["cursor"] == feed["cursor"]


def test_other_folder_and_move(hooked, webhook_receiver):
    acc, name = hooked()
    client = acc.imap()
    client.append("Archive", message("archived one"))
    new = webhook_receiver.wait_for(lambda ev: by_event(ev, "messageNew", "Archive"), 15, name)[0]
    assert new["specialUse"] == "\\Archive" and new["data"]["subject"] == "archived one"
    client.select_folder("Archive")
    client.add_flags([new["data"]["uid"]], [b"\\Flagged"])
    upd = webhook_receiver.wait_for(lambda ev: by_event(ev, "messageUpdated", "Archive"), 15, name)
    assert upd[0]["data"]["changes"]["flags"]["added"] == ["\\Flagged"]
    client.move([new["data"]["uid"]], "INBOX")
    webhook_receiver.wait_for(lambda ev: by_event(ev, "messageDeleted", "Archive"), 15, name)
    moved = webhook_receiver.wait_for(lambda ev: by_event(ev, "messageNew", "INBOX"), 15, name)[0]
    assert moved["data"]["subject"] == "archived one" and moved["data"].get("flagged") is True


def test_existing_mail_is_not_new(dovecot, api, stack, webhook_receiver):
    user, pw, name = f"pre{time.time_ns()}", "pw12345", f"r{time.time_ns()}"
    dovecot.add_user(user, pw)
    dovecot.append(user, pw, "INBOX", message("old mail"))
    payload = dovecot.account_payload(user, user, pw, webhooks=webhook_receiver.url(name))
    assert api.post("/v1/account", json=payload).status_code == 200
    stack.wait_state(user, "connected", timeout=30)
    dovecot.append(user, pw, "INBOX", message("fresh mail"))
    webhook_receiver.wait_for(lambda ev: "fresh mail" in subjects(ev), 15, name)
    assert "old mail" not in subjects(webhook_receiver.events(name))
    api.delete(f"/v1/account/{user}")


def test_folder_created_and_deleted_through_api(hooked, webhook_receiver, api):
    acc, name = hooked()
    resp = api.post(f"/v1/account/{acc.id}/mailbox", json={"path": ["Projects"]})
    assert resp.status_code in (200, 201), resp.text
    new = webhook_receiver.wait_for(lambda ev: by_event(ev, "mailboxNew", "Projects"), 20, name)
    assert new[0]["data"]["path"] == "Projects" and new[0]["data"]["uidValidity"]
    assert api.delete(f"/v1/account/{acc.id}/mailbox", params={"path": "Projects"}).status_code == 200
    webhook_receiver.wait_for(lambda ev: by_event(ev, "mailboxDeleted", "Projects"), 20, name)


def _unique_new(events):
    """uid -> set of event ids for messageNew in INBOX."""
    out: dict[int, set] = {}
    for e in by_event(events, "messageNew", "INBOX"):
        out.setdefault(e["data"]["uid"], set()).add(e["id"])
    return out


def test_sidecar_killed_during_500_appends(hooked, webhook_receiver, stack):
    acc, name = hooked()
    total = 500
    client = acc.imap()

    def append_all():
        for i in range(total):
            client.append("INBOX", message(f"bulk {i}"))

    writer = threading.Thread(target=append_all)
    writer.start()
    webhook_receiver.wait_for(lambda ev: len(_unique_new(ev)) >= 50, 60, name)
    stack.kill("sidecar")
    time.sleep(1.0)
    stack.start("sidecar")
    writer.join(120)
    got = webhook_receiver.wait_for(lambda ev: len(_unique_new(ev)) >= total and _unique_new(ev),
                                    180, name)
    assert len(got) == total
    assert all(len(ids) == 1 for ids in got.values()), "a duplicate must carry the same event id"


def test_worker_killed_mid_delivery(hooked, webhook_receiver, stack):
    acc, name = hooked()
    webhook_receiver.set_mode(name, "hang", seconds=4)
    client = acc.imap()
    for i in range(10):
        client.append("INBOX", message(f"during kill {i}"))
    time.sleep(2.0)               # deliveries are now stuck in the hung receiver
    stack.kill("worker")
    stack.start("worker")
    got = webhook_receiver.wait_for(lambda ev: len(_unique_new(ev)) >= 10 and _unique_new(ev),
                                    150, name)
    assert all(len(ids) == 1 for ids in got.values())


def test_receiver_failing_then_recovering(hooked, webhook_receiver):
    acc, name = hooked()
    webhook_receiver.set_mode(name, "fail", seconds=6)
    acc.imap().append("INBOX", message("retry me"))
    webhook_receiver.wait_for(lambda ev: "retry me" in subjects(ev), 60, name)
    # one in flight per account: the account's first event is the one that got the 500s, and
    # the later ones (the messageNew) waited behind it
    attempts = webhook_receiver.received(name, ok_only=False)
    first = [r for r in attempts if r["status"] == 500][0]["json"]["id"]
    tries = [r["status"] for r in attempts if r["json"]["id"] == first]
    assert len(tries) >= 2 and tries[0] == 500 and tries[-1] == 200
    seqs = [r["json"]["seq"] for r in attempts if r["status"] == 200]
    assert seqs == sorted(seqs)


def test_hung_receiver_does_not_delay_others(hooked, webhook_receiver, api):
    slow, slow_name = hooked()
    fast, fast_name = hooked()
    webhook_receiver.set_mode(slow_name, "hang", seconds=60)
    slow_client = slow.imap()
    for i in range(20):
        slow_client.append("INBOX", message(f"slow {i}"))
    time.sleep(1.0)
    t0 = time.time()
    fast.imap().append("INBOX", message("fast one"))
    explain(api, fast.id, webhook_receiver, fast_name, lambda ev: "fast one" in subjects(ev), 15)
    assert time.time() - t0 < 10


def test_authentication_error_event(new_account, webhook_receiver, api):
    name = f"r{time.time_ns()}"
    acc = new_account(wait="authenticationError", api_password="wrong-password",
                      webhooks=webhook_receiver.url(name))
    got = webhook_receiver.wait_for(lambda ev: by_event(ev, "authenticationError"), 20, name)
    assert got[0]["account"] == acc.id and "path" not in got[0]
    feed = api.get(f"/v1/account/{acc.id}/changes").json()
    assert [e["event"] for e in feed["events"]].count("authenticationError") == 1


def test_notify_text_headers_and_event_filter(hooked, webhook_receiver, api):
    settings = {"notifyText": True, "notifyTextSize": 5, "notifyHeaders": ["subject", "x-tag"],
                "webhookEvents": ["messageNew"]}
    assert api.post("/v1/settings", json=settings).status_code == 200
    try:
        acc, name = hooked()
        raw = message("with text", body="Hello world, long body").replace(
            b"Subject:", b"X-Tag: seven\r\nSubject:")
        client = acc.imap()
        client.append("INBOX", raw)
        new = webhook_receiver.wait_for(lambda ev: by_event(ev, "messageNew"), 15, name)[0]
        assert new["data"]["text"]["plain"] == "Hello" and new["data"]["text"]["hasMore"] is True
        assert set(new["data"]["headers"]) == {"subject", "x-tag"}
        client.select_folder("INBOX")
        client.add_flags([new["data"]["uid"]], [b"\\Seen"])
        client.append("INBOX", message("second"))
        webhook_receiver.wait_for(lambda ev: "second" in subjects(ev), 15, name)
        # filtered out of the webhooks, still in the feed
        assert not by_event(webhook_receiver.events(name), "messageUpdated")
        feed = api.get(f"/v1/account/{acc.id}/changes").json()["events"]
        assert by_event(feed, "messageUpdated")
    finally:
        api.post("/v1/settings", json={"notifyText": False, "notifyTextSize": 0,
                                       "notifyHeaders": [], "webhookEvents": ["*"]})


def test_uidvalidity_change_is_mailbox_reset(hooked, webhook_receiver):
    acc, name = hooked()
    client = acc.imap()
    client.append("Junk", message("before reset"))
    webhook_receiver.wait_for(lambda ev: by_event(ev, "messageNew", "Junk"), 15, name)
    # same path, new folder: a new UIDVALIDITY the sidecar sees on its next look at Junk
    client.delete_folder("Junk")
    client.create_folder("Junk")
    client.append("Junk", message("after reset"))
    reset = webhook_receiver.wait_for(lambda ev: by_event(ev, "mailboxReset", "Junk"), 20, name)[0]
    assert reset["data"]["uidValidity"] != reset["data"]["prevUidValidity"]
    assert not by_event(webhook_receiver.events(name), "mailboxDeleted", "Junk")


def test_changes_while_sidecar_down_are_reported(hooked, webhook_receiver, stack, api):
    acc, name = hooked()
    client = acc.imap()
    for subject in ("keep", "drop"):
        client.append("Sent", message(subject))
    got = webhook_receiver.wait_for(lambda ev: len(by_event(ev, "messageNew", "Sent")) >= 2
                                    and by_event(ev, "messageNew", "Sent"), 15, name)
    uids = {e["data"]["subject"]: e["data"]["uid"] for e in got}
    stack.kill("sidecar")
    client.select_folder("Sent")
    client.add_flags([uids["keep"]], [b"\\Flagged"])
    client.delete_messages([uids["drop"]])
    client.expunge()
    client.append("Sent", message("while down"))
    stack.start("sidecar")
    webhook_receiver.wait_for(lambda ev: "while down" in subjects(ev, "Sent"), 60, name)
    events = webhook_receiver.events(name)
    assert [e["data"]["uid"] for e in by_event(events, "messageDeleted", "Sent")] == [uids["drop"]]
    upd = by_event(events, "messageUpdated", "Sent")
    assert upd and upd[0]["data"]["changes"]["flags"] == {"added": ["\\Flagged"]}
    assert upd[0]["specialUse"] == "\\Sent"


def test_dead_letter_listed_and_resent(hooked, webhook_receiver, api, redis):
    from imapapi import delivery, events

    acc, name = hooked()
    ev = events.make_event(acc.id, "messageDeleted", {"id": "AAAAAQAAAAE", "uid": 1},
                           path="INBOX", id_parts=("dead-letter-test", time.time_ns()))
    job = {"stream": "0-1", "event": ev}
    # what the worker does after an hour of failures (the window is too long for a test)
    delivery.dead_letter(redis, ev["id"], job, webhook_receiver.url(name), 17, "HTTP 500",
                         time.time())
    listed = api.get("/v1/webhooks/dead", params={"pageSize": 1000}).json()
    entry = [d for d in listed["deadLetters"] if d["id"] == ev["id"]][0]
    assert entry["attempts"] == 17 and entry["error"] == "HTTP 500" and entry["event"] == ev
    resp = api.post(f"/v1/webhooks/dead/{ev['id']}/resend")
    assert resp.status_code == 202 and resp.json() == {"id": ev["id"], "resent": True}
    got = webhook_receiver.wait_for(lambda evs: [e for e in evs if e["id"] == ev["id"]], 15, name)
    assert got[0]["data"] == ev["data"]
    assert not [d for d in api.get("/v1/webhooks/dead").json()["deadLetters"] if d["id"] == ev["id"]]
    assert api.post(f"/v1/webhooks/dead/{ev['id']}/resend").status_code == 404
