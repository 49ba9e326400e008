"""Webhook delivery as plain functions: POST with timeouts, backoff, dead letters, lease sweeper.

Jobs live in Redis (events.JOBS/DUE), registered in the same Lua step as the event, so a Celery
message is only a wake-up: a lost one (sidecar crash before enqueue, worker killed mid-delivery)
is re-enqueued by `sweep` once its lease passes. Each account's events go out one at a time in
feed order (imapapi.webhook_order), so one number per account says what was delivered: the
highest `seq` POSTed with success (keys.WEBHOOK_DONE). A job at or below it is a duplicate and is
not POSTed again; memory is one hash field per account whatever the event rate.
"""
from __future__ import annotations

import json
import logging
import time

from . import keys, producer, stats
from . import tasknames as T
from . import webhook_order, webhook_settings
# re-exported: callers (API, UI, metrics, tests) know them as delivery.*
from .webhook_http import (ON_DELIVERY, RECENT, RECENT_MAX, USER_AGENT, post,  # noqa: F401
                           post_detailed, record, recent, run_hooks, safe_url, send_test, sign,
                           split_auth)
from .keys import WEBHOOK_DUE as DUE
from .keys import WEBHOOK_JOBS as JOBS
from .settings import get_settings

log = logging.getLogger(__name__)

ATTEMPTS = keys.WEBHOOK_ATTEMPTS
FIRST_FAIL = keys.WEBHOOK_FIRST_FAIL
DONE = keys.WEBHOOK_DONE
# Seconds a job may sit "enqueued" before the sweeper assumes its task was lost and re-enqueues.
DELIVERY_LEASE = 20.0
MAX_BACKOFF = 300.0
# Concurrent POSTs per receiver URL (accounts sharing one receiver run in parallel up to this):
# a hung receiver can't take the pool.
PER_TARGET = 8
BUSY_DELAY = 1.0
DEAD_MAX = 10000


busy_key = keys.webhook_busy


def backoff(attempt: int) -> float:
    """2, 4, 8 ... capped at 5 min: >= 1 hour of retries takes about 16 attempts."""
    return min(MAX_BACKOFF, 2.0 * 2 ** max(0, attempt - 1))


# Drop the job's bookkeeping; after a success move the account's delivered-up-to cursor (never
# back: a resent dead letter is older than it). The cursor is only written while the account
# record exists, so a POST that finishes after the account was deleted leaves nothing behind.
_FINISH = """
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
if ARGV[3] ~= '' and redis.call('EXISTS', KEYS[6]) == 1 then
  local cur = tonumber(redis.call('HGET', KEYS[5], ARGV[2]) or '0')
  if tonumber(ARGV[3]) > cur then redis.call('HSET', KEYS[5], ARGV[2], ARGV[3]) end
end
return 1
"""


def _finish(redis, event_id: str, *, sent: bool, event: dict | None = None) -> None:
    account = (event or {}).get("account")
    seq = (event or {}).get("seq")
    mark = str(int(seq)) if sent and account and isinstance(seq, int) else ""
    redis.eval(_FINISH, 6, JOBS, DUE, ATTEMPTS, FIRST_FAIL, DONE,
               keys.account(account or ""), event_id, account or "", mark)


# A deleted account's waiting deliveries: its queue, lock (a hold lasts until a retry is due)
# and their jobs go in one step. A drainer still running finds the queue gone and stops; its
# finish writes no cursor (the record is gone).
_FORGET = """
for _, id in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  redis.call('HDEL', KEYS[3], id)
  redis.call('ZREM', KEYS[4], id)
  redis.call('HDEL', KEYS[5], id)
  redis.call('HDEL', KEYS[6], id)
end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('HDEL', KEYS[7], ARGV[1])
return 1
"""


def forget_account(redis, account: str) -> None:
    """At account delete: drop its queued deliveries, lock and delivered-up-to cursor."""
    redis.eval(_FORGET, 7, keys.webhook_queue(account), keys.webhook_lock(account), JOBS, DUE,
               ATTEMPTS, FIRST_FAIL, DONE, account)


def delivered_upto(redis, account: str) -> int:
    """The highest `seq` of the account delivered with success (0: none yet)."""
    return int(redis.hget(DONE, account) or 0)


