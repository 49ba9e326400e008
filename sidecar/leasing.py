"""This sidecar's account leases (imapapi.leases): batch renew, self-fencing, heartbeat, janitor.

One thread, woken every TICK:
- self-fence first: a lease whose renewal has not been confirmed within its TTL (measured on
  the local monotonic clock from when the renewal was SENT, so it is never later than Redis's
  expiry) is given up without asking Redis. After a SIGSTOP/GC pause/partition longer than the
  lease this runs before anything else can, and the connections go at once;
- heartbeat (every HEARTBEAT_EVERY, Redis TIME) with this replica's info for GET /v1/sidecars;
- renewal of all leases, BATCH accounts per round trip, every TTL/3; lost ones are dropped;
- janitor: commands queued for a replica silent for rpc.HEARTBEAT_SUSPECT are answered 503
  (state "handover") so callers need not wait out their deadline; a replica silent for
  DEAD_AFTER loses its heartbeat entry, info and command list.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable

from imapapi import errors, keys, leases, rpc, wire

log = logging.getLogger(__name__)

TICK = 0.25
HEARTBEAT_EVERY = 1.0
JANITOR_EVERY = 1.0
DEAD_AFTER = 3 * rpc.HEARTBEAT_STALE
MARGIN = 0.25    # seconds of the TTL a local deadline keeps in hand (clock rate differences)

# KEYS: sidecars zset, info hash.  ARGV: sid, info JSON. Score = Redis time (the clock the
# API's enqueue compares with).
_HEARTBEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return tostring(now)
"""

