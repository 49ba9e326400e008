"""The durable outbox in Redis: one hash per queued message, a zset index, idempotency keys.

States: queued -> sending -> sent | deferred (-> sending ...) | failed; queued/deferred -> cancelled.
"sent" is written in one atomic step right after the SMTP server accepted the message, and
`claim` refuses anything not queued/deferred, so a retried or redelivered task never sends twice.
"""
from __future__ import annotations

import json
import secrets
import time

from . import keys
from .clock import iso as _iso

STATES = ("queued", "sending", "sent", "deferred", "failed", "cancelled")
FINAL = ("sent", "failed", "cancelled")
SENDING_LEASE = 600        # s; a "sending" claim older than this belongs to a dead worker
IDEMPOTENCY_TTL = 86400    # s an Idempotency-Key keeps pointing at its queue id
RETENTION = 7 * 86400      # s a finished item stays visible in the outbox
PICKUP_GRACE = 60          # s after its due time an untaken item counts as lost (re-enqueued)
# Celery ETA tasks wait unacked in worker memory and the Redis broker redelivers them after its
# visibility timeout; sends further ahead than this get no task: the sweeper starts them on time.
ETA_MAX = 300


def by_sweeper(send_at: float | None, now: float | None = None) -> bool:
    """True when a scheduled send is left to the sweeper instead of a Celery ETA task."""
    return bool(send_at) and send_at - (time.time() if now is None else now) > ETA_MAX
JSON_FIELDS = ("envelope", "reference", "lastError", "result")
INT_FIELDS = ("attempts",)
FLOAT_FIELDS = ("created", "sendAt", "nextAttempt", "sentAt", "updated", "leaseUntil")


def new_queue_id() -> str:
    return secrets.token_hex(8)


# Every non-final item is also in keys.OUTBOX_DUE, scored with the time by which some task must
# have taken it (sendAt, nextAttempt, end of the sending lease): the sweeper re-enqueues items a
# lost Celery message left behind.

# KEYS: idempotency key ('' slot unused when none), item, index, due.
# ARGV: qid, created, ttl, due-at, fields...
# Returns the queue id that owns the request: ours when created, the earlier one on a repeat.
_CREATE = """
if KEYS[1] ~= '' and ARGV[3] ~= '0' then
  local existing = redis.call('GET', KEYS[1])
  if existing then return {existing, 0} end
  redis.call('SET', KEYS[1], ARGV[1], 'EX', tonumber(ARGV[3]))
end
for i = 5, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[4], ARGV[1])
return {ARGV[1], 1}
"""

# KEYS: item, due. ARGV: now, lease, qid.
# -> {'ok', attempts} or {'busy'|'early'|'gone'|<state>}. 'early': a duplicate task (e.g. one the
# sweeper re-enqueued) came before sendAt/nextAttempt; the scheduled one will do the work.
_CLAIM = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {'gone'} end
local now = tonumber(ARGV[1])
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'sending' then
  local lease = tonumber(redis.call('HGET', KEYS[1], 'leaseUntil') or '0')
  if lease > now then return {'busy'} end
elseif state == 'queued' or state == 'deferred' then
  local field = 'nextAttempt'
  if state == 'queued' then field = 'sendAt' end
  local at = tonumber(redis.call('HGET', KEYS[1], field) or '0')
  if at and at > now + 1 then return {'early'} end
else
  return {state}
end
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('HSET', KEYS[1], 'state', 'sending', 'leaseUntil', now + ARGV[2], 'updated', now)
redis.call('ZADD', KEYS[2], now + ARGV[2], ARGV[3])
return {'ok', attempts}
"""

# KEYS: item, due. ARGV: from-states (comma list), to-state, retention ('0' = keep),
# due-at ('' = final: leave the due index), qid, fields...
_TRANSITION = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'gone'} end
if not string.find(',' .. ARGV[1] .. ',', ',' .. state .. ',', 1, true) then return {state} end
redis.call('HSET', KEYS[1], 'state', ARGV[2])
for i = 6, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
if ARGV[3] ~= '0' then redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3])) end
if ARGV[4] == '' then redis.call('ZREM', KEYS[2], ARGV[5])
else redis.call('ZADD', KEYS[2], ARGV[4], ARGV[5]) end
return {'ok'}
"""


