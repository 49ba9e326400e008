"""Redis footprint (issue 15): a deleted account leaves no key, field or member behind."""
from __future__ import annotations

import time

import pytest

from imapapi import keys, protolog
from tests.checks import wait_until

pytestmark = pytest.mark.integration

# Shared hashes/sets that name accounts as fields or members.
SHARED = (keys.ACCOUNTS, keys.OWNERS, keys.LEASES, keys.LOGGED, keys.WEBHOOK_DONE)


def mentions(redis, account_id: str) -> list[str]:
    """Every key whose name holds the account id, and every shared field/member naming it."""
    needle = account_id.encode()
    found = [k.decode() for k in redis.scan_iter(count=1000) if needle in k]
    for key in SHARED:
        kind = redis.type(key)
        if kind == b"hash" and redis.hexists(key, account_id):
            found.append(f"{key} field")
        elif kind == b"set" and redis.sismember(key, account_id):
            found.append(f"{key} member")
    return sorted(found)


def test_delete_leaves_no_key_behind(api, new_account, redis):
    acc = new_account()
    acc.append(b"From: a@example.com\r\nSubject: footprint\r\n\r\nhello\r\n")
    messages = wait_until(lambda: api.get(f"/v1/account/{acc.id}/messages",
                                          params={"path": "INBOX"}).json().get("messages"), 20)
    assert api.get(f"/v1/account/{acc.id}/message/{messages[0]['id']}").status_code == 200
    assert api.get(f"/v1/account/{acc.id}/mailboxes").status_code == 200
    before = mentions(redis, acc.id)
    assert keys.account(acc.id) in before and keys.mailbox_registry(acc.id) in before, before

    assert api.delete(f"/v1/account/{acc.id}").status_code == 200
    # the sidecar logs out and releases the lease (after which nothing may write again)
    wait_until(lambda: not redis.hexists(keys.LEASES, acc.id), 20)
    time.sleep(0.5)
    assert mentions(redis, acc.id) == []


def test_delete_of_a_logged_account_leaves_no_key_behind(api, new_account, redis):
    """Protocol logging on: the sidecar logs its LOGOUT after the delete purged the keys (a
    late write by design); it must not bring the log list or the LOGGED member back."""
    acc = new_account()
    resp = api.post("/v1/settings", json={"logs": {"accounts": [acc.id], "maxLogLines": 500,
                                                   "resetLoggedAccounts": True}})
    assert resp.status_code == 200
    try:
        wait_until(lambda: redis.llen(protolog.log_key(acc.id)) > 0, 30, "a protocol log")
        assert api.delete(f"/v1/account/{acc.id}").status_code == 200
        wait_until(lambda: not redis.hexists(keys.LEASES, acc.id), 20)
        time.sleep(0.5)
        assert mentions(redis, acc.id) == []
    finally:
        api.post("/v1/settings", json={"logs": {"accounts": []}})


def test_readded_account_does_not_resolve_old_ids(api, new_account, dovecot, redis):
    acc = new_account()
    acc.append(b"From: a@example.com\r\nSubject: old id\r\n\r\nhello\r\n")
    old = wait_until(lambda: api.get(f"/v1/account/{acc.id}/messages",
                                     params={"path": "INBOX"}).json().get("messages"), 20)[0]
    assert api.delete(f"/v1/account/{acc.id}").status_code == 200
    wait_until(lambda: not redis.hexists(keys.LEASES, acc.id), 20)
    assert api.post("/v1/account", json=acc.payload).status_code == 200
    wait_until(lambda: api.get(f"/v1/account/{acc.id}").json().get("state") == "connected", 30)
    new = wait_until(lambda: api.get(f"/v1/account/{acc.id}/messages",
                                     params={"path": "INBOX"}).json().get("messages"), 20)[0]
    assert new["id"] != old["id"]       # numbers start at a new random base
    resp = api.get(f"/v1/account/{acc.id}/message/{old['id']}")
    assert resp.status_code == 404, resp.text
    api.delete(f"/v1/account/{acc.id}")
