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


def _deliver_all(r, batch):
    events.append_events(r, "acc", batch, occurrence=True)
    while wh.deliver_event(r, None, account="acc")[0] == "more":
        pass


def test_delivered_event_registered_again_is_not_posted_again(r, webhook_receiver):
    webhook_settings.save(r, {"webhooks": webhook_receiver.url("ord-dup")})
    batch = [ev(i) for i in range(1, 4)]
    _deliver_all(r, batch)
    assert wh.delivered_upto(r, "acc") == 3
    # a job for seq 2 comes back (a crash-replayed registration, a redelivered task)
    second = r.xrange(keys.events("acc"))[1][1][b"e"].decode()
    r.hset(events.JOBS, batch[1]["id"], '{"stream":"x","event":%s}' % second)
    r.rpush(keys.webhook_queue("acc"), batch[1]["id"])
    assert wh.deliver_event(r, batch[1]["id"])[0] == "duplicate"
    later = ev(4)
    _deliver_all(r, [later])
    got = webhook_receiver.received("ord-dup")
    assert [e["json"]["seq"] for e in got] == [1, 2, 3, 4]
    assert [e["json"]["id"] for e in got] == [e["id"] for e in batch + [later]]
    assert r.hlen(events.JOBS) == 0 and r.llen(keys.webhook_queue("acc")) == 0


def test_no_key_per_delivered_event(r, webhook_receiver, monkeypatch):
    from imapapi import webhook_order

    monkeypatch.setattr(webhook_order, "DRAIN_EVENTS", 1000)
    webhook_settings.save(r, {"webhooks": webhook_receiver.url("ord-keys")})
    _deliver_all(r, [ev(i) for i in range(1, 11)])
    after_ten = set(r.keys("*"))
    _deliver_all(r, [ev(i) for i in range(11, 211)])
    assert len(webhook_receiver.received("ord-keys")) == 210
    assert set(r.keys("*")) == after_ten, "delivering 200 more events added keys"
    assert r.hgetall(keys.WEBHOOK_DONE) == {b"acc": b"210"}


def test_resent_dead_letter_goes_out_below_the_cursor(r, webhook_receiver, monkeypatch):
    import dataclasses

    webhook_settings.save(r, {"webhooks": webhook_receiver.url("ord-dead")})
    monkeypatch.setattr(wh, "enqueue", lambda ids: None)
    webhook_receiver.set_mode("ord-dead", "fail")
    monkeypatch.setattr(settings, "_current", dataclasses.replace(settings.get_settings(),
                                                                 webhook_retry_window=0.0))
    first = ev(1)
    events.append_events(r, "acc", [first], occurrence=True)
    assert wh.deliver_event(r, first["id"])[0] == "dead"
    monkeypatch.setattr(settings, "_current", dataclasses.replace(settings.get_settings(),
                                                                 webhook_retry_window=3600.0))
    webhook_receiver.set_mode("ord-dead", "ok")
    _deliver_all(r, [ev(2)])
    assert wh.delivered_upto(r, "acc") == 2
    assert wh.resend_dead(r, first["id"])
    assert wh.deliver_event(r, first["id"])[0] == "sent"
    assert [e["json"]["seq"] for e in webhook_receiver.received("ord-dead")] == [2, 1]
    assert wh.delivered_upto(r, "acc") == 2   # the cursor never goes back


def test_delete_removes_the_cursor_and_a_late_finish_does_not_bring_it_back(r, webhook_receiver):
    from imapapi import accounts

    webhook_settings.save(r, {"webhooks": webhook_receiver.url("ord-del")})
    first, second = ev(1), ev(2)
    _deliver_all(r, [first])
    events.append_events(r, "acc", [second], occurrence=True)
    assert r.hexists(keys.WEBHOOK_DONE, "acc")
    accounts.delete(r, "acc")
    assert not r.hexists(keys.WEBHOOK_DONE, "acc")
    # a POST that was in flight at the delete finishes afterwards
    wh._finish(r, second["id"], sent=True, event={"account": "acc", "seq": second["seq"]})
    assert not r.hexists(keys.WEBHOOK_DONE, "acc")


def test_delete_drops_waiting_deliveries_and_a_held_lock(r, webhook_receiver):
    from imapapi import accounts

    webhook_settings.save(r, {"webhooks": webhook_receiver.url("ord-held")})
    webhook_receiver.set_mode("ord-held", "fail")
    batch = [ev(i) for i in range(1, 4)]
    events.append_events(r, "acc", batch, occurrence=True)
    assert wh.deliver_event(r, batch[0]["id"])[0] == "retry"   # the lock is now a hold
    accounts.delete(r, "acc")
    webhook_receiver.set_mode("ord-held", "ok")
    assert not r.exists(keys.webhook_queue("acc"), keys.webhook_lock("acc"))
    assert r.hlen(events.JOBS) == 0 and r.zcard(events.DUE) == 0
    assert r.hlen(wh.ATTEMPTS) == 0 and r.hlen(wh.FIRST_FAIL) == 0
    # the retry's wake-up comes anyway: nothing is POSTed, nothing comes back
    assert wh.deliver_event(r, batch[0]["id"])[0] == "gone"
    assert not r.exists(keys.webhook_queue("acc"), keys.webhook_lock("acc"))
    assert webhook_receiver.received("ord-held") == []
