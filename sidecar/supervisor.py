"""Supervisor: heartbeat, rendezvous ownership over live sidecars, account start/stop/restart."""
from __future__ import annotations

import hashlib
import json
import logging
import threading
import time

from imapapi import keys, rpc
from imapapi.accounts import get_record, now_iso

from . import runtime as runtime_mod
from .account import Account, imap_signature
from .server import CommandServer

log = logging.getLogger(__name__)

HEARTBEAT_EVERY = 2.0
RECONCILE_EVERY = 5.0

# Drop our owner entries (only where we are still the owner) and mark those accounts
# disconnected; a replica that already took an account over is left alone.
_RELEASE = """
local n = 0
for i, acct in ipairs(ARGV) do
  if i > 3 and redis.call('HGET', KEYS[1], acct) == ARGV[1] then
    redis.call('HDEL', KEYS[1], acct)
    local rk = ARGV[2] .. acct
    if redis.call('EXISTS', rk) == 1 then
      redis.call('HSET', rk, 'state', 'disconnected', 'stateChanged', ARGV[3])
    end
    n = n + 1
  end
end
return n
"""


def weight(sid: str, account: str) -> int:
    return int.from_bytes(hashlib.blake2b(f"{sid}\0{account}".encode(), digest_size=8).digest(), "big")


def owner(account: str, sidecars) -> str | None:
    """Rendezvous (highest random weight) hashing: stable, and only 1/n accounts move on change."""
    best = None
    for sid in sidecars:
        key = (weight(sid, account), sid)
        if best is None or key > best:
            best = key
    return best[1] if best else None


def owned(accounts, sidecars, sid: str) -> set[str]:
    return {a for a in accounts if owner(a, sidecars) == sid}


