"""Account records in Redis: upsert, read (masked), list, delete, connection state."""
from __future__ import annotations

import json
import math

from . import keys, stats, vault
from .clock import now_iso

STATES = ("init", "connecting", "connected", "authenticationError", "connectError",
          "disconnected", "unset")
JSON_FIELDS = ("imap", "smtp", "webhooks", "lastErrorState")
SECRET_KEYS = ("pass", "accessToken", "refreshToken")
MASK = "******"
# Fields a POST replaces as a whole; anything else in the hash (state, counters) is kept.
CONFIG_FIELDS = ("name", "path", "copy", "notifyFrom", "imap", "smtp", "webhooks")


# Deleting or moving a record keeps the per-state counts (stats.STATES_KEY) in the same step.
_DELETE_LUA = """
local state = redis.call('HGET', KEYS[1], 'state')
local removed = redis.call('DEL', KEYS[1])
if removed == 1 and state and redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('HINCRBY', KEYS[2], state, -1)
end
return removed
"""
_SET_STATE_LUA = stats.STATE_MOVE_LUA + """
if redis.call('EXISTS', KEYS[1]) == 1 then
  imapapi_state_move(KEYS[1], KEYS[2], ARGV[2])
  for i = 1, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i+1]) end
end
"""


def _decode(raw: dict) -> dict:
    out = {}
    for k, v in raw.items():
        k = k.decode() if isinstance(k, bytes) else k
        v = v.decode() if isinstance(v, bytes) else v
        if k in JSON_FIELDS or k == "copy":
            try:
                v = json.loads(v)
            except ValueError:
                pass
        out[k] = v
    return out


def get_record(redis, account: str) -> dict | None:
    """The stored record with JSON fields parsed, secrets in clear; None if missing."""
    raw = redis.hgetall(keys.account(account))
    if not raw:
        return None
    record = _decode(raw)
    if not record.get("account"):
        return None
    return _open(record, account)


def _open(record: dict, account: str) -> dict:
    # Stored secrets are encrypted (imapapi.vault); callers get them in clear, in memory only.
    for name in ("imap", "smtp"):
        if name in record:
            record[name] = vault.open_config(record[name], account)
    if "webhooks" in record:
        record["webhooks"] = vault.open_webhook(record["webhooks"], account)
    return record


def _seal(redis, account: str, data: dict) -> dict:
    """data with secrets encrypted; a secret equal to the stored one keeps its ciphertext, so
    re-posting an unchanged account does not look like a settings change to the sidecar."""
    if not any(name in data for name in ("imap", "smtp", "webhooks")):
        return data
    stored = {}
    for name, raw in zip(("imap", "smtp", "webhooks"),
                         redis.hmget(keys.account(account), "imap", "smtp", "webhooks")):
        try:
            stored[name] = json.loads(raw) if raw is not None else None
        except ValueError:
            stored[name] = None
    out = dict(data)
    for name in ("imap", "smtp", "webhooks"):
        if name not in data:
            continue
        if name == "webhooks":
            fresh = vault.seal_webhook(data[name], account)
            opener = vault.open_webhook
        else:
            fresh = vault.seal_config(data[name], account)
            opener = vault.open_config
        old = stored.get(name)
        try:
            if old is not None and opener(old, account) == data[name]:
                fresh = old
        except Exception:   # unreadable old value: the new one simply replaces it
            pass
        out[name] = fresh
    return out


def upsert(redis, data: dict) -> dict:
    """Create or update; -> {"account", "state": "new"|"existing"}. Sidecars are told at once."""
    account = data["account"]
    data = _seal(redis, account, data)
    fields = {"account": account}
    for name in CONFIG_FIELDS:
        if name in data:
            value = data[name]
            fields[name] = json.dumps(value) if name in JSON_FIELDS or name == "copy" else str(value)
    key = keys.account(account)
    pipe = redis.pipeline(transaction=True)
    pipe.exists(key)
    pipe.hset(key, mapping=fields)
    for name in CONFIG_FIELDS:
        if name not in fields and name != "notifyFrom":
            pipe.hdel(key, name)   # a POST describes the whole account; drop stale settings
    # notifyFrom defaults to the creation time; re-posting the account must not move it, or
    # mail that arrived in between would never be reported as new.
    pipe.hsetnx(key, "notifyFrom", now_iso())
    # a new record starts in init; the per-state counters (imapapi.stats) follow in the same step
    pipe.eval("if redis.call('HSETNX', KEYS[1], 'state', 'init') == 1 "
              "and redis.call('EXISTS', KEYS[2]) == 1 then "
              "redis.call('HINCRBY', KEYS[2], 'init', 1) end", 2, key, stats.STATES_KEY)
    pipe.sadd(keys.ACCOUNTS, account)
    existed = pipe.execute()[0]
    redis.publish(keys.ACCOUNTS_CHANNEL, account)
    return {"account": account, "state": "existing" if existed else "new"}


