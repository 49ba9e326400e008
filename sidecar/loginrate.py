"""Login pacing: at most `rate` IMAP logins per second per IMAP host, across all replicas.

A handover of a killed replica's accounts (or a cold start) must not hit a provider with a
login flood: providers lock accounts out for that. One Redis key per host holds the GCRA
"theoretical arrival time"; a login takes the next slot or learns how long to wait. A burst of
`rate` logins (one second's worth) may go at once.
"""
from __future__ import annotations

import logging
import threading

from imapapi import keys

log = logging.getLogger(__name__)

MAX_WAIT = 30.0   # never park a setup longer than this on pacing alone

# KEYS: the host's slot key.  ARGV: ms per login, burst ms. -> 0 (go) or ms to wait.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local step, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
if tat - now > burst then return tat - now - burst end
redis.call('SET', KEYS[1], tat + step, 'PX', math.floor(tat + step - now + 1000))
return 0
"""


class LoginGate:
    """`wait(host, stopping)` blocks until this login may go (Redis down: goes at once)."""

    def __init__(self, redis, rate: int):
        self.redis = redis
        self.step_ms = 1000.0 / max(1, rate)
        self.burst_ms = 1000.0 - self.step_ms
        self.waited = 0.0   # total seconds logins were held back (for the heartbeat info)
        self._lock = threading.Lock()

    def wait(self, host: str | None, stopping: threading.Event | None = None) -> float:
        if not host:
            return 0.0
        key = keys.login_rate(host)
        held = 0.0
        while held < MAX_WAIT:
            try:
                ms = int(self.redis.eval(_TAKE, 1, key, self.step_ms, self.burst_ms))
            except Exception as exc:   # pacing is a courtesy; never block logins on Redis
                log.debug("login pacing unavailable: %s", exc)
                return held
            if ms <= 0:
                break
            pause = min(ms / 1000.0 + 0.001, MAX_WAIT - held)
            if stopping is not None and stopping.wait(pause):
                break
            if stopping is None:
                threading.Event().wait(pause)
            held += pause
        if held:
            with self._lock:
                self.waited += held
        return held

    def take(self, host: str | None) -> bool:
        """One login slot now, without waiting -> taken (Redis down: yes). For optional logins
        made while the account's main connection is held (sidecar.sync.probe)."""
        if not host:
            return True
        try:
            return int(self.redis.eval(_TAKE, 1, keys.login_rate(host), self.step_ms,
                                       self.burst_ms)) <= 0
        except Exception as exc:
            log.debug("login pacing unavailable: %s", exc)
            return True
