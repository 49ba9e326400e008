"""Dashboard counters in per-minute Redis buckets (/v1/stats) and accounts-per-state counts.

Layout as the original: `ia:stats:{counter}:{YYYYMMDD}` HASH, field `YYYYMMDDHHMM` (UTC minute)
-> count, plus the SET `ia:stats:keys` of counter names. A read for a window touches one hash per
counter and day (at most 8 per counter for the 7-day maximum), never one key per minute.
Connection states: `ia:states` HASH state -> number of accounts, kept by every state write
(imapapi.accounts and the sidecar), so neither /metrics nor /v1/stats reads every account.
"""
from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

from . import keys

KEYS_SET = keys.STATS_COUNTERS
STATES_KEY = keys.ACCOUNT_STATES
BUCKET_TTL = 8 * 86400          # a day bucket outlives the longest window (7 days)
MAX_WINDOW = 7 * 86400


bucket_key = keys.stats_bucket
# In-process observers of every safe_incr (the sidecar's and worker's Prometheus counters).
ON_INCR: list = []


def _minute(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, timezone.utc).replace(second=0, microsecond=0)


def incr(redis, counts: dict[str, int], *, now: float | None = None) -> None:
    """Add to counters in the current minute (one round trip for any number of counters)."""
    counts = {k: v for k, v in counts.items() if v}
    if not counts:
        return
    minute = _minute(now or time.time())
    day, field = minute.strftime("%Y%m%d"), minute.strftime("%Y%m%d%H%M")
    pipe = redis.pipeline(transaction=False)
    pipe.sadd(KEYS_SET, *counts)
    for name, value in counts.items():
        key = bucket_key(name, day)
        pipe.hincrby(key, field, int(value))
        pipe.expire(key, BUCKET_TTL)
    pipe.execute()


def safe_incr(redis, counts: dict[str, int]) -> None:
    """incr that never fails the caller: a lost dashboard count must not fail a delivery."""
    for hook in ON_INCR:
        try:
            hook(counts)
        except Exception:   # metrics must never fail the caller either
            pass
    try:
        incr(redis, counts)
    except Exception:   # Redis hiccup: the counter is approximate by design
        pass


def window(redis, seconds: int = 3600, *, now: float | None = None) -> dict[str, int]:
    """Counters with data in the last `seconds` (whole minutes, the current one included)."""
    now = now or time.time()
    seconds = max(60, min(int(seconds or 3600), MAX_WINDOW))
    start = _minute(now - seconds + 60)
    end = _minute(now)
    first = start.strftime("%Y%m%d%H%M")
    days = []
    day = start.replace(hour=0, minute=0)
    while day <= end:
        days.append(day.strftime("%Y%m%d"))
        day += timedelta(days=1)
    names = sorted(n.decode() if isinstance(n, bytes) else n for n in redis.smembers(KEYS_SET))
    pipe = redis.pipeline(transaction=False)
    for name in names:
        for d in days:
            pipe.hgetall(bucket_key(name, d))
    results = iter(pipe.execute())
    out = {}
    for name in names:
        total = 0
        for _ in days:
            for field, value in next(results).items():
                field = field.decode() if isinstance(field, bytes) else field
                if field >= first:
                    total += int(value)
        if total:
            out[name] = total
    return out


class Buffer:
    """Counts kept in process and written once a second by a daemon thread (the API counts every
    request: a Redis round trip each would sit on the request path)."""

    def __init__(self, get_redis, every: float = 1.0):
        self._get_redis = get_redis
        self._every = every
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] = self._counts.get(name, 0) + n
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="stats-flush", daemon=True)
                self._thread.start()

    def flush(self) -> None:
        with self._lock:
            counts, self._counts = self._counts, {}
        if counts:
            try:
                incr(self._get_redis(), counts)
            except Exception:   # Redis down: put them back for the next flush
                with self._lock:
                    for k, v in counts.items():
                        self._counts[k] = self._counts.get(k, 0) + v

    def _run(self) -> None:
        while True:
            time.sleep(self._every)
            self.flush()


# -- accounts per connection state ------------------------------------------------------------
# Lua fragment shared by every state writer: move one account from its old state to a new one.
# Counts are kept only once they exist (the first read recounts), so a partial set never appears.
STATE_MOVE_LUA = """
local function imapapi_state_move(rk, sk, new)
  local old = redis.call('HGET', rk, 'state') or 'init'
  if old ~= new and redis.call('EXISTS', sk) == 1 then
    redis.call('HINCRBY', sk, old, -1)
    redis.call('HINCRBY', sk, new, 1)
  end
end
"""


def recount_states(redis) -> dict[str, int]:
    """Full recount (one HGET per account): only when the counts are missing or checked."""
    ids = [m.decode() for m in redis.smembers(keys.ACCOUNTS)]
    pipe = redis.pipeline(transaction=False)
    for account in ids:
        pipe.hget(keys.account(account), "state")
    counts: dict[str, int] = {}
    for state in pipe.execute():
        state = (state or b"init").decode()
        counts[state] = counts.get(state, 0) + 1
    pipe = redis.pipeline(transaction=True)
    pipe.delete(STATES_KEY)
    if counts:
        pipe.hset(STATES_KEY, mapping=counts)
    pipe.execute()
    return counts


def state_counts(redis) -> dict[str, int]:
    """Accounts per state from the maintained counters (recounted once if they are missing)."""
    raw = redis.hgetall(STATES_KEY)
    if not raw:
        if not redis.scard(keys.ACCOUNTS):
            return {}
        return recount_states(redis)
    out = {}
    for k, v in raw.items():
        out[k.decode() if isinstance(k, bytes) else k] = max(0, int(v))
    return out
