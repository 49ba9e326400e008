"""The account-level sync record (sidecar.sync.state): compact layout, old layout still read."""
import json

from imapapi import events, keys
from sidecar.sync import state

FOLDERS = {
    "INBOX": {"delimiter": "/", "specialUse": "\\Inbox"},
    "Archive": {"delimiter": "/", "specialUse": "\\Archive"},
    "Work/Ärger": {"delimiter": "/", "specialUse": None},
    "Flat": {"delimiter": None, "specialUse": None},
    "/lead": {"delimiter": "/", "specialUse": None},
}


def _write(redis, account, update):
    redis.hset(keys.account(account), "account", account)
    events.append_events(redis, account, [], [update])


def test_round_trip_and_listpack_encoding(redis):
    account = "unit-sync-record"
    redis.delete(state.account_key(account))
    _write(redis, account, state.account_update(account, FOLDERS, baselined=False))
    assert state.load_account(redis, account) == (False, FOLDERS)
    assert redis.object("encoding", state.account_key(account)) == b"listpack"
    # a folder gone: its field goes, the rest stays
    fewer = {p: m for p, m in FOLDERS.items() if p != "Archive"}
    _write(redis, account, state.account_update(account, fewer, stored=FOLDERS))
    assert state.load_account(redis, account) == (True, fewer)
    assert not redis.hexists(state.account_key(account), "/Archive")


def test_old_layout_is_read_and_replaced(redis):
    account = "unit-sync-record-old"
    key = state.account_key(account)
    redis.delete(key)
    redis.hset(key, mapping={"baselined": "1", "folders": json.dumps(FOLDERS)})
    assert state.load_account(redis, account) == (True, FOLDERS)
    _write(redis, account, state.account_update(account, FOLDERS, stored=FOLDERS))
    assert state.load_account(redis, account) == (True, FOLDERS)
    assert not {b"baselined", b"folders"} & set(redis.hkeys(key))
