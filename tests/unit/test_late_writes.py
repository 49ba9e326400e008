"""Writes that may land after an account's delete (a running op, a late API call) create nothing."""
from imapapi import accounts, keys
from sidecar.ops.mailboxes import store_listing

ENTRY = {"path": "INBOX", "name": "INBOX", "specialUse": "\\Inbox", "messages": 1}


def test_listing_stored_only_while_the_account_exists(redis):
    account = "unit-late-listing"
    redis.delete(keys.account(account), keys.mailbox_listing(account))
    store_listing(redis, account, [ENTRY])
    assert not redis.exists(keys.mailbox_listing(account))
    redis.hset(keys.account(account), "account", account)
    store_listing(redis, account, [ENTRY, {**ENTRY, "path": "Sent", "name": "Sent"}])
    assert set(redis.hkeys(keys.mailbox_listing(account))) == {b"INBOX", b"Sent"}
    accounts.delete(redis, account)
    store_listing(redis, account, [ENTRY])   # an op that listed before the delete finishes
    assert not redis.exists(keys.mailbox_listing(account))


def test_reconnect_request_does_not_recreate_a_deleted_record(redis):
    account = "unit-late-reconnect"
    redis.delete(keys.account(account))
    assert accounts.request_reconnect(redis, account) is False
    assert not redis.exists(keys.account(account))
    redis.hset(keys.account(account), "account", account)
    assert accounts.request_reconnect(redis, account) is True
    assert redis.hget(keys.account(account), "reconnectRequested")
    redis.delete(keys.account(account))