# Per-receiver slots: ZSET slot -> start time. Slots older than the POST timeout are from a killed
# worker and are dropped, so a crash never leaves a receiver blocked.
_ACQUIRE = """
local now, ttl, limit = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - ttl)
if redis.call('ZCARD', KEYS[1]) >= limit then return 0 end
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('EXPIRE', KEYS[1], math.ceil(ttl) + 60)
return 1
"""


def account_of(redis, event_id: str | None) -> str | None:
    raw = redis.hget(JOBS, event_id) if event_id else None
    return (json.loads(raw).get("event") or {}).get("account") if raw else None


def deliver_event(redis, event_id: str | None, *, account: str | None = None,
                  now: float | None = None) -> tuple[str, float]:
    """Plain function behind the task: deliver the queue of the event's account in order ->
    (outcome of the last attempt, countdown when the task should run again)."""
    account = account or account_of(redis, event_id)
    if not account:
        if event_id and not redis.hexists(JOBS, event_id):
            redis.zrem(DUE, event_id)   # a lease left behind by a wake-up that lost a race
            return "gone", 0.0
        return attempt_one(redis, event_id, now=now) if event_id else ("gone", 0.0)
    run = Run(redis, account, now=now)
    try:
        return webhook_order.drain(redis, account, run, now=time.time)
    finally:
        run.flush()


def attempt_one(redis, event_id: str, *, now: float | None = None) -> tuple[str, float]:
    """One delivery attempt of one event without an account queue -> (outcome, countdown for
    a retry); an account's events go through Run below."""
    raw = redis.hget(JOBS, event_id)
    if raw is None:
        return "gone", 0.0
    job = json.loads(raw)
    event = job["event"]
    account = event.get("account")
    seq = event.get("seq")
    # at or below the cursor: already POSTed with success (a re-registered job, a redelivered
    # task); a resent dead letter is older than the cursor on purpose and goes out
    if (account and isinstance(seq, int) and not job.get("resend")
            and seq <= delivered_upto(redis, account)):
        _finish(redis, event_id, sent=False)
        return "duplicate", 0.0
    # The receiver and the filter are read at delivery time: settings may have changed.
    if account and not redis.exists(keys.account(account)):
        _finish(redis, event_id, sent=False)
        return "dropped", 0.0
    url = webhook_settings.target(redis, account)
    allowed = webhook_settings.event_allowed(
        webhook_settings.get_all(redis, ["webhookEvents"])["webhookEvents"], event.get("event", ""))
    if not url or not allowed:
        _finish(redis, event_id, sent=False)
        return "dropped", 0.0
    posted = post_in_slot(redis, event_id, account, event, url, webhook_settings.secret(redis),
                          get_settings().webhook_timeout)
    if posted is None:
        return "busy", BUSY_DELAY
    entry, slot = posted
    redis.zrem(*slot)
    record(redis, entry)
    error = entry["error"]
    now = now or time.time()
    if error is None:
        _finish(redis, event_id, sent=True, event=event)
        return "sent", 0.0
    return failed(redis, event_id, job, url, error, now)


def post_in_slot(redis, event_id: str, account: str | None, event: dict, url: str,
                 secret: str | None, timeout: float) -> tuple[dict, tuple] | None:
    """Take one of the receiver's PER_TARGET slots and POST the event -> (the delivery log
    entry, the slot for the caller to free), or None when the receiver is busy (the job is
    due again after BUSY_DELAY)."""
    busy = busy_key(url)
    slot = f"{event_id}:{time.time_ns()}"
    if not redis.eval(_ACQUIRE, 1, busy, slot, time.time(), timeout + 5, PER_TARGET):
        redis.zadd(DUE, {event_id: time.time() + BUSY_DELAY + DELIVERY_LEASE})
        return None
    try:
        body = json.dumps(event, separators=(",", ":")).encode()
        result = post_detailed(url, body, event_id, secret, timeout)
    except BaseException:
        redis.zrem(busy, slot)
        raise
    error = result["error"]
    entry = {"id": event_id, "account": account, "event": event.get("event"),
             "url": safe_url(url), "ok": error is None, "status": result["status"],
             "ms": round(result["seconds"] * 1000, 1), "error": error, "at": time.time()}
    return entry, (busy, slot)


