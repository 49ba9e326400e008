"""Per-account webhook order: each account's events go out one at a time, in feed order.

The commit appends every wanted event id to the account's queue (keys.webhook_queue) in the
same Lua step that gives it its `seq`. A delivery task drains one account's queue under a lock
(one POST in flight per account; different accounts run in parallel in the worker pool). A
failed POST holds back only its account: the lock becomes a hold until the retry is due, so
wake-ups for newer events of that account do not jump the queue or shorten the backoff. Only
the head of a queue has a lease in the due set, so the sweeper re-enqueues one task per stalled
account, not one per waiting event.
"""
from __future__ import annotations

import os
import threading
import time

from . import keys
from .keys import WEBHOOK_DUE as DUE

BATCH = 50             # queue heads read per round trip (their jobs and the settings with them)
DRAIN_EVENTS = 5000    # per task run at most, and at most DRAIN_SECONDS: a busy account keeps
DRAIN_SECONDS = 10.0   # its task while events keep coming, then re-enqueues itself (fair to the
                       # other accounts in the pool) instead of a new task per 100 events
LOCK_TTL = 5.0         # renewed every LOCK_TTL/3 while the drainer lives: a killed worker's
                       # account is taken over within seconds, not after a POST timeout
HOLD = "hold"          # lock value while the head waits for its retry

_LOCK = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return -1 end
local cur = redis.call('GET', KEYS[1]) or ''
if cur == ARGV[3] then return redis.call('PTTL', KEYS[1]) end
return -2
"""
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) return 1 end
return 0
"""
_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return redis.call('LLEN', KEYS[2])
"""
# Done with `id`: drop it from the queue and give the next head a lease (the one due entry).
POP = """
if redis.call('LINDEX', KEYS[1], 0) == ARGV[1] then redis.call('LPOP', KEYS[1])
else redis.call('LREM', KEYS[1], 1, ARGV[1]) end
local nxt = redis.call('LINDEX', KEYS[1], 0)
if nxt then redis.call('ZADD', KEYS[2], 'NX', ARGV[2], nxt) end
return nxt
"""
# Append an id (a resent dead letter); it gets a lease when it is the head.
PUSH = """
if redis.call('RPUSH', KEYS[1], ARGV[1]) == 1 then redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1]) end
return 1
"""


def _s(value):
    return value.decode() if isinstance(value, bytes) else value


def drain(redis, account: str, run, *, now) -> tuple[str, float]:
    """Deliver the account's queue head by head: run.prefetch(heads) reads what a batch of
    heads needs, run.attempt(event_id) -> (outcome, countdown) and takes the head off the queue
    (POP) on every final outcome.

    -> (the last attempt's outcome, 0) once the queue is empty; ("more", 0) budget used, call
    again; ("retry"|"busy", seconds) the head waits; ("held", 0) another task is draining
    (it sees our event too)."""
    lock, queue = keys.webhook_lock(account), keys.webhook_queue(account)
    token = os.urandom(8).hex()
    ttl_ms = int(LOCK_TTL * 1000)
    outcome, done, until = "sent", 0, time.monotonic() + DRAIN_SECONDS
    while True:
        got = int(redis.eval(_LOCK, 1, lock, token, ttl_ms, HOLD))
        if got == -2:
            # someone drains: if it was killed, its lock expires soon; the sweeper looks then
            head = _s(redis.lindex(queue, 0))
            left = redis.pttl(lock)
            if head and left and left > 0:
                redis.zadd(DUE, {head: now() + left / 1000.0 + 0.2})
            return "held", 0.0
        if got >= 0:   # a failed head waits for its retry: come back then
            return "busy", max(0.05, got / 1000.0)
        stop = threading.Event()
        renewer = threading.Thread(target=_renew, args=(redis, lock, token, ttl_ms, stop),
                                   name="webhook-lock", daemon=True)
        renewer.start()
        try:
            while True:
                # only the lock holder takes heads off the queue, commits only append to it:
                # the heads read here stay the queue's first ones while we work through them
                heads = [_s(h) for h in redis.lrange(queue, 0, BATCH - 1)]
                if not heads:
                    break
                run.prefetch(heads)
                for head in heads:
                    if done >= DRAIN_EVENTS or time.monotonic() >= until:
                        return "more", 0.0
                    outcome, countdown = run.attempt(head)
                    if outcome == "retry":
                        # keep the account held until the retry is due (no early retry by a
                        # wake-up)
                        stop.set()
                        renewer.join(5)
                        redis.eval(_RENEW, 1, lock, token, HOLD, int(countdown * 1000))
                        token = HOLD
                        return outcome, countdown
                    if outcome == "busy":
                        return outcome, countdown
                    done += 1
        finally:
            stop.set()
            renewer.join(5)
            left = int(redis.eval(_UNLOCK, 2, lock, queue, token)) if token != HOLD else 1
        if not left:
            return outcome, 0.0
        # a commit landed between our last look and the unlock: take the lock again


def _renew(redis, lock: str, token: str, ttl_ms: int, stop: threading.Event) -> None:
    """Keep our lock alive while a POST may block for up to its timeout."""
    while not stop.wait(ttl_ms / 3000.0):
        try:
            if not redis.eval(_RENEW, 1, lock, token, token, ttl_ms):
                return
        except Exception:   # Redis hiccup: the next round tries again; expiry is the fallback
            pass
