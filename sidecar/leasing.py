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
        # At 10,000 leases the per-round work was the idle sidecar's biggest cost: the packed
        # renewal argument is kept while the held set is unchanged (`_version` counts changes),
        # and the self-fence, 4 times a second, skips its scan before the earliest deadline.
        self._version = 0
        self._packed: tuple[int, list[str]] | None = None
        self._earliest = float("inf")
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
            if got:
                self._version += 1
                self._earliest = min(self._earliest, sent + self.ttl - MARGIN)
        return got

    def _drop(self, accounts) -> None:
        """Forget leases (the caller holds the lock)."""
        for acct in accounts:
            self._held.pop(acct, None)
            self._until.pop(acct, None)
        self._version += 1

    def release(self, held: dict[str, int]) -> list[str]:
        """Give leases up (after LOGOUT) and tell the other replicas, who take them at once."""
        with self._lock:
            mine = {a: t for a, t in held.items() if self._held.get(a) == t}
            self._drop(mine)
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
            self._drop([account])
        log.warning("%s: lease lost (a write was refused); dropping the connection", account)
        self.on_lost([account])

    # -- the thread ---------------------------------------------------------------------------
    def self_fence(self) -> list[str]:
        now = time.monotonic()
        if now < self._earliest:
            return []
        with self._lock:
            gone = [a for a, until in self._until.items() if until <= now]
            if gone:
                self._drop(gone)
            self._earliest = min(self._until.values(), default=float("inf"))
        if gone:
            log.warning("%d leases not renewed in time (paused or cut off from Redis?); "
                        "dropping those connections", len(gone))
            self.on_lost(gone)
        return gone

    def renew(self) -> list[str]:
        with self._lock:
            if not self._held:
                self.renewed_at, self.renew_ms = time.time(), 0.0
                return []
            if self._packed is None or self._packed[0] != self._version:
                self._packed = (self._version, leases.pack(self._held.items()))
            version, packed = self._packed
            held = dict(self._held)
        sent = time.monotonic()
        lost = set(leases.renew(self.redis, self.sid, held, self.ttl, packed))
        took = time.monotonic() - sent
        deadline = sent + self.ttl - MARGIN
        with self._lock:
            gone = [a for a in lost if self._held.get(a) == held.get(a)]
            if gone:
                self._drop(gone)
            if self._version == version + bool(gone):
                # nothing else changed while the round was out: every lease still held was
                # renewed with the token it has now
                self._until = dict.fromkeys(self._held, deadline)
            else:
                for acct, tok in held.items():
                    if acct not in lost and self._held.get(acct) == tok:
                        self._until[acct] = deadline   # others were released or re-acquired
            self._earliest = min(self._until.values(), default=float("inf"))
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