def failed(redis, event_id: str, job: dict, url: str, error: str,
           now: float) -> tuple[str, float]:
    """A failed POST: ("retry", countdown) within the retry window, else ("dead", 0) with the
    job moved to the dead letters."""
    attempt = redis.hincrby(ATTEMPTS, event_id, 1)
    redis.hsetnx(FIRST_FAIL, event_id, now)
    first = float(redis.hget(FIRST_FAIL, event_id) or now)
    if now - first >= get_settings().webhook_retry_window:
        dead_letter(redis, event_id, job, url, attempt, error, now)
        return "dead", 0.0
    countdown = backoff(attempt)
    redis.zadd(DUE, {event_id: now + countdown + DELIVERY_LEASE})
    log.info("webhook %s to %s failed (%s), attempt %d, retry in %.0fs",
             event_id, url, error, attempt, countdown)
    return "retry", countdown


def dead_letter(redis, event_id, job, url, attempts, error, now) -> None:
    entry = {"id": event_id, "account": job["event"].get("account"), "event": job["event"],
             "stream": job.get("stream"), "url": url, "attempts": attempts, "error": error,
             "failedAt": now}
    pipe = redis.pipeline(transaction=True)
    pipe.lpush(keys.DEAD_LETTERS, json.dumps(entry, separators=(",", ":")))
    pipe.ltrim(keys.DEAD_LETTERS, 0, DEAD_MAX - 1)
    pipe.execute()
    _finish(redis, event_id, sent=False)
    stats.safe_incr(redis, {"webhooks:dead": 1})
    log.warning("webhook %s dead-lettered after %d attempts: %s", event_id, attempts, error)


def list_dead(redis, start: int = 0, count: int = 100) -> tuple[int, list[dict]]:
    total = redis.llen(keys.DEAD_LETTERS)
    rows = redis.lrange(keys.DEAD_LETTERS, start, start + count - 1)
    return total, [json.loads(r) for r in rows]


def resend_dead(redis, event_id: str) -> bool:
    """Move a dead letter back into the job set (fresh retry window) and wake a worker."""
    for raw in redis.lrange(keys.DEAD_LETTERS, 0, -1):
        entry = json.loads(raw)
        if entry.get("id") != event_id:
            continue
        # `resend`: POSTed even though the account's cursor is past its seq
        job = {"stream": entry.get("stream"), "event": entry["event"], "resend": 1}
        account = entry["event"].get("account")
        pipe = redis.pipeline(transaction=True)
        pipe.lrem(keys.DEAD_LETTERS, 1, raw)
        pipe.hset(JOBS, event_id, json.dumps(job, separators=(",", ":")))
        if account:   # at the end of the account's queue: it keeps its seq, it arrives late
            pipe.eval(webhook_order.PUSH, 2, keys.webhook_queue(account), DUE, event_id,
                      time.time() + DELIVERY_LEASE)
        else:
            pipe.zadd(DUE, {event_id: time.time() + DELIVERY_LEASE})
        pipe.execute()
        enqueue([event_id])
        return True
    return False


