"""The account task functions behind imapapi.accounts.* (called directly, as the worker does)."""
from __future__ import annotations

import copy

import pytest

from imapapi import accounts, errors, keys
from imapapi import settings as settings_mod

from .api_helpers import SEED


class _Tasks:
    """celery_tasks.accounts, imported once settings name the test Redis (the Celery app is lazy)."""

    def __getattr__(self, name):
        from celery_tasks import accounts as module

        return getattr(module, name)


tasks = _Tasks()


@pytest.fixture(autouse=True)
def r(redis, redis_url):
    previous = settings_mod.get_settings()
    settings_mod.replace(redis_url=redis_url)
    redis.flushdb()
    yield redis
    settings_mod.configure(previous)


@pytest.mark.parametrize("stored, sent, merged", [
    ({"host": "a", "port": 1}, {"port": 2}, {"host": "a", "port": 2}),
    ({"auth": {"user": "u", "pass": "p"}}, {"auth": {"user": "v"}}, {"auth": {"user": "v", "pass": "p"}}),
    ({"auth": {"user": "u", "pass": "p"}}, {"auth": {"user": "u", "accessToken": "t"}},
     {"auth": {"user": "u", "accessToken": "t"}}),
    ({"auth": {"user": "u", "pass": "p"}}, {"useAuthServer": True}, {"useAuthServer": True}),
    ({"useAuthServer": True}, {"auth": {"user": "u", "pass": "p"}}, {"auth": {"user": "u", "pass": "p"}}),
    ({"tls": {"rejectUnauthorized": False, "minVersion": "TLSv1.2"}}, {"tls": {"rejectUnauthorized": True}},
     {"tls": {"rejectUnauthorized": True}}),
    ({"host": "a"}, False, False),
    (False, {"host": "b", "port": 1}, {"host": "b", "port": 1}),
])
def test_merge_config(stored, sent, merged):
    assert tasks.merge_config(stored, sent) == merged


def test_task_validates_like_the_api(r):
    bad = copy.deepcopy(SEED)
    bad["imap"]["port"] = "993"
    envelope = tasks.upsert_task(data=bad)
    assert envelope["ok"] is False
    error = errors.from_dict(envelope["error"])
    assert error.status == 400 and error.body()["fields"] == [
        {"key": "imap.port", "message": "Not a valid integer."}]
    assert not r.exists(keys.account("example"))


def test_task_upsert_update_delete_roundtrip(r):
    assert tasks.upsert_task(data=SEED) == {"ok": True, "result": {"account": "example", "state": "new"}}
    assert tasks.upsert_task(data={"name": "B"}, update=True, account="example")["ok"]
    record = accounts.get_record(r, "example")
    assert record["name"] == "B" and record["imap"]["auth"]["pass"] == "verysecret"
    missing = tasks.upsert_task(data={"name": "B"}, update=True, account="nope")
    assert missing["error"]["code"] == "AccountNotFound"
    assert tasks.delete_task(account="example") == {"ok": True, "result": {"account": "example",
                                                                            "deleted": True}}
    assert tasks.delete_task(account="example")["error"]["status"] == 404


def test_update_that_breaks_the_record_is_rejected(r):
    tasks.upsert(r, SEED)
    with pytest.raises(errors.ApiError) as exc:
        tasks.upsert(r, {"imap": {"auth": {"user": "x", "pass": "y"}, "useAuthServer": True}},
                     update=True, account="example")
    assert exc.value.status == 400
    assert accounts.get_record(r, "example")["imap"]["auth"]["user"] == "me@example.com"


def test_reconnect_publishes(r):
    tasks.upsert(r, SEED)
    pubsub = r.pubsub()
    pubsub.subscribe(keys.ACCOUNTS_CHANNEL)
    pubsub.get_message(timeout=1)
    assert tasks.reconnect(r, "example") == {"reconnect": True}
    assert pubsub.get_message(timeout=2)["data"] == b"example"
    assert tasks.reconnect(r, "example", False) == {"reconnect": False}
    pubsub.close()


def test_update_with_empty_path_goes_back_to_all_folders(r):
    tasks.upsert(r, {**SEED, "path": "INBOX"})
    tasks.upsert(r, {"name": "x"}, update=True, account="example")
    assert accounts.get_record(r, "example")["path"] == "INBOX"
    tasks.upsert(r, {"path": ""}, update=True, account="example")
    assert "path" not in accounts.get_record(r, "example")


def test_payload_by_reference_is_taken_once(r):
    from imapapi.schemas import stash_payload

    ref = stash_payload(r, SEED)
    assert tasks.upsert_task(data_ref=ref)["result"] == {"account": "example", "state": "new"}
    again = tasks.upsert_task(data_ref=ref)
    assert again["error"]["status"] == 400 and again["error"]["code"] == "PayloadExpired"
    assert not r.keys("ia:pending:*")
