"""IMAP tasks called with reply_id: refusals are answered on the caller's reply key."""
import hashlib
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


def test_scripts_run_by_sha_fall_back_to_eval_and_survive_a_dropped_connection(r, monkeypatch):
    from celery_tasks.imap import Scripts

    # a script this Redis has not seen (no SCRIPT FLUSH: the server is shared)
    source = f"-- {wire.new_id()}\nreturn {{ARGV[1], redis.call('PING')}}"
    sha = r.script_load(source)
    scripts = Scripts(r)
    assert rpc.run_script(scripts, source, sha, 0, "a") == [b"a", b"PONG"]
    fresh = source + " "   # same effect, unknown SHA: EVALSHA gets NOSCRIPT, EVAL runs it
    assert rpc.run_script(scripts, fresh, hashlib.sha1(fresh.encode()).hexdigest(), 0,
                          "b") == [b"b", b"PONG"]
    # Redis drops the connection the thread keeps: the client's own call runs the script,
    # and the kept connection reconnects on its next use
    kept = scripts._connection()
    kept.send_command("CLIENT", "ID")
    r.client_kill_filter(_id=kept.read_response())
    calls = []
    evalsha = r.evalsha
    monkeypatch.setattr(r, "evalsha", lambda *a: calls.append(a) or evalsha(*a))
    assert rpc.run_script(scripts, source, sha, 0, "c") == [b"c", b"PONG"]
    assert len(calls) == 1
    assert rpc.run_script(scripts, source, sha, 0, "d") == [b"d", b"PONG"]
    assert len(calls) == 1 and scripts._connection() is kept