def _flat(fields: dict) -> list:
    out = []
    for k, v in fields.items():
        if v is None:
            continue
        if k in JSON_FIELDS:
            v = json.dumps(v, separators=(",", ":"))
        elif isinstance(v, bool):
            v = "1" if v else "0"
        out += [k, v]
    return out


def _decode(raw: dict) -> dict:
    out = {}
    for k, v in raw.items():
        k = k.decode() if isinstance(k, bytes) else k
        if k == "raw":
            continue
        v = v.decode() if isinstance(v, bytes) else v
        if k in JSON_FIELDS:
            v = json.loads(v) if v else None
        elif k in INT_FIELDS:
            v = int(v)
        elif k in FLOAT_FIELDS:
            v = float(v) if v != "" else None
        elif k in ("copy", "flagged", "copied", "finished"):
            v = v == "1"
        out[k] = v
    return out


def create(redis, *, account: str, raw: bytes, message_id: str, envelope: dict,
           reference: dict | None = None, copy: bool = True, send_at: float | None = None,
           idempotency_key: str | None = None, queue_id: str | None = None) -> tuple[str, bool]:
    """Store a message to send -> (queue id, created). A repeated Idempotency-Key returns the
    first request's queue id with created=False and stores nothing."""
    queue_id = queue_id or new_queue_id()
    now = time.time()
    fields = {
        "queueId": queue_id, "account": account, "state": "queued", "messageId": message_id,
        "envelope": envelope, "reference": reference, "copy": copy, "created": now,
        "updated": now, "sendAt": send_at, "attempts": 0, "raw": raw,
        "idempotencyKey": idempotency_key,
    }
    idem = keys.idempotency(account, idempotency_key) if idempotency_key else ""
    qid, created = redis.eval(_CREATE, 4, idem, keys.outbox_item(queue_id), keys.OUTBOX,
                              keys.OUTBOX_DUE, queue_id, now,
                              IDEMPOTENCY_TTL if idempotency_key else 0,
                              send_at if by_sweeper(send_at, now)
                              else max(send_at or now, now) + PICKUP_GRACE, *_flat(fields))
    return (qid.decode() if isinstance(qid, bytes) else qid), bool(created)


def lookup_idempotent(redis, account: str, key: str) -> str | None:
    qid = redis.get(keys.idempotency(account, key))
    return qid.decode() if qid else None


def get(redis, queue_id: str) -> dict | None:
    raw = redis.hgetall(keys.outbox_item(queue_id))
    return _decode(raw) if raw else None


def raw_message(redis, queue_id: str) -> bytes | None:
    return redis.hget(keys.outbox_item(queue_id), "raw")


def claim(redis, queue_id: str, lease: float = SENDING_LEASE) -> tuple[str, int]:
    """Take the item for one send attempt -> ("ok", attempt number) or (reason, 0) where reason
    is "gone", "busy" (another worker holds it) or the current state (sent, failed, ...)."""
    res = redis.eval(_CLAIM, 2, keys.outbox_item(queue_id), keys.OUTBOX_DUE, time.time(), lease,
                     queue_id)
    status = res[0].decode() if isinstance(res[0], bytes) else res[0]
    return status, int(res[1]) if len(res) > 1 else 0


def _transition(redis, queue_id: str, from_states: tuple, to_state: str, retention: int = 0,
                due_at: float | None = None, **fields) -> str:
    fields["updated"] = time.time()
    res = redis.eval(_TRANSITION, 2, keys.outbox_item(queue_id), keys.OUTBOX_DUE,
                     ",".join(from_states), to_state, retention,
                     "" if due_at is None else due_at, queue_id, *_flat(fields))
    return res[0].decode() if isinstance(res[0], bytes) else res[0]


