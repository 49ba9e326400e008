"""Change events: the envelope, deterministic ids, and the atomic commit (stream + sync state + outbox).

Every event lands in the account's Redis Stream `keys.events(account)` (the replayable feed behind
/changes) in the SAME Lua step that advances the folder sync state and registers the webhook job,
so a crash can neither lose an event nor report a change twice with different ids.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time

from . import delivery, keys, leases, stats

from .clock import now_iso
from .delivery import DELIVERY_LEASE
from .keys import WEBHOOK_DUE as DUE
from .keys import WEBHOOK_JOBS as JOBS
from .settings import get_settings
from .webhook_settings import wanted_for

EVENT_TYPES = [
    "messageNew", "messageDeleted", "messageUpdated", "mailboxReset", "mailboxDeleted",
    "mailboxNew", "authenticationError", "authenticationSuccess", "connectError",
    "messageSent", "messageDeliveryError", "messageFailed",
]

log = logging.getLogger(__name__)
# Account events sent as webhooks but not kept in the feed (docs/webhooks.md, "Replay").
FEED_SKIPS = frozenset({"authenticationSuccess"})


def event_id(*parts) -> str:
    """Deterministic id: the same change (same parts) always hashes to the same id."""
    raw = "\x1f".join("" if p is None else str(p) for p in parts)
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:32]


def make_event(account: str, event: str, data: dict, *, path: str | None = None,
               special_use: str | None = None, id_parts: tuple = ()) -> dict:
    """The envelope {id, account, path, specialUse?, event, date, data}."""
    out = {"id": event_id(account, path, event, *id_parts), "account": account}
    if path is not None:
        out["path"] = path
    if special_use:
        out["specialUse"] = special_use
    out.update({"event": event, "date": now_iso(), "data": data})
    return out


RETRY_LOOKBACK = 50   # feed entries a retried content-id write is matched against

# KEYS: stream, jobs hash, due zset, account record, seq counter, delivery queue, then one key
#       per state update.
# ARGV: maxlen, due-time, n_events, [content id, json without id/seq, where (0 feed, 1 feed +
#       webhook job, 2 webhook job only, 3 neither: the seq only), per-occurrence(0/1)] * n,
#       then per state update:
#       n_fields, expected_version ('' = any), [field, value] * n_fields.
# A state update whose stored version differs from expected aborts the whole step (another
# writer advanced the folder first): nothing is written and the caller recomputes the diff.
# Every event gets the account's next `seq` here, in commit order, so the feed, the delivery
# queue and the payload agree on one order. A per-occurrence id hashes the content id with that
# seq: the same change seen again later (a folder renamed back) is a new occurrence, a new id;
# a committed event keeps its id through every delivery retry.
_COMMIT = """
local maxlen = tonumber(ARGV[1])
local due = ARGV[2]
local n = tonumber(ARGV[3])
local pos = 4 + n * 4
local nkeys = #KEYS
-- the account was deleted meanwhile: write nothing (no orphan keys under its prefix)
if redis.call('EXISTS', KEYS[4]) == 0 then return {-2} end
for k = 7, nkeys do
  local nf = tonumber(ARGV[pos])
  local expected = ARGV[pos + 1]
  if expected ~= '' then
    local cur = redis.call('HGET', KEYS[k], 'version') or ''
    if cur ~= expected then return {-1} end
  end
  pos = pos + 2 + nf * 2
end
pos = 4 + n * 4
for k = 7, nkeys do
  local nf = tonumber(ARGV[pos])
  pos = pos + 2
  for i = 1, nf do
    local f, v = ARGV[pos], ARGV[pos + 1]
    if v == '__DEL__' then redis.call('HDEL', KEYS[k], f) else redis.call('HSET', KEYS[k], f, v) end
    pos = pos + 2
  end
  if nf == 0 then redis.call('DEL', KEYS[k]) end
