"""Account records on the real Redis: upsert keeps notifyFrom and state, replaces settings."""
import os
import time

import pytest
import redis as redis_lib

from imapapi import accounts


@pytest.fixture()
def r():
    db = int(os.environ.get("IMAPAPI_TEST_REDIS_DB", "13"))
    client = redis_lib.Redis(host="127.0.0.1", port=6379, db=db)
    yield client
    for key in client.scan_iter("iad:store-test-*"):
        client.delete(key)
    client.srem("ia:accounts", "store-test-a")


def test_repost_keeps_notify_from_and_state(r):
    acc = {"account": "store-test-a", "name": "A", "imap": {"host": "h", "port": 1}}
    assert accounts.upsert(r, acc)["state"] == "new"
    first = accounts.get_record(r, "store-test-a")["notifyFrom"]
    accounts.set_state(r, "store-test-a", "connected")
    time.sleep(0.01)
    assert accounts.upsert(r, {**acc, "name": "B"})["state"] == "existing"
    record = accounts.get_record(r, "store-test-a")
    assert record["notifyFrom"] == first
    assert record["name"] == "B"
    assert record["state"] == "connected"


def test_explicit_notify_from_replaces_and_dropped_settings_go(r):
    acc = {"account": "store-test-a", "name": "A", "imap": {"host": "h", "port": 1},
           "smtp": {"host": "s", "port": 2}}
    accounts.upsert(r, acc)
    accounts.upsert(r, {"account": "store-test-a", "name": "A", "imap": {"host": "h", "port": 1},
                        "notifyFrom": "2020-01-01T00:00:00.000Z"})
    record = accounts.get_record(r, "store-test-a")
    assert record["notifyFrom"] == "2020-01-01T00:00:00.000Z"
    assert "smtp" not in record