class Supervisor:
    """Owns the accounts of this sidecar; hands each one the process Runtime (sidecar.runtime)."""

    def __init__(self, settings, redis):
        self.runtime = runtime_mod.build(settings, redis)
        self.settings = settings
        self.redis = redis
        self.sid = self.runtime.sid
        self.pool = self.runtime.pool
        self.stopping = self.runtime.stopping
        self.accounts: dict[str, Account] = {}
        self._changed: set[str] = set()
        self._wake = threading.Event()
        self._lock = threading.Lock()

    def account(self, account_id: str) -> Account | None:
        """The live Account for an id (the command server looks ops' accounts up here)."""
        return self.accounts.get(account_id)

    def stop(self) -> None:
        """Ask run() to shut down (signal handlers call this)."""
        self.stopping.set()
        self._wake.set()

    # -- ownership ---------------------------------------------------------------------------
    def heartbeat(self) -> None:
        self.redis.zadd(keys.SIDECARS, {self.sid: time.time()})

    def reconcile_all(self) -> None:
        members = {m.decode() for m in self.redis.smembers(keys.ACCOUNTS)}
        live = set(rpc.live_sidecars(self.redis)) | {self.sid}
        mine = owned(members, live, self.sid)
        with self._lock:
            current = set(self.accounts)
        for account_id in current - mine:
            self._stop(account_id)
        names = sorted(mine)
        pipe = self.redis.pipeline(transaction=False)
        for account_id in names:
            pipe.hmget(keys.account(account_id), "imap", "path", "reconnectRequested", "state")
        fields = pipe.execute()
        for account_id, (imap, path, forced, stored) in zip(names, fields):
            acct = self.accounts.get(account_id)
            if acct is None:
                self.reconcile_one(account_id, live)
            elif imap is not None and acct.signature != _signature_raw(imap, path, forced):
                self.reconcile_one(account_id)   # missed a notification: compare and restart
            elif acct.state == "connected" and stored not in (None, b"connected"):
                # A replica that briefly owned the account marked it disconnected on its way
                # out, while our connection stayed up: the holder's truth wins.
                acct.persist_state()
        held = {a: self.sid for a in names if a in self.accounts}
        if held:
            # Re-assert ownership (repairs entries another replica removed while handing over).
            self.redis.hset(keys.OWNERS, mapping=held)

    def reconcile_one(self, account_id: str, live: set[str] | None = None) -> None:
        record = get_record(self.redis, account_id)
        if live is None:
            live = set(rpc.live_sidecars(self.redis)) | {self.sid}
        if record is None or owner(account_id, live) != self.sid:
            self._stop(account_id)
            return
        with self._lock:
            acct = self.accounts.get(account_id)
            if acct is None:
                acct = self.accounts[account_id] = Account(self.runtime, account_id, record)
                new = True
            else:
                new = False
        if new:
            self.redis.hset(keys.OWNERS, account_id, self.sid)
            acct.start()
            return
        signature = imap_signature(record)
        if signature != acct.signature:
            log.info("%s: settings changed, reconnecting", account_id)
            acct.signature, acct.record = signature, record
            acct.restart()

    def _stop(self, account_id: str) -> None:
        with self._lock:
            acct = self.accounts.pop(account_id, None)
        if acct is not None:
            log.info("%s: stopping", account_id)
            acct.stopped = True
            self._release([account_id])
            self.pool.submit(acct.stop)

    def _release(self, names: list[str]) -> None:
        for start in range(0, len(names), 1000):
            self.redis.eval(_RELEASE, 1, keys.OWNERS, self.sid, keys.account(""), now_iso(),
                            *names[start:start + 1000])

    # -- threads -----------------------------------------------------------------------------
    def _listen(self) -> None:
        """Account changes from the API arrive here within milliseconds."""
        while not self.stopping.is_set():
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(keys.ACCOUNTS_CHANNEL)
                while not self.stopping.is_set():
                    msg = pubsub.get_message(timeout=0.5)
                    if msg and msg.get("type") == "message":
                        data = msg["data"]
                        with self._lock:
                            self._changed.add(data.decode() if isinstance(data, bytes) else data)
                        self._wake.set()
            except Exception as exc:
                log.warning("account channel failed (%s); resubscribing", exc)
                self._wake.set()   # changes may have been missed: the loop does a full pass
                self.stopping.wait(1)
            finally:
                try:
                    pubsub.close()
                except Exception:
                    pass

    def _beat(self) -> None:
        """Own thread: a long reconcile pass (10,000 accounts) must not make us look dead."""
        while not self.stopping.wait(HEARTBEAT_EVERY):
            try:
                self.heartbeat()
            except Exception as exc:
                log.warning("heartbeat failed: %s", exc)

    def run(self) -> None:
        while not self.stopping.is_set():   # a container may start before Redis is up
            try:
                self.heartbeat()
                break
            except Exception as exc:
                log.warning("Redis not reachable (%s); retrying", exc)
                self.stopping.wait(2)
        if self.stopping.is_set():
            return
        self.runtime.reactor.start()
        server = CommandServer(self.runtime, self.account)
        server.start()
        threading.Thread(target=self._listen, name="account-channel", daemon=True).start()
        threading.Thread(target=self._beat, name="heartbeat", daemon=True).start()
        log.info("sidecar %s started (pool %d)", self.sid, self.settings.sidecar_pool)
        last_full = 0.0
        while not self.stopping.is_set():
            now = time.time()
            try:
                if now - last_full >= RECONCILE_EVERY:
                    self.reconcile_all()
                    for acct in list(self.accounts.values()):
                        acct.extras.reap(now)
                    last_full = now
                with self._lock:
                    changed, self._changed = self._changed, set()
                for account_id in changed:
                    self.reconcile_one(account_id)
            except Exception:
                log.exception("supervisor pass failed")
            self._wake.wait(0.5)
            self._wake.clear()
        server.join(2)
        self.shutdown()

    def shutdown(self, budget: float = 4.0) -> None:
        """LOGOUT every connection (in parallel, bounded), give up ownership, stop heartbeating."""
        with self._lock:
            accts, self.accounts = list(self.accounts.values()), {}
        try:
            self._release([a.id for a in accts])
        except Exception:
            log.exception("could not release ownership")
        done = threading.Semaphore(0)
        for acct in accts:
            acct.stopped = True

            def job(a=acct):
                try:
                    a.stop(wait=1.0)
                finally:
                    done.release()
            self.pool.submit(job)
        deadline = time.time() + budget
        for _ in accts:
            if not done.acquire(timeout=max(0.0, deadline - time.time())):
                break
        try:
            self.redis.zrem(keys.SIDECARS, self.sid)
        except Exception:
            pass
        self.runtime.reactor.stop()
        self.pool.shutdown()
        log.info("sidecar %s stopped", self.sid)


def _signature_raw(imap: bytes, path: bytes | None, forced: bytes | None) -> str:
    def load(v):
        if v is None:
            return None
        try:
            return json.loads(v)
        except ValueError:
            return v.decode()
    return imap_signature({"imap": load(imap), "path": path.decode() if path else None,
                           "reconnectRequested": forced.decode() if forced else None})