def mark_sent(redis, queue_id: str, result: dict) -> bool:
    """The sent marker: one atomic write right after the server accepted the message."""
    return _transition(redis, queue_id, ("sending",), "sent", RETENTION, result=result,
                       response=result.get("response", ""), sentAt=time.time(),
                       leaseUntil=0) == "ok"


def mark_deferred(redis, queue_id: str, error: dict, next_attempt: float) -> bool:
    return _transition(redis, queue_id, ("sending",), "deferred", 0,
                       due_at=next_attempt + PICKUP_GRACE, lastError=error,
                       nextAttempt=next_attempt, leaseUntil=0) == "ok"


def mark_failed(redis, queue_id: str, error: dict) -> bool:
    return _transition(redis, queue_id, ("sending", "queued", "deferred"), "failed", RETENTION,
                       lastError=error, leaseUntil=0) == "ok"


def cancel(redis, queue_id: str) -> str:
    """-> "ok" when cancelled, "gone" when unknown, else the state that forbids it."""
    return _transition(redis, queue_id, ("queued", "deferred"), "cancelled", RETENTION)


def set_fields(redis, queue_id: str, **fields) -> None:
    """Post-send bookkeeping (flagged, copied, copyError...) on an existing item."""
    key = keys.outbox_item(queue_id)
    flat = _flat(fields)
    if flat and redis.exists(key):
        redis.hset(key, mapping=dict(zip(flat[::2], flat[1::2])))


def public(item: dict) -> dict:
    """What the outbox API shows for an item (no raw message, envelope included)."""
    out = {k: item.get(k) for k in ("queueId", "account", "messageId", "state", "attempts",
                                    "envelope", "response", "lastError", "reference",
                                    "copyPath", "copyError", "flagError")}
    for name in ("created", "sendAt", "nextAttempt", "sentAt"):
        if item.get(name):
            out[name] = _iso(item[name])
    return {k: v for k, v in out.items() if v is not None}


def list_page(redis, page: int = 0, page_size: int = 20, account: str | None = None,
              state: str | None = None) -> dict:
    """Items oldest first; entries whose hash expired are dropped from the index on the way."""
    ids = [q.decode() for q in redis.zrange(keys.OUTBOX, 0, -1)]
    pipe = redis.pipeline(transaction=False)
    for qid in ids:
        pipe.hgetall(keys.outbox_item(qid))
    rows, stale = [], []
    for qid, raw in zip(ids, pipe.execute()):
        if not raw:
            stale.append(qid)
            continue
        item = _decode(raw)
        if account and item.get("account") != account:
            continue
        if state and item.get("state") != state:
            continue
        rows.append(public(item))
    if stale:
        redis.zrem(keys.OUTBOX, *stale)
    total = len(rows)
    pages = max(1, -(-total // page_size))
    start = page * page_size
    return {"total": total, "page": page, "pages": pages, "messages": rows[start:start + page_size]}


def overdue(redis, now: float | None = None, limit: int = 100) -> list[tuple[str, str]]:
    """Items no task took in time -> [(queue id, account)]; each is pushed PICKUP_GRACE into the
    future so the next sweep does not enqueue it again while its new task is on the way."""
    now = time.time() if now is None else now
    qids = [q.decode() for q in redis.zrangebyscore(keys.OUTBOX_DUE, "-inf", now, 0, limit)]
    out = []
    for qid in qids:
        account = redis.hget(keys.outbox_item(qid), "account")
        if account is None:
            redis.zrem(keys.OUTBOX_DUE, qid)   # expired or deleted underneath us
            continue
        # XX: only while still tracked (a concurrent move to a final state removed it)
        redis.zadd(keys.OUTBOX_DUE, {qid: now + PICKUP_GRACE}, xx=True)
        out.append((qid, account.decode()))
    return out


def wait(redis, queue_id: str, timeout: float, poll: float = 0.05) -> dict | None:
    """Poll until the item leaves queued/sending or the timeout passes; -> the item."""
    deadline = time.monotonic() + timeout
    while True:
        item = get(redis, queue_id)
        if item is None or item["state"] not in ("queued", "sending"):
            return item
        if time.monotonic() >= deadline:
            return item
        time.sleep(poll)