end
local out = {}
for i = 0, n - 1 do
  local b = 4 + i * 4
  local eid, rest, deliver, occurrence = ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3]
  local again = nil
  if occurrence == '0' then
    -- a retried write of a content-id event committed moments ago is that event: no second
    -- feed entry, no second job (delivery keeps no per-event "sent" marker to catch it later)
    for _, row in ipairs(redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', LOOKBACK)) do
      if row[2][2] == eid then again = row break end
    end
  end
  if again then
    out[#out + 1] = again[1]
    out[#out + 1] = eid
    out[#out + 1] = tonumber(string.match(again[2][4], '"seq":(%d+)'))
  else
    local seq = redis.call('INCR', KEYS[5])
    if occurrence == '1' then eid = string.sub(redis.sha1hex(eid .. ':' .. seq), 1, 32) end
    -- concatenated, not cjson: cjson would turn empty JSON arrays into objects
    local body = '{"id":"' .. eid .. '","seq":' .. seq .. ',' .. string.sub(rest, 2)
    local sid = ''
    if deliver == '0' or deliver == '1' then
      sid = redis.call('XADD', KEYS[1], 'MAXLEN', '~', maxlen, '*', 'id', eid, 'e', body)
    end
    out[#out + 1] = sid
    out[#out + 1] = eid
    out[#out + 1] = seq
    if (deliver == '1' or deliver == '2') and redis.call('HEXISTS', KEYS[2], eid) == 0 then
      redis.call('HSET', KEYS[2], eid, '{"stream":"' .. sid .. '","event":' .. body .. '}')
      -- only a queue's head has a lease (imapapi.webhook_order)
      if redis.call('RPUSH', KEYS[6], eid) == 1 then redis.call('ZADD', KEYS[3], due, eid) end
    end
  end
end
return out
""".replace("LOOKBACK", str(RETRY_LOOKBACK))

# A sidecar's commit carries its lease token (imapapi.leases): refused in the same step when
# another replica took the account over, so a paused or partitioned one cannot emit or move state.
_COMMIT_FENCED = leases.fenced(_COMMIT, "{%d}" % leases.REFUSED)

DELETE = "__DEL__"   # state field value meaning "remove this field"


class StaleState(Exception):
    """The folder state moved under us (another writer); recompute and retry."""


def append_events(redis, account: str, events: list[dict],
                  state_updates: list[tuple[str, dict | None, str | None]] = (),
                  *, deliver=None, fence=None, occurrence: bool = False,
                  feed=None) -> list[str]:
    """Commit events + state together; -> stream ids. Raises StaleState on a version conflict.
    Each committed event dict gets its final `id` and `seq` (in place).

    state_updates: (redis key, {field: value or DELETE} or None to delete the key,
    expected current 'version' field or None for "don't check").
    deliver: predicate(event) -> bool deciding whether a webhook job is registered (default all).
    feed: predicate(event) -> bool deciding whether it is kept in the feed (default all; the
    stream id is '' for one that is not). Webhook-only events still take a `seq`: an idle
    account's connect and first look write no stream (a Redis 7 stream costs ~4.6 KiB even with
    one entry: its first node is preallocated).
    fence: the writer's lease token (sidecars); leases.Fenced when it is not the current one.
    occurrence: ids name this commit's occurrence (folder syncs: the state version check makes a
    change commit once); else the content id is kept (a retried emit() of the same change).
    """
    argv: list = [get_settings().events_maxlen, time.time() + DELIVERY_LEASE, len(events)]
    for ev in events:
        wanted = True if deliver is None else bool(deliver(ev))
        kept = True if feed is None else bool(feed(ev))
        rest = {k: v for k, v in ev.items() if k not in ("id", "seq")}
        argv += [ev["id"], json.dumps(rest, separators=(",", ":"), default=str),
                 ("1" if wanted else "0") if kept else ("2" if wanted else "3"),
                 "1" if occurrence else "0"]
    state_keys = []
    for key, fields, expected in state_updates:
        state_keys.append(key)
        fields = fields or {}
        argv += [len(fields), "" if expected is None else str(expected)]
        for f, v in fields.items():
            argv += [f, v]
    if fence is not None:
        argv += leases.fence_args(account, fence)
    res = redis.eval(_COMMIT if fence is None else _COMMIT_FENCED, 6 + len(state_keys),
                     keys.events(account), JOBS, DUE, keys.account(account),
                     keys.event_seq(account), keys.webhook_queue(account), *state_keys, *argv)
    if res and res[0] == leases.REFUSED:
        raise leases.Fenced(account)
    if res and res[0] == -1:
        raise StaleState(account)
    if res and res[0] == -2:
        return []   # account deleted: its changes no longer matter
    counts: dict[str, int] = {}
    for ev in events:
        counts["events:" + ev["event"]] = counts.get("events:" + ev["event"], 0) + 1
    stats.safe_incr(redis, counts)   # /v1/stats; after the commit, so a retry never counts twice
    res = [r.decode() if isinstance(r, bytes) else r for r in res]
    for i, ev in enumerate(events):
        ev["id"], ev["seq"] = res[3 * i + 1], int(res[3 * i + 2])
    return res[0::3]


def emit(redis, account: str, event: str, data: dict, *, path: str | None = None,
         special_use: str | None = None, id_parts: tuple = (), quiet: bool = False,
         fence=None, feed: bool = True, wanted: bool | None = None) -> dict | None:
    """Commit one event outside a folder sync (sending results, account state) and wake a
    webhook worker. Pass id_parts that identify the change (e.g. the queue id and attempt) so a
    retried write keeps its event id. `quiet`: a failed write is logged, not raised (a sending
    event must never turn a delivered message into a failed task); -> None then. `feed`: False
    for a webhook-only event (not kept in /changes). `wanted`: whether a webhook job goes out,
    when the caller has just read the settings (None: read them here)."""
    ev = make_event(account, event, data, path=path, special_use=special_use, id_parts=id_parts)
    try:
        if wanted is None:
            wanted = wanted_for(redis, account, event)
        append_events(redis, account, [ev], deliver=lambda e: wanted, fence=fence,
                      feed=lambda e: feed)
    except Exception:
        if not quiet:
            raise
        log.exception("cannot record %s for %s", event, account)
        return None
    if wanted:
        try:
            delivery.enqueue([ev["id"]])
        except Exception:   # broker down: the sweeper enqueues it once the lease passes
            pass
    return ev


def emit_account_event(redis, account: str, event: str, data: dict | None = None, *,
                       fence=None, wanted: bool | None = None) -> dict:
    """Account-level events (authenticationError/Success, connectError) from the runtime.

    Each call is its own occurrence: the id includes the time in nanoseconds, so two logins
    within one second are two events (with the second, the later one shared the earlier one's
    id, webhook job and all) and the same failure minutes later is a new event. Every
    (re)connect's authenticationSuccess is webhook-only: GET /v1/account/{id} shows the state,
    and an idle account then keeps no feed at all (FEED_SKIPS)."""
    data = dict(data or {})
    return emit(redis, account, event, data,
                id_parts=(time.time_ns(), json.dumps(data, sort_keys=True)), fence=fence,
                feed=event not in FEED_SKIPS, wanted=wanted)


def read_events(redis, account: str, cursor: str | None = None, count: int = 100) -> tuple[list, str]:
    """Events after `cursor` (a stream id; None/'0' = from the start) -> (events, next cursor)."""
    start = "-" if not cursor or cursor == "0" else "(" + cursor
    rows = redis.xrange(keys.events(account), min=start, max="+", count=count)
    out = []
    next_cursor = cursor or "0"
    for sid, fields in rows:
        sid = sid.decode() if isinstance(sid, bytes) else sid
        body = fields.get(b"e") or fields.get("e")
        ev = json.loads(body)
        ev["cursor"] = sid
        out.append(ev)
        next_cursor = sid
    return out, next_cursor