def delete(redis, account: str) -> bool:
    """Remove the account and every per-account key (a re-added account's id registry starts
    at another random base, so old ids still 404: imapapi.ids.MailboxRegistry)."""
    key = keys.account(account)
    pipe = redis.pipeline(transaction=True)
    pipe.eval(_DELETE_LUA, 2, key, stats.STATES_KEY)
    pipe.srem(keys.ACCOUNTS, account)
    pipe.hdel(keys.OWNERS, account)
    pipe.srem(keys.LOGGED, account)
    removed = pipe.execute()[0]
    from .delivery import forget_account   # here: imapapi.delivery pulls in Celery (producer)

    forget_account(redis, account)   # its waiting webhooks, their lock and the cursor
    purge(redis, account)
    redis.publish(keys.ACCOUNTS_CHANNEL, account)
    return bool(removed)


def purge(redis, account: str) -> None:
    """Delete a deleted account's data keys: at delete, and again by the sidecar after its
    LOGOUT (an op or sync still running at the delete may have written one back)."""
    redis.delete(keys.mailbox_listing(account), keys.mailbox_registry(account))
    batch = []
    for k in redis.scan_iter(match=keys.account_prefix(account) + "*", count=500):
        batch.append(k)
        if len(batch) >= 500:
            redis.delete(*batch)
            batch = []
    if batch:
        redis.delete(*batch)


_HSET_EXISTING = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""


def request_reconnect(redis, account: str) -> bool:
    """A new `reconnectRequested` tells the owning sidecar to log in afresh; -> False (and no
    write: a deleted record is never recreated by it) when the account does not exist."""
    done = redis.eval(_HSET_EXISTING, 1, keys.account(account), "reconnectRequested", now_iso())
    if done:
        redis.publish(keys.ACCOUNTS_CHANNEL, account)
    return bool(done)


def set_state(redis, account: str, state: str, error: dict | None = None) -> None:
    """Record connection state; `error` is {response, serverResponseCode}. No-op for deleted accounts."""
    key = keys.account(account)
    fields = {"state": state, "stateChanged": now_iso()}
    if state == "connected":
        fields["lastErrorState"] = "{}"
    elif error is not None:
        fields["lastErrorState"] = json.dumps({**error, "time": now_iso()})
    # Only touch existing records: a late state write must not resurrect a deleted account.
    redis.eval(_SET_STATE_LUA, 2, key, stats.STATES_KEY, *[x for kv in fields.items() for x in kv])


def mask(config):
    """Copy of an imap/smtp config with every secret replaced by '******'."""
    if not isinstance(config, dict):
        return config
    out = {}
    for k, v in config.items():
        if k in SECRET_KEYS and v:
            out[k] = MASK
        elif isinstance(v, dict):
            out[k] = mask(v)
        else:
            out[k] = v
    return out


def last_error(record: dict):
    if record.get("state") == "connected":
        return None
    err = record.get("lastErrorState")
    return err if isinstance(err, dict) and err else None


def public_view(record: dict) -> dict:
    """What GET /v1/account/{id} shows: settings with secrets masked, plus current state."""
    out = {"account": record["account"]}
    for name in ("name", "path", "copy", "notifyFrom", "imap", "smtp", "webhooks"):
        if name in record:
            out[name] = mask(record[name])
    out["state"] = record.get("state", "init")
    out["lastError"] = last_error(record)
    if "sync" in record:
        out["syncTime"] = record["sync"]
    return out


def list_page(redis, page: int, page_size: int, state: str | None = None) -> dict:
    """Accounts sorted by id (stable paging), optionally filtered by state."""
    ids = sorted(m.decode() for m in redis.smembers(keys.ACCOUNTS))
    pipe = redis.pipeline(transaction=False)
    for account in ids:
        pipe.hmget(keys.account(account), "name", "state", "lastErrorState", "sync")
    rows = []
    for account, (name, st, err, sync) in zip(ids, pipe.execute()):
        if name is None and st is None:
            continue
        st = (st or b"init").decode()
        if state and st != state:
            continue
        entry = {"account": account, "name": (name or b"").decode(), "state": st}
        if sync:
            entry["syncTime"] = sync.decode()
        try:
            parsed = json.loads(err) if err else None
        except ValueError:
            parsed = None
        entry["lastError"] = None if st == "connected" or not parsed else parsed
        rows.append(entry)
    total = len(rows)
    start = page * page_size
    return {"total": total, "page": page, "pages": math.ceil(total / page_size),
            "accounts": rows[start:start + page_size]}
