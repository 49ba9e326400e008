"""The plain function behind imapapi.submit, against real Redis and the real aiosmtpd fixture."""
from __future__ import annotations

import json
import os

import pytest
import redis as redis_lib

from imapapi import accounts, compose, keys, outbox, settings

URL = f"redis://127.0.0.1:6379/{int(os.environ.get('IMAPAPI_TEST_REDIS_DB', '13'))}"


def deliver(*args, **kwargs):
    return _task_module().deliver(*args, **kwargs)


def backoff(attempt):
    return _task_module().backoff(attempt)


def _task_module():
    # The task module builds the Celery app on import, which needs a Redis URL configured.
    if not settings.get_settings().redis_url:
        settings.replace(redis_url=URL)
    from celery_tasks import submit

    return submit


@pytest.fixture
def r():
    client = redis_lib.Redis.from_url(URL)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def item(r, smtp):
    accounts.upsert(r, {"account": "acc", "smtp": smtp.account_config(secure=True)})
    payload = {"from": {"address": "me@example.com"}, "to": [{"address": "to@example.com"}],
               "bcc": [{"address": "b@example.com"}], "subject": "unit", "text": "hi"}
    raw, mid = compose.build(payload)
    qid, _ = outbox.create(r, account="acc", raw=raw, message_id=mid,
                           envelope=compose.envelope(payload), copy=False)
    return qid


def events(r) -> list[str]:
    return [json.loads(f[b"e"])["event"] for _id, f in r.xrange(keys.events("acc"))]


def test_backoff_doubles_and_caps():
    assert [backoff(n) for n in (1, 2, 3, 4)] == [2, 4, 8, 16]
    assert backoff(30) == 600


def test_sent_once_even_when_run_again(r, smtp, item):
    assert deliver(r, "acc", item)["state"] == "sent"
    assert deliver(r, "acc", item) == {"state": "sent"}   # a redelivered task
    [got] = smtp.wait_for(1)
    assert got.rcpt_tos == ["to@example.com", "b@example.com"] and smtp.attempts == 1
    stored = outbox.get(r, item)
    assert stored["state"] == "sent" and stored["response"].startswith("250") and stored["finished"]
    assert events(r) == ["messageSent"]


def test_transient_defers_then_sends(r, smtp, item):
    smtp.reply_next("451 4.3.0 busy")
    assert deliver(r, "acc", item) == {"state": "deferred", "retryIn": 2.0}
    stored = outbox.get(r, item)
    assert stored["lastError"]["code"] == 451 and stored["lastError"]["transient"]
    assert deliver(r, "acc", item) == {"state": "early"}   # not before nextAttempt
    r.hset(keys.outbox_item(item), "nextAttempt", 0)
    assert deliver(r, "acc", item)["state"] == "sent"
    assert outbox.get(r, item)["attempts"] == 2 and len(smtp.received) == 1
    assert events(r) == ["messageDeliveryError", "messageSent"]


def test_permanent_fails_for_good(r, smtp, item):
    smtp.reply_next("550 5.1.1 no such user")
    assert deliver(r, "acc", item) == {"state": "failed"}
    assert deliver(r, "acc", item) == {"state": "failed"}
    assert smtp.attempts == 1 and smtp.received == []
    assert events(r) == ["messageFailed"]


def test_transient_gives_up_after_max_attempts(r, smtp, item):
    smtp.reply_next("421 4.7.0 closing")
    assert deliver(r, "acc", item, max_attempts=1) == {"state": "failed"}
    assert outbox.get(r, item)["state"] == "failed"


def test_cancelled_item_is_not_sent(r, smtp, item):
    assert outbox.cancel(r, item) == "ok"
    assert deliver(r, "acc", item) == {"state": "cancelled"}
    assert smtp.attempts == 0


def test_account_without_smtp_fails(r, smtp, item):
    accounts.upsert(r, {"account": "acc"})
    assert deliver(r, "acc", item) == {"state": "failed"}
    assert "SMTP" in outbox.get(r, item)["lastError"]["message"] and smtp.attempts == 0


def test_sweep_reenqueues_lost_items(r, item):
    r.zadd(keys.OUTBOX_DUE, {item: 0})    # as if its task message was lost long ago
    assert _task_module().sweep(r) == 1
    assert r.llen("submit") == 1           # a new imapapi.submit message on its own queue
    assert _task_module().sweep(r) == 0    # not again while that one is on its way
