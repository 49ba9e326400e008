"""The Redis outbox: states, idempotency, the sent marker, cancel, listing (real Redis)."""
from __future__ import annotations

import os
import time

import pytest
import redis as redis_lib

from imapapi import keys, outbox


@pytest.fixture
def r():
    db = int(os.environ.get("IMAPAPI_TEST_REDIS_DB", "13"))
    client = redis_lib.Redis.from_url(f"redis://127.0.0.1:6379/{db}")
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


def make(r, **kw):
    args = dict(account="acc", raw=b"Subject: x\r\n\r\nhi\r\n", message_id="<m@example.com>",
                envelope={"from": "a@example.com", "to": ["b@example.com"]})
    args.update(kw)
    return outbox.create(r, **args)


def test_create_stores_raw_once_and_indexes(r):
    qid, created = make(r)
    assert created
    item = outbox.get(r, qid)
    assert item["state"] == "queued" and item["attempts"] == 0 and item["copy"] is True
    assert item["envelope"]["to"] == ["b@example.com"] and "raw" not in item
    assert outbox.raw_message(r, qid) == b"Subject: x\r\n\r\nhi\r\n"
    assert r.zscore(keys.OUTBOX, qid) is not None


def test_idempotency_key_returns_first_queue_id(r):
    first, created = make(r, idempotency_key="k1")
    again, created_again = make(r, idempotency_key="k1", raw=b"other")
    assert created and not created_again and again == first
    assert outbox.raw_message(r, first) == b"Subject: x\r\n\r\nhi\r\n"
    assert r.zcard(keys.OUTBOX) == 1
    assert outbox.lookup_idempotent(r, "acc", "k1") == first
    assert make(r, idempotency_key="k1", account="other")[1]  # keys are per account
    assert 0 < r.ttl(keys.idempotency("acc", "k1")) <= outbox.IDEMPOTENCY_TTL


def test_claim_then_sent_marker_blocks_any_resend(r):
    qid, _ = make(r)
    assert outbox.claim(r, qid) == ("ok", 1)
    assert outbox.claim(r, qid)[0] == "busy"          # a second worker while the first sends
    assert outbox.mark_sent(r, qid, {"response": "250 ok"})
    assert outbox.claim(r, qid)[0] == "sent"          # a retried/redelivered task stops here
    item = outbox.get(r, qid)
    assert item["state"] == "sent" and item["response"] == "250 ok" and item["sentAt"]
    assert 0 < r.ttl(keys.outbox_item(qid)) <= outbox.RETENTION


def test_deferred_is_claimable_when_due_and_counts_attempts(r):
    qid, _ = make(r)
    outbox.claim(r, qid)
    assert outbox.mark_deferred(r, qid, {"message": "451 later", "transient": True}, time.time() + 30)
    item = outbox.get(r, qid)
    assert item["state"] == "deferred" and item["lastError"]["message"] == "451 later"
    assert outbox.claim(r, qid) == ("early", 0)      # a duplicate task before nextAttempt
    r.hset(keys.outbox_item(qid), "nextAttempt", time.time())
    assert outbox.claim(r, qid) == ("ok", 2)


def test_future_send_at_is_not_claimed_early(r):
    qid, _ = make(r, send_at=time.time() + 3600)
    assert outbox.claim(r, qid) == ("early", 0)


def test_overdue_finds_items_no_task_took(r):
    waiting, _ = make(r)
    later, _ = make(r, send_at=time.time() + 3600)
    done, _ = make(r)
    outbox.claim(r, done)
    outbox.mark_sent(r, done, {"response": "250"})
    assert outbox.overdue(r) == []
    soon = time.time() + outbox.PICKUP_GRACE + 1
    assert outbox.overdue(r, now=soon) == [(waiting, "acc")]
    assert outbox.overdue(r, now=soon) == []          # pushed out while its new task runs
    assert r.zscore(keys.OUTBOX_DUE, done) is None
    found = outbox.overdue(r, now=time.time() + 7200)
    assert sorted(q for q, _ in found) == sorted([waiting, later])


def test_expired_sending_lease_can_be_reclaimed(r):
    qid, _ = make(r)
    assert outbox.claim(r, qid, lease=-1)[0] == "ok"   # a worker that died mid-send
    assert outbox.claim(r, qid) == ("ok", 2)


def test_failed_is_final(r):
    qid, _ = make(r)
    outbox.claim(r, qid)
    assert outbox.mark_failed(r, qid, {"message": "550 no", "transient": False})
    assert outbox.claim(r, qid)[0] == "failed"
    assert outbox.cancel(r, qid) == "failed"


def test_cancel_only_while_waiting(r):
    qid, _ = make(r, send_at=time.time() + 3600)
    assert outbox.cancel(r, qid) == "ok"
    assert outbox.claim(r, qid)[0] == "cancelled"
    assert outbox.cancel(r, "nope") == "gone"
    busy, _ = make(r)
    outbox.claim(r, busy)
    assert outbox.cancel(r, busy) == "sending"


def test_list_page_filters_and_drops_expired_entries(r):
    a, _ = make(r)
    b, _ = make(r, account="other")
    gone, _ = make(r)
    r.delete(keys.outbox_item(gone))
    page = outbox.list_page(r, 0, 20)
    assert [m["queueId"] for m in page["messages"]] == [a, b] and page["total"] == 2
    assert r.zscore(keys.OUTBOX, gone) is None
    only = outbox.list_page(r, 0, 20, account="other")
    assert [m["queueId"] for m in only["messages"]] == [b]
    assert outbox.list_page(r, 0, 20, state="sent")["messages"] == []
    assert "raw" not in page["messages"][0] and page["messages"][0]["created"].endswith("Z")


def test_wait_returns_on_state_change(r):
    qid, _ = make(r)
    outbox.claim(r, qid)
    start = time.monotonic()
    assert outbox.wait(r, qid, timeout=0.2)["state"] == "sending"
    assert time.monotonic() - start >= 0.2
    outbox.mark_sent(r, qid, {"response": "250"})
    assert outbox.wait(r, qid, timeout=5)["state"] == "sent"


def test_far_scheduled_sends_are_due_exactly_at_send_at(r):
    soon, _ = make(r, send_at=time.time() + 60)
    far_at = time.time() + 3600
    far, _ = make(r, send_at=far_at)
    assert not outbox.by_sweeper(time.time() + 60) and outbox.by_sweeper(far_at)
    assert r.zscore(keys.OUTBOX_DUE, far) == pytest.approx(far_at)
    assert outbox.overdue(r, now=far_at - 1) == [(soon, "acc")]   # soon's ETA task was lost
    assert outbox.overdue(r, now=far_at + 0.01) == [(far, "acc")]
    assert outbox.claim(r, far)[0] == "early"                      # a task before its time idles