# KEYS: sidecars zset, info hash.  ARGV: own sid, suspect s, dead s, queue prefix, suffix.
# -> the commands taken from the queues of replicas that stopped beating.
_JANITOR = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local out = {}
local quiet = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]), 'WITHSCORES')
for i = 1, #quiet, 2 do
  local sid, beat = quiet[i], tonumber(quiet[i + 1])
  if sid ~= ARGV[1] then
    local q = ARGV[4] .. sid .. ARGV[5]
    local cmds = redis.call('LRANGE', q, 0, -1)
    if #cmds > 0 then
      redis.call('DEL', q)
      for _, c in ipairs(cmds) do out[#out + 1] = c end
    end
    if beat < now - tonumber(ARGV[3]) then
      redis.call('ZREM', KEYS[1], sid)
      redis.call('HDEL', KEYS[2], sid)
    end
  end
end
return out
"""
_QUEUE_PREFIX, _QUEUE_SUFFIX = keys.sidecar_commands("\0").split("\0")


class LeaseKeeper:
    """Which account leases this sidecar holds (token each) and until when they are safe."""

    def __init__(self, redis, sid: str, ttl: float, on_lost: Callable[[list[str]], None],
                 info: Callable[[], dict] | None = None):
        self.redis, self.sid, self.ttl = redis, sid, ttl
        self.on_lost = on_lost
        self.info = info or dict
        self._held: dict[str, int] = {}
        self._until: dict[str, float] = {}   # account -> local monotonic deadline
        self._lock = threading.Lock()
        self.started = time.time()
        self.renewed_at = 0.0      # epoch of the last completed renewal round
        self.renew_ms = 0.0        # how long that round took
        self.fenced = 0            # writes refused by the fence (lost leases found the hard way)
        self._next = {"beat": 0.0, "renew": 0.0, "janitor": 0.0}

    # -- what the rest of the sidecar asks --------------------------------------------------
    def token(self, account: str) -> int | None:
        with self._lock:
            return self._held.get(account)

    def valid(self, account: str) -> bool:
        with self._lock:
            return self._until.get(account, 0.0) > time.monotonic()

    def count(self) -> int:
        return len(self._held)

    def acquire(self, names) -> dict[str, int]:
        sent = time.monotonic()
        got = leases.acquire(self.redis, self.sid, names, self.ttl)
        with self._lock:
            for acct, tok in got.items():
                self._held[acct] = tok
                self._until[acct] = sent + self.ttl - MARGIN
        return got

    def release(self, held: dict[str, int]) -> list[str]:
        """Give leases up (after LOGOUT) and tell the other replicas, who take them at once."""
        with self._lock:
            mine = {a: t for a, t in held.items() if self._held.get(a) == t}
            for acct in mine:
                self._held.pop(acct, None)
                self._until.pop(acct, None)
        if not mine:
            return []
        out = leases.release(self.redis, self.sid, mine)
        if out:
            self.redis.publish(keys.SIDECARS_CHANNEL, json.dumps({"released": out, "by": self.sid}))
        return out

    def lost(self, account: str, token) -> None:
        """A fenced write was refused: the lease is gone even if we had not noticed yet."""
        self.fenced += 1
        with self._lock:
            if self._held.get(account) != token:
                return
            self._held.pop(account, None)
            self._until.pop(account, None)
        log.warning("%s: lease lost (a write was refused); dropping the connection", account)
        self.on_lost([account])

    # -- the thread ---------------------------------------------------------------------------
    def self_fence(self) -> list[str]:
        now = time.monotonic()
        with self._lock:
            gone = [a for a, until in self._until.items() if until <= now]
            for acct in gone:
                self._held.pop(acct, None)
                self._until.pop(acct, None)
        if gone:
            log.warning("%d leases not renewed in time (paused or cut off from Redis?); "
                        "dropping those connections", len(gone))
            self.on_lost(gone)
        return gone

    def renew(self) -> list[str]:
        with self._lock:
            held = dict(self._held)
        if not held:
            self.renewed_at, self.renew_ms = time.time(), 0.0
            return []
        sent = time.monotonic()
        lost = set(leases.renew(self.redis, self.sid, held, self.ttl))
        took = time.monotonic() - sent
        gone = []
        with self._lock:
            for acct, tok in held.items():
                if self._held.get(acct) != tok:
                    continue   # released or re-acquired meanwhile
                if acct in lost:
                    self._held.pop(acct, None)
                    self._until.pop(acct, None)
                    gone.append(acct)
                else:
                    self._until[acct] = sent + self.ttl - MARGIN
        self.renewed_at, self.renew_ms = time.time(), took * 1000
        if gone:
            log.warning("%d leases lost to other replicas; dropping those connections", len(gone))
            self.on_lost(gone)
        return gone

    def heartbeat(self) -> None:
        info = {"host": socket.gethostname(), "pid": os.getpid(), "started": self.started,
                "leases": len(self._held), "leaseTtl": self.ttl, "renewedAt": self.renewed_at,
                "renewMs": round(self.renew_ms, 1), "fenced": self.fenced, **self.info()}
        self.redis.eval(_HEARTBEAT, 2, keys.SIDECARS, keys.SIDECARS_INFO, self.sid,
                        json.dumps(info, separators=(",", ":")))

    def leave(self) -> None:
        """Stop counting as live at once: other replicas recompute ownership without us."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.zrem(keys.SIDECARS, self.sid)
        pipe.hdel(keys.SIDECARS_INFO, self.sid)
        pipe.publish(keys.SIDECARS_CHANNEL, json.dumps({"left": self.sid}))
        pipe.execute()

    def janitor(self) -> int:
        raw = self.redis.eval(_JANITOR, 2, keys.SIDECARS, keys.SIDECARS_INFO, self.sid,
                              rpc.HEARTBEAT_SUSPECT, DEAD_AFTER, _QUEUE_PREFIX, _QUEUE_SUFFIX)
        answered = 0
        for item in raw:
            try:
                command = wire.Command.loads(item)
            except (ValueError, TypeError):
                continue
            if command.expired():
                continue
            rpc.send_reply(self.redis, wire.Reply(
                id=command.id, ok=False, error=errors.NotConnected("handover").to_dict()))
            answered += 1
        if answered:
            log.info("answered %d commands queued for a silent replica (handover)", answered)
        return answered

    def step(self) -> None:
        """One tick: self-fence, then whatever is due."""
        self.self_fence()
        now = time.monotonic()
        for name, every, fn in (("beat", HEARTBEAT_EVERY, self.heartbeat),
                                ("renew", self.ttl / 3, self.renew),
                                ("janitor", JANITOR_EVERY, self.janitor)):
            if now >= self._next[name]:
                self._next[name] = now + every
                try:
                    fn()
                except Exception as exc:   # Redis trouble: the self-fence decides what is lost
                    log.warning("lease %s failed: %s", name, exc)

    def run(self, stopping: threading.Event) -> None:
        while not stopping.wait(TICK):
            try:
                self.step()
            except Exception:
                log.exception("lease keeper step failed")
