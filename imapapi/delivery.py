"""Webhook delivery as plain functions: POST with timeouts, backoff, dead letters, lease sweeper.

Jobs live in Redis (events.JOBS/DUE), registered in the same Lua step as the event, so a Celery
message is only a wake-up: a lost one (sidecar crash before enqueue, worker killed mid-delivery)
is re-enqueued by `sweep` once its lease passes. Delivery is idempotent by event id (a "sent"
marker), so a duplicate wake-up never POSTs again after a success.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import time
from urllib.parse import urlsplit, urlunsplit

import requests

from . import keys
from . import tasknames as T
from . import webhook_settings
from .events import DELIVERY_LEASE, DUE, JOBS
from .settings import get_settings

log = logging.getLogger(__name__)

ATTEMPTS = "ia:wh:attempts"          # HASH event id -> failed attempts so far
FIRST_FAIL = "ia:wh:first"           # HASH event id -> epoch of the first failure
SENT_TTL = 7 * 86400                 # remember delivered ids this long (duplicate wake-ups)
# Retry for at least this long before dead-lettering (env override for tests).
RETRY_WINDOW = float(os.environ.get("IMAPAPI_WEBHOOK_RETRY_WINDOW", 3600))
MAX_BACKOFF = 300.0
PER_TARGET = 4                       # concurrent POSTs per receiver: a hung one can't take the pool
BUSY_DELAY = 1.0
DEAD_MAX = 10000
USER_AGENT = "imapapi-py/0.1"


def sent_key(event_id: str) -> str:
    return f"ia:wh:sent:{event_id}"


def busy_key(url: str) -> str:
    return "ia:wh:busy:" + hashlib.sha1(url.encode()).hexdigest()[:16]


def backoff(attempt: int) -> float:
    """2, 4, 8 ... capped at 5 min: >= 1 hour of retries takes about 16 attempts."""
    return min(MAX_BACKOFF, 2.0 * 2 ** max(0, attempt - 1))


def sign(body: bytes, secret: str | None) -> str | None:
    if not secret:
        return None
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def split_auth(url: str) -> tuple[str, str | None]:
    """URL userinfo becomes Basic auth (as the original); -> (url without it, header or None)."""
    parts = urlsplit(url)
    if not parts.username:
        return url, None
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    cred = f"{parts.username}:{parts.password or ''}".encode()
    return (urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)),
            "Basic " + base64.b64encode(cred).decode())


def post(url: str, body: bytes, event_id: str, secret: str | None, timeout: float):
    """One POST; -> None on 2xx, else an error string. Never waits longer than the timeouts."""
    url, auth = split_auth(url)
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
               "X-IMAPAPI-Event-Id": event_id}
    signature = sign(body, secret)
    if signature:
        headers["X-IMAPAPI-Signature"] = signature
    if auth:
        headers["Authorization"] = auth
    try:
        resp = requests.post(url, data=body, headers=headers, allow_redirects=False,
                             timeout=(min(3.0, timeout), timeout))
    except requests.RequestException as exc:
        return f"{type(exc).__name__}: {exc}"[:500]
    if 200 <= resp.status_code < 300:
        return None
    return f"HTTP {resp.status_code}"


def _finish(redis, event_id: str, *, sent: bool) -> None:
    pipe = redis.pipeline(transaction=True)
    if sent:
        pipe.set(sent_key(event_id), "1", ex=SENT_TTL)
    pipe.hdel(JOBS, event_id)
    pipe.zrem(DUE, event_id)
    pipe.hdel(ATTEMPTS, event_id)
    pipe.hdel(FIRST_FAIL, event_id)
    pipe.execute()


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


def deliver_event(redis, event_id: str, *, now: float | None = None) -> tuple[str, float]:
    """Plain function behind the task -> (outcome, countdown for a retry)."""
    raw = redis.hget(JOBS, event_id)
    if raw is None:
        return "gone", 0.0
    if redis.exists(sent_key(event_id)):
        _finish(redis, event_id, sent=True)
        return "duplicate", 0.0
    job = json.loads(raw)
    event = job["event"]
    account = event.get("account")
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
    busy = busy_key(url)
    timeout = get_settings().webhook_timeout
    slot = f"{event_id}:{time.time_ns()}"
    if not redis.eval(_ACQUIRE, 1, busy, slot, time.time(), timeout + 5, PER_TARGET):
        redis.zadd(DUE, {event_id: time.time() + BUSY_DELAY + DELIVERY_LEASE})
        return "busy", BUSY_DELAY
    try:
        body = json.dumps(event, separators=(",", ":")).encode()
        error = post(url, body, event_id, webhook_settings.secret(redis), timeout)
    finally:
        redis.zrem(busy, slot)
    now = now or time.time()
    if error is None:
        _finish(redis, event_id, sent=True)
        return "sent", 0.0
    attempt = redis.hincrby(ATTEMPTS, event_id, 1)
    redis.hsetnx(FIRST_FAIL, event_id, now)
    first = float(redis.hget(FIRST_FAIL, event_id) or now)
    if now - first >= RETRY_WINDOW:
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
        job = {"stream": entry.get("stream"), "event": entry["event"]}
        pipe = redis.pipeline(transaction=True)
        pipe.lrem(keys.DEAD_LETTERS, 1, raw)
        pipe.delete(sent_key(event_id))
        pipe.hset(JOBS, event_id, json.dumps(job, separators=(",", ":")))
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
    from celery_tasks.app import celery   # lazy: the API and sidecar import this module too

    for event_id in event_ids:
        celery.send_task(T.WEBHOOK_DELIVER, kwargs={"event_id": event_id})
