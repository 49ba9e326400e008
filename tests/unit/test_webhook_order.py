"""Per-account order, `seq` and per-occurrence ids on the real Redis and a real local receiver."""
import time

import pytest

from imapapi import delivery as wh
from imapapi import events, keys, settings, webhook_settings


@pytest.fixture
def r(redis, redis_url):
    settings.replace(redis_url=redis_url, webhook_timeout=1.0)
    redis.flushdb()
    for acc in ("acc", "other"):
        redis.hset(keys.account(acc), mapping={"account": acc, "state": "connected"})
    yield redis
    redis.flushdb()


def ev(uid, account="acc", event="messageNew"):
    return events.make_event(account, event, {"uid": uid}, path="INBOX", id_parts=(7, uid))


def test_seq_is_gap_free_and_in_payload_and_feed(r):
    batch = [ev(1), ev(2), ev(3)]
    events.append_events(r, "acc", batch[:2])
    events.append_events(r, "acc", batch[2:], deliver=lambda e: False)
    assert [e["seq"] for e in batch] == [1, 2, 3]
    feed, _ = events.read_events(r, "acc")
    assert [(e["seq"], e["id"]) for e in feed] == [(e["seq"], e["id"]) for e in batch]
    assert list(feed[0])[:2] == ["id", "seq"]


def test_ids_name_an_occurrence_not_the_content(r):
    first, again = ev(1), ev(1)
    events.append_events(r, "acc", [first], occurrence=True)
    events.append_events(r, "acc", [again], occurrence=True)
    assert first["id"] != again["id"], "the same change seen twice is two occurrences"
    assert r.hlen(events.JOBS) == 2
    # emit()-style events keep their content id: a retried write is the same occurrence
    plain1, plain2 = ev(9), ev(9)
    events.append_events(r, "acc", [plain1])
    events.append_events(r, "acc", [plain2])
    assert plain1["id"] == plain2["id"] == ev(9)["id"]


def test_only_the_queue_head_has_a_lease(r):
    events.append_events(r, "acc", [ev(i) for i in range(1, 6)], occurrence=True)
    assert r.llen(keys.webhook_queue("acc")) == 5
    assert r.zcard(events.DUE) == 1   # one stalled account -> one re-enqueue, not five


def test_one_account_in_order_and_a_failing_one_holds_back_only_itself(r, webhook_receiver):
    webhook_settings.save(r, {"webhooks": webhook_receiver.url("ord-default")})
    r.hset(keys.account("other"), "webhooks", '"%s"' % webhook_receiver.url("ord-other"))
    webhook_receiver.set_mode("ord-default", "fail")
    mine = [ev(i) for i in range(1, 4)]
    events.append_events(r, "acc", mine, occurrence=True)
    assert wh.deliver_event(r, mine[0]["id"]) == ("retry", 2.0)
    later = ev(4)
    events.append_events(r, "acc", [later], occurrence=True)
    # the wake-up for the newer event neither jumps the queue nor retries early
    assert wh.deliver_event(r, later["id"])[0] == "busy"
    theirs = [ev(i, account="other") for i in range(1, 3)]
    events.append_events(r, "other", theirs, occurrence=True)
    assert wh.deliver_event(r, theirs[0]["id"])[0] == "sent"
    assert [e["json"]["seq"] for e in webhook_receiver.received("ord-other")] == [1, 2]
    webhook_receiver.set_mode("ord-default", "ok")
    r.delete(keys.webhook_lock("acc"))   # the retry is due
    assert wh.deliver_event(r, mine[0]["id"])[0] == "sent"
    got = webhook_receiver.received("ord-default")
    assert [e["json"]["id"] for e in got] == [e["id"] for e in mine + [later]]
    assert [e["json"]["seq"] for e in got] == [1, 2, 3, 4]
    assert r.llen(keys.webhook_queue("acc")) == 0 and r.zcard(events.DUE) == 0


def test_a_killed_drainer_is_taken_over(r, webhook_receiver, monkeypatch):
    webhook_settings.save(r, {"webhooks": webhook_receiver.url("ord-killed")})
    batch = [ev(i) for i in range(1, 3)]
    events.append_events(r, "acc", batch, occurrence=True)
    r.set(keys.webhook_lock("acc"), "someone", px=50)   # a worker killed mid-drain
    assert wh.deliver_event(r, batch[0]["id"])[0] == "held"
    time.sleep(0.1)
    sent = []
    monkeypatch.setattr(wh, "enqueue", lambda ids: sent.extend(ids))
    assert wh.sweep(r, now=time.time() + events.DELIVERY_LEASE + 1) == 1
    assert sent == [batch[0]["id"]]
    assert wh.deliver_event(r, sent[0])[0] == "sent"
    assert len(webhook_receiver.received("ord-killed")) == 2


def test_drain_budget_then_more(r, webhook_receiver, monkeypatch):
    from imapapi import webhook_order

    webhook_settings.save(r, {"webhooks": webhook_receiver.url("ord-budget")})
    monkeypatch.setattr(webhook_order, "DRAIN_EVENTS", 2)
    batch = [ev(i) for i in range(1, 6)]
    events.append_events(r, "acc", batch, occurrence=True)
    assert wh.deliver_event(r, None, account="acc") == ("more", 0.0)
    assert wh.deliver_event(r, None, account="acc") == ("more", 0.0)
    assert wh.deliver_event(r, None, account="acc")[0] == "sent"
    assert [e["json"]["seq"] for e in webhook_receiver.received("ord-budget")] == [1, 2, 3, 4, 5]
