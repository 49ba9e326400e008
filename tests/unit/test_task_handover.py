"""IMAP tasks called with reply_id: refusals are answered on the caller's reply key."""
import os

import pytest

from imapapi import keys, rpc, settings, wire


@pytest.fixture()
def r(monkeypatch):
    db = int(os.environ.get("IMAPAPI_TEST_REDIS_DB", "13"))
    monkeypatch.setattr(settings, "_current", settings.Settings(redis_url=f"redis://127.0.0.1:6379/{db}"))
    settings.get_redis.cache_clear()
    yield settings.get_redis()
    settings.get_redis.cache_clear()


def test_unknown_account_is_answered_on_the_reply_key(r):
    from celery_tasks.imap import run_op

    reply_id = wire.new_id()
    out = run_op("messages.list", "handover-no-such-account", reply_id=reply_id, path="INBOX")
    assert out == {"ok": True, "result": {"forwarded": reply_id}}
    with pytest.raises(Exception) as exc_info:
        rpc.wait(r, reply_id, timeout=1)
    assert exc_info.value.status == 404 and exc_info.value.code == "AccountNotFound"


def test_not_connected_account_is_answered_with_its_state(r):
    from celery_tasks.imap import run_op

    r.hset(keys.account("handover-acct"), mapping={"account": "handover-acct", "state": "connecting"})
    try:
        reply_id = wire.new_id()
        run_op("messages.list", "handover-acct", reply_id=reply_id, path="INBOX")
        with pytest.raises(Exception) as exc_info:
            rpc.wait(r, reply_id, timeout=1)
        assert exc_info.value.status == 503 and exc_info.value.extra["state"] == "connecting"
    finally:
        r.delete(keys.account("handover-acct"))


def test_without_reply_id_the_envelope_carries_the_error(r):
    from celery_tasks.imap import run_op

    out = run_op("messages.list", "handover-no-such-account", path="INBOX")
    assert out["ok"] is False and out["error"]["code"] == "AccountNotFound"