# Claim due jobs atomically: two sweepers never enqueue the same job in the same lease.
_CLAIM = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[1], ARGV[2], id) end
return ids
"""


def sweep(redis, now: float | None = None, limit: int = 500) -> int:
    """Re-enqueue jobs whose lease ran out (lost wake-ups); -> how many."""
    now = now or time.time()
    ids = redis.eval(_CLAIM, 1, DUE, now, now + DELIVERY_LEASE, limit)
    ids = [i.decode() if isinstance(i, bytes) else i for i in ids]
    if ids:
        enqueue(ids)
    return len(ids)


def enqueue(event_ids) -> None:
    """Wake a worker per event (the sidecar calls this right after its commit)."""
    for event_id in event_ids:
        producer.send(T.WEBHOOK_DELIVER, {"event_id": event_id})


class Run:
    """run.prefetch / run.attempt for webhook_order.drain.

    Per batch of queue heads (webhook_order.BATCH): their jobs, the account's delivered-up-to
    cursor and record, the receiver URL, the event filter and the secret in a few round trips
    (a settings change applies from the next batch, within ~BATCH events). Per event: the
    receiver slot, the POST, then one MULTI with the job's bookkeeping, the cursor, the queue
    pop and the next head's lease, the slot release, the delivery log and an account check (a
    delete stops the drain after the POST in flight, as a per-event check did). Was ~14 round
    trips per event (bench/webhook_drain.py)."""

    def __init__(self, redis, account: str, *, now: float | None = None):
        self.redis, self.account = redis, account
        self.fixed_now = now
        self.jobs: dict = {}
        self.cursor = 0
        self.exists = True
        self.url: str | None = None
        self.secret: str | None = None
        self.wanted = None
        self.counts = {"webhooks:success": 0, "webhooks:fail": 0}
        self.timeout = get_settings().webhook_timeout

    def prefetch(self, heads: list[str]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.hmget(JOBS, heads)
        pipe.hget(keys.WEBHOOK_DONE, self.account)
        pipe.exists(keys.account(self.account))
        raw, cursor, exists = pipe.execute()
        self.jobs = dict(zip(heads, raw))
        self.cursor, self.exists = int(cursor or 0), bool(exists)
        # read at delivery time (per batch): settings may have changed since the commit
        self.url = webhook_settings.target(self.redis, self.account)
        self.wanted = webhook_settings.get_all(self.redis, ["webhookEvents"])["webhookEvents"]
        self.secret = webhook_settings.secret(self.redis)
        self.flush()

    def attempt(self, head: str) -> tuple[str, float]:
        if head not in self.jobs:      # not among the prefetched heads: read it alone
            self.jobs[head] = self.redis.hget(JOBS, head)
        raw = self.jobs.pop(head)
        if raw is None:                # finished meanwhile (a dead letter resent and sent)
            self._done(head)
            return "gone", 0.0
        job = json.loads(raw)
        event = job["event"]
        seq = event.get("seq")
        # at or below the cursor: already POSTed with success (a re-registered job, a
        # redelivered task); a resent dead letter is older than the cursor on purpose and goes out
        if isinstance(seq, int) and not job.get("resend") and seq <= self.cursor:
            self._done(head)
            return "duplicate", 0.0
        if not self.exists or not self.url or not webhook_settings.event_allowed(
                self.wanted, event.get("event", "")):
            self._done(head)
            return "dropped", 0.0
        url = self.url
        posted = post_in_slot(self.redis, head, self.account, event, url, self.secret,
                              self.timeout)
        if posted is None:
            return "busy", BUSY_DELAY
        entry, slot = posted
        error = entry["error"]
        run_hooks(entry)
        if error is None:
            self.counts["webhooks:success"] += 1
            self._done(head, seq=seq, slot=slot, entry=entry)
            if isinstance(seq, int):
                self.cursor = max(self.cursor, seq)
            return "sent", 0.0
        self.counts["webhooks:fail"] += 1
        pipe = self.redis.pipeline(transaction=False)
        pipe.zrem(*slot)
        _log(pipe, entry)
        pipe.execute()
        self.flush()
        outcome = failed(self.redis, head, job, url, error, self.fixed_now or time.time())
        if outcome[0] == "dead":   # dead_letter finished the job; the next head gets a lease
            self.redis.eval(webhook_order.POP, 2, keys.webhook_queue(self.account), DUE, head,
                            time.time() + DELIVERY_LEASE)
        return outcome

    def _done(self, head: str, *, seq=None, slot=None, entry=None) -> None:
        """A final outcome: bookkeeping, cursor (after a success), pop, lease, log: one MULTI."""
        pipe = self.redis.pipeline(transaction=True)
        mark = str(int(seq)) if isinstance(seq, int) and slot else ""
        pipe.eval(_FINISH, 6, JOBS, DUE, ATTEMPTS, FIRST_FAIL, DONE, keys.account(self.account),
                  head, self.account, mark)
        pipe.eval(webhook_order.POP, 2, keys.webhook_queue(self.account), DUE, head,
                  time.time() + DELIVERY_LEASE)
        if slot:
            pipe.zrem(*slot)
        if entry:
            _log(pipe, entry)
        pipe.exists(keys.account(self.account))
        self.exists = bool(pipe.execute()[-1])

    def flush(self) -> None:
        """Delivery counts for /v1/stats, once per batch instead of per event."""
        counts = {k: v for k, v in self.counts.items() if v}
        if counts:
            stats.safe_incr(self.redis, counts)
            self.counts = dict.fromkeys(self.counts, 0)


def _log(pipe, entry: dict) -> None:
    # the web UI's list of the last deliveries (recent)
    pipe.lpush(RECENT, json.dumps(entry, separators=(",", ":")))
    pipe.ltrim(RECENT, 0, RECENT_MAX - 1)
