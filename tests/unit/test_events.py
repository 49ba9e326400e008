"""Event model and webhook delivery function: ids, atomic commit, cursor reads, POST outcomes.

Uses the real Redis (the `redis` fixture) and a real local HTTP receiver; no Celery worker.
"""
import dataclasses
import hashlib
import hmac
import json
import time

import pytest

from imapapi import delivery as wh
from imapapi import events, keys, settings, webhook_settings


@pytest.fixture
def r(redis, redis_url):
    settings.replace(redis_url=redis_url, webhook_timeout=1.0)
    redis.flushdb()
    redis.hset(keys.account("acc"), mapping={"account": "acc", "state": "connected"})
    yield redis
    redis.flushdb()


def ev(uid, event="messageNew", path="INBOX"):
    return events.make_event("acc", event, {"uid": uid}, path=path, id_parts=(7, uid))


def test_ids_are_deterministic():
    a, b = ev(5), ev(5)
    assert a["id"] == b["id"] and a["id"] != ev(6)["id"]
    assert a["id"] != ev(5, event="messageDeleted")["id"]
    assert set(a) == {"id", "account", "path", "event", "date", "data"}
    assert "specialUse" in events.make_event("acc", "messageNew", {}, path="Sent", special_use="\\Sent")


def test_commit_is_atomic_with_state(r):
    key = keys.folder_state("acc", "INBOX")
    events.append_events(r, "acc", [ev(1), ev(2)], [(key, {"version": "1", "uidNext": "3"}, None)])
    assert r.hget(key, "uidNext") == b"3"
    assert r.xlen(keys.events("acc")) == 2
    # a writer that read version 0 loses: nothing at all is written
    with pytest.raises(events.StaleState):
        events.append_events(r, "acc", [ev(3)], [(key, {"version": "2", "uidNext": "4"}, "0")])
    assert r.xlen(keys.events("acc")) == 2 and r.hget(key, "uidNext") == b"3"
    events.append_events(r, "acc", [ev(3)], [(key, {"version": "2", "x": events.DELETE}, "1")])
    assert r.hget(key, "version") == b"2"


def test_jobs_registered_only_when_wanted_and_once(r):
    events.append_events(r, "acc", [ev(1)], deliver=lambda e: False)
    assert r.hlen(events.JOBS) == 0
    events.append_events(r, "acc", [ev(2), ev(2)])
    assert r.hlen(events.JOBS) == 1 and r.zcard(events.DUE) == 1
    job = json.loads(r.hget(events.JOBS, ev(2)["id"]))
    assert job["event"]["data"] == {"uid": 2} and job["stream"]
    # a retried write of a content-id event is that event: one feed entry, its first seq
    again = ev(1)
    events.append_events(r, "acc", [again])
    feed, _ = events.read_events(r, "acc")
    assert [(e["data"]["uid"], e["seq"]) for e in feed] == [(1, 1), (2, 2)]
    assert again["seq"] == 1 and r.hlen(events.JOBS) == 1


def test_read_events_cursor(r):
    events.append_events(r, "acc", [ev(i) for i in range(1, 6)])
    first, cur = events.read_events(r, "acc", None, count=2)
    assert [e["data"]["uid"] for e in first] == [1, 2]
    rest, cur2 = events.read_events(r, "acc", cur, count=10)
    assert [e["data"]["uid"] for e in rest] == [3, 4, 5]
    none, cur3 = events.read_events(r, "acc", cur2)
    assert none == [] and cur3 == cur2


def test_event_filter():
    assert webhook_settings.event_allowed(None, "messageNew")
    assert webhook_settings.event_allowed(["*"], "messageNew")
    assert not webhook_settings.event_allowed([], "messageNew")
    assert webhook_settings.event_allowed(["messageNew"], "messageNew")
    assert not webhook_settings.event_allowed(["messageDeleted"], "messageNew")


def _job(r, receiver, name, uid=1):
    webhook_settings.save(r, {"webhooks": receiver.url(name), "webhookSecret": "s3cret"})
    e = ev(uid)
    events.append_events(r, "acc", [e])
    return e


def test_deliver_ok_signed_and_idempotent(r, webhook_receiver):
    e = _job(r, webhook_receiver, "ok1")
    assert wh.deliver_event(r, e["id"]) == ("sent", 0.0)
    got = webhook_receiver.received("ok1")
    assert len(got) == 1 and got[0]["json"]["id"] == e["id"]
    hdr = got[0]["headers"]
    assert hdr["x-imapapi-event-id"] == e["id"]
    # signed material: "<X-IMAPAPI-Timestamp>.<raw body>" (a replay shows an old timestamp)
    ts = hdr["x-imapapi-timestamp"]
    assert abs(int(ts) - time.time()) < 60
    assert hdr["x-imapapi-signature"] == hmac.new(
        b"s3cret", ts.encode() + b"." + got[0]["body"], hashlib.sha256).hexdigest()
    # a duplicate wake-up (re-committed job, worker redelivery) does not POST again
    events.append_events(r, "acc", [e])
    assert wh.deliver_event(r, e["id"])[0] in ("duplicate", "gone")
    assert len(webhook_receiver.received("ok1")) == 1


def test_deliver_failing_then_recovering(r, webhook_receiver):
    e = _job(r, webhook_receiver, "flaky")
    webhook_receiver.set_mode("flaky", "fail")
    outcome, countdown = wh.deliver_event(r, e["id"])
    assert outcome == "retry" and countdown == 2.0
    # the account is held until the retry is due: an early wake-up only says when to come back
    outcome, countdown = wh.deliver_event(r, e["id"])
    assert outcome == "busy" and 1.0 < countdown <= 2.0
    r.delete(keys.webhook_lock("acc"))   # as if the 2 s had passed
    assert wh.deliver_event(r, e["id"]) == ("retry", 4.0)
    webhook_receiver.set_mode("flaky", "ok")
    r.delete(keys.webhook_lock("acc"))
    assert wh.deliver_event(r, e["id"])[0] == "sent"
    assert r.hlen(events.JOBS) == 0 and r.zcard(events.DUE) == 0


def test_hung_receiver_times_out(r, webhook_receiver):
    e = _job(r, webhook_receiver, "hung")
    webhook_receiver.set_mode("hung", "hang")
    t0 = time.time()
    assert wh.deliver_event(r, e["id"])[0] == "retry"
    assert time.time() - t0 < 3.0


def test_dead_letter_and_resend(r, webhook_receiver, monkeypatch):
    e = _job(r, webhook_receiver, "dead")
    webhook_receiver.set_mode("dead", "fail")
    monkeypatch.setattr(settings, "_current", dataclasses.replace(settings.get_settings(),
                                                                 webhook_retry_window=0.0))
    monkeypatch.setattr(wh, "enqueue", lambda ids: None)
    assert wh.deliver_event(r, e["id"])[0] == "dead"
    total, rows = wh.list_dead(r)
    assert total == 1 and rows[0]["id"] == e["id"] and rows[0]["error"] == "HTTP 500"
    webhook_receiver.set_mode("dead", "ok")
    assert wh.resend_dead(r, e["id"])
    assert r.llen(keys.DEAD_LETTERS) == 0
    monkeypatch.setattr(settings, "_current", dataclasses.replace(settings.get_settings(),
                                                                 webhook_retry_window=3600.0))
    assert wh.deliver_event(r, e["id"])[0] == "sent"


def test_sweep_claims_expired_leases(r, monkeypatch):
    sent = []
    monkeypatch.setattr(wh, "enqueue", lambda ids: sent.extend(ids))
    events.append_events(r, "acc", [ev(1)])
    assert wh.sweep(r) == 0
    assert wh.sweep(r, now=time.time() + events.DELIVERY_LEASE + 1) == 1
    assert sent == [ev(1)["id"]]
    assert wh.sweep(r, now=time.time() + events.DELIVERY_LEASE + 1) == 0   # claimed: new lease


def test_split_auth():
    url, auth = wh.split_auth("http://user:pw@127.0.0.1:8080/x?y=1")
    assert url == "http://127.0.0.1:8080/x?y=1" and auth.startswith("Basic ")
    assert wh.split_auth("http://127.0.0.1/x") == ("http://127.0.0.1/x", None)


def test_receiver_slots_limit_and_expire(r, webhook_receiver, monkeypatch):
    e = _job(r, webhook_receiver, "slots")
    key = wh.busy_key(webhook_receiver.url("slots"))
    # four slots held by a worker that was killed mid-POST ...
    r.zadd(key, {f"dead{i}": time.time() for i in range(wh.PER_TARGET)})
    assert wh.deliver_event(r, e["id"]) == ("busy", wh.BUSY_DELAY)
    # ... are released once they are older than the POST timeout
    r.zadd(key, {f"dead{i}": time.time() - 60 for i in range(wh.PER_TARGET)})
    assert wh.deliver_event(r, e["id"])[0] == "sent"
    assert r.zcard(key) == 0


def test_nothing_written_for_a_deleted_account(r):
    r.delete(keys.account("acc"))
    key = keys.folder_state("acc", "INBOX")
    assert events.append_events(r, "acc", [ev(1)], [(key, {"version": "1"}, None)]) == []
    assert not r.exists(key) and not r.exists(keys.events("acc")) and r.hlen(events.JOBS) == 0


def test_webhook_only_events_take_a_seq_but_no_feed_entry(r):
    login, first, later = ev(1, event="authenticationSuccess"), ev(2), ev(3)
    events.append_events(r, "acc", [login], feed=lambda e: False)
    assert not r.exists(keys.events("acc")), "an idle account keeps no stream"
    assert json.loads(r.hget(events.JOBS, login["id"]))["event"]["seq"] == 1
    events.append_events(r, "acc", [first], feed=lambda e: False, deliver=lambda e: False)
    assert r.hlen(events.JOBS) == 1 and not r.exists(keys.events("acc"))
    events.append_events(r, "acc", [later])
    feed, _ = events.read_events(r, "acc")
    assert [(e["data"]["uid"], e["seq"]) for e in feed] == [(3, 3)]


def test_account_events_within_one_second_are_two_occurrences(r, monkeypatch):
    monkeypatch.setattr(events, "wanted_for", lambda *a: True)
    monkeypatch.setattr(events.delivery, "enqueue", lambda ids: None)
    first = events.emit_account_event(r, "acc", "authenticationSuccess", {"user": "u"})
    second = events.emit_account_event(r, "acc", "authenticationSuccess", {"user": "u"})
    assert first["id"] != second["id"]
    assert r.hexists(events.JOBS, first["id"]) and r.hexists(events.JOBS, second["id"])
