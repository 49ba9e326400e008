"""Supervisor: rendezvous assignment over live replicas, fenced account leases, start/stop/handover.

Which replica SHOULD hold an account is rendezvous hashing over the live heartbeats (a joining
replica takes about 1/N, a leaving one's accounts spread over the rest). Which replica DOES
hold it is its lease (imapapi.leases): an Account is created only with a lease token, and every
write it makes carries that token. Handover is release-after-LOGOUT: the old holder logs out,
releases the lease and says so on keys.SIDECARS_CHANNEL, the next holder acquires and connects,
so two replicas never hold sessions for one account at once. SIGTERM drains (sidecar.handover):
the replica says it is leaving, keeps its connections and serves requests while it hands its
accounts over as fast as their next holders connect them, then exits. A replica that dies keeps its
leases until they expire (sidecar.leaseTtl); one that was frozen finds them gone or expired and
drops its connections without writing (sidecar.leasing).
"""
from __future__ import annotations

import json
import logging
import threading
import time

from imapapi import keys, leases, rpc, vault
from imapapi.accounts import get_record, purge as purge_account

from . import gcfreeze, handover
from . import runtime as runtime_mod
from .account import Account
from .fsm import imap_signature
from .handover import owned, owner
from .leasing import LeaseKeeper
from .server import CommandServer

log = logging.getLogger(__name__)

RECONCILE_EVERY = 5.0
# Account records re-read per reconcile round, a rotating slice (all of them up to this many):
# they only back up the change notifications, and a failing channel forces a full round anyway.
# Re-reading every record every round (redis-py packing one HMGET per account) was the largest
# idle cost: ~50 ms a round per 1,000 accounts. 250 a round: each record within N/50 s.
RECORD_CHECKS = 250
RETRY_WANTED = 1.0   # accounts assigned to us but still leased elsewhere: try again this often
# Before the first assignment: replicas started together see each other's heartbeat first,
# instead of each taking every account and handing most of them over a second later.
JOIN_SETTLE = 2.0


class Supervisor:
    """Owns the accounts of this sidecar; hands each one the process Runtime (sidecar.runtime)."""

    def __init__(self, settings, redis):
        self.runtime = runtime_mod.build(settings, redis)
        self.settings = settings
        self.redis = redis
        self.sid = self.runtime.sid
        self.pool = self.runtime.pool
        self.stopping = self.runtime.stopping
        self.keeper = self.runtime.leases = LeaseKeeper(
            redis, self.sid, settings.sidecar_lease_ttl, self._lost, info=self._info)
        self.accounts: dict[str, Account] = {}
        self._changed: set[str] = set()
        self._full = False                   # a replica joined/left: recompute everything
        self._released: dict[str, int] = {}  # logged out, lease to give up (batched)
        self._wanted: set[str] = set()       # assigned to us, lease still held elsewhere
        self._moving: set[str] = set()       # assigned elsewhere, still ours: paced release
        self._paced_at = 0.0
        self._check_at = 0                   # where the next round's slice of record checks starts
        self._owned_for: tuple = (None, None, set())   # (members, live, ours) of the last round
        self._freezer = gcfreeze.Freezer()
        self._pacer = handover.Pacer()
        self.drain_until = 0.0               # (draining) when the paced handover gives up
        self._handing = 0                    # handovers whose LOGOUT/release is still running
        self.leaving = threading.Event()     # SIGTERM: draining (sidecar.handover), then stopping
        self._wake = threading.Event()
        self._lock = threading.Lock()

    def account(self, account_id: str) -> Account | None:
        """The live Account for an id, only while its lease is safe (the command server asks)."""
        acct = self.accounts.get(account_id)
        if acct is None or acct.stopped or not self.keeper.valid(account_id):
            return None
        return acct

    def stop(self) -> None:
        """Signal handlers: the first call drains (hands the accounts over, paced, then
        exits); a second one, or one with nothing to hand over, stops at once."""
        if self.leaving.is_set() or not self.accounts:
            self.stopping.set()
        self.leaving.set()
        self._wake.set()

    def _info(self) -> dict:
        accts = list(self.accounts.values())
        return {"accounts": len(accts), "connected": sum(1 for a in accts if a.connected),
                "connecting": self.runtime.ramp.pending(),
                "loginWait": round(self.runtime.logins.waited, 1) if self.runtime.logins else 0,
                "leaving": self.leaving.is_set()}

    # -- assignment -------------------------------------------------------------------------
    def live(self) -> set[str]:
        """Replicas that beat within rpc.HEARTBEAT_SUSPECT (Redis clock) and are not leaving.
        A silent one's accounts are assigned to the others at once; they connect when its
        leases expire. A leaving (draining) one still beats and serves, but is assigned nothing."""
        now = leases.redis_now_ms(self.redis) / 1000.0
        beats = self.redis.zrangebyscore(keys.SIDECARS, now - rpc.HEARTBEAT_SUSPECT, "+inf")
        others = sorted({b.decode() for b in beats} - {self.sid})
        live = set(others)
        for sid, raw in zip(others, self.redis.hmget(keys.SIDECARS_INFO, others) if others else ()):
            try:
                if raw and json.loads(raw).get("leaving"):
                    live.discard(sid)
            except (ValueError, AttributeError):
                pass
        if not self.leaving.is_set():
            live.add(self.sid)
        return live

    def reconcile_all(self, every_record: bool = True) -> None:
        """Assignment, takes and handovers; then re-reads the records of at most RECORD_CHECKS
        of our accounts (`every_record`: all of them, after the channel failed)."""
        members = {m.decode() for m in self.redis.smembers(keys.ACCOUNTS)}
        live = self.live()
        if (members, live) == self._owned_for[:2]:
            mine = self._owned_for[2]   # same accounts, same replicas: same hashing result
        else:
            mine = owned(members, live, self.sid)
            self._owned_for = (members, live, mine)
        with self._lock:
            for account_id in [a for a, acct in self.accounts.items() if acct.stopped]:
                self.accounts.pop(account_id)   # stopped itself (fenced): take it afresh
            current = set(self.accounts)
            self._wanted = set()
            # deleted (no longer a member): released at once, there is no next holder to pace
            # by (pace() would take a sole replica for that holder and keep the account)
            gone = current - members
            self._moving = current - mine - gone
        self._hand_over(sorted(gone))
        self.pace(live)
        self._take(sorted(mine - current))
        names, self._check_at = record_slice(sorted(mine & current), self._check_at,
                                             len(mine) if every_record else RECORD_CHECKS)
        pipe = self.redis.pipeline(transaction=False)
        for account_id in names:
            pipe.hmget(keys.account(account_id), "imap", "path", "reconnectRequested", "state")
        for account_id, (imap, path, forced, stored) in zip(names, pipe.execute()):
            acct = self.accounts.get(account_id)
            if acct is None:
                continue
            if imap is not None and (imap, path, forced) != acct.raw_seen:
                # Opening the secrets took most of a core every round at 2,000 accounts: only
                # bytes that changed since the last round that matched are opened and compared.
                if acct.signature != _signature_raw(imap, path, forced, account_id):
                    self.reconcile_one(account_id, live)   # missed a notification: restart
                    continue
                acct.raw_seen = (imap, path, forced)
            if acct.state == "connected" and stored not in (None, b"connected"):
                acct.persist_state()   # repaired under our lease (the write is fenced)

    def reconcile_changed(self, names: set[str]) -> None:
        live = self.live()
        take = []
        with self._lock:
            self._wanted.difference_update(names)
        for account_id in sorted(names):
            if account_id in self.accounts:
                self.reconcile_one(account_id, live)
            elif owner(account_id, live) == self.sid:
                take.append(account_id)
        self._take(take)

    def reconcile_one(self, account_id: str, live: set[str] | None = None) -> None:
        record = get_record(self.redis, account_id)
        live = live if live is not None else self.live()
        if record is None:
            self._hand_over([account_id])
            return
        if owner(account_id, live) != self.sid:
            with self._lock:
                self._moving.add(account_id)
            return
        acct = self.accounts.get(account_id)
        if acct is None:
            self._take([account_id])
            return
        signature = imap_signature(record)
        if signature != acct.signature:
            log.info("%s: settings changed, reconnecting", account_id)
            acct.signature, acct.record = signature, record
            acct.restart()

    def _take(self, names) -> None:
        """Acquire the leases we can (free, released or expired) and connect those accounts."""
        if not names or self.stopping.is_set():
            return
        got = self.keeper.acquire(names)
        with self._lock:
            self._wanted.difference_update(names)
            self._wanted.update(a for a in names if a not in got)
        for account_id, token in got.items():
            with self._lock:
                acct = self.accounts.get(account_id)
                if acct is not None and acct.lease == token and not acct.stopped:
                    continue
            record = get_record(self.redis, account_id)
            if record is None:   # deleted meanwhile
                self.keeper.release({account_id: token})
                continue
            with self._lock:
                old = self.accounts.get(account_id)
                acct = self.accounts[account_id] = Account(self.runtime, account_id, record,
                                                           lease=token)
            if old is not None:   # an object from an older lease: it must not talk any more
                old.stopped = True
                self.pool.submit(old.stop, 0.5, False)
            log.info("%s: lease %d taken", account_id, token)
            acct.start()

    def pace(self, live: set[str] | None = None, force: bool = False) -> None:
        """Release assigned-elsewhere accounts as fast as their new holders take them."""
        now = time.time()
        if not self._moving or (not force and now - self._paced_at < 1.0):
            return
        self._paced_at = now
        live = live if live is not None else self.live()

        def owner_of(account_id):
            target = owner(account_id, live)
            return False if target == self.sid else target
        with self._lock:
            groups, forget = handover.by_target(self._moving, self.accounts, owner_of)
            self._moving.difference_update(forget)
        if not groups:
            return
        if self.leaving.is_set():
            give = self._pacer.drain_allowance(self.redis, groups, now, self.drain_until)
        else:
            give = handover.allowance(groups, self._pacer.busy(self.redis, sorted(groups), now),
                                      handover.window(len(live), False))
            self._pacer.sent(give, now)
        release = [a for names in give.values() for a in names]
        with self._lock:
            self._moving.difference_update(release)
        self._hand_over(release)

    def moving_all(self) -> tuple[set[str], int]:
        """(draining) Every account we hold is to move; -> (them, handovers still running)."""
        with self._lock:
            self._moving = set(self.accounts)
            return set(self._moving), self._handing

    def wait_wake(self, timeout: float) -> None:
        self._wake.wait(timeout)
        self._wake.clear()

    def _hand_over(self, names) -> None:
        """Not ours any more (rebalance, deletion): LOGOUT, then release the lease."""
        for account_id in names:
            with self._lock:
                acct = self.accounts.pop(account_id, None)
            if acct is None:
                continue
            log.info("%s: handing over", account_id)
            acct.stopped = True
            with self._lock:
                self._handing += 1
            self.pool.submit(self._logout_then_release, acct, 1.0, True)

    def _logout_then_release(self, acct: Account, wait: float = 1.0, counted: bool = False) -> None:
        try:
            acct.stop(wait=wait)
            if not self.redis.exists(keys.account(acct.id)):
                # deleted: whatever a sync or op wrote after the delete goes too
                purge_account(self.redis, acct.id)
        finally:
            with self._lock:
                if acct.lease is not None:
                    self._released[acct.id] = acct.lease
                if counted:
                    self._handing -= 1
            self._wake.set()

    def flush_released(self) -> None:
        with self._lock:
            batch, self._released = self._released, {}
        if batch:
            try:
                self.keeper.release(batch)
            except Exception as exc:   # they expire instead; the next owner waits the TTL
                log.warning("could not release %d leases: %s", len(batch), exc)

    def _lost(self, names: list[str]) -> None:
        """The keeper found leases gone or unsafe: drop those connections without a word."""
        for account_id in names:
            with self._lock:
                acct = self.accounts.get(account_id)
                if acct is None or (self.keeper.token(account_id) == acct.lease
                                    and acct.lease is not None):
                    continue   # re-acquired meanwhile under a new token: keep
                self.accounts.pop(account_id, None)
            log.info("%s: lease %s lost, dropping the connection", account_id, acct.lease)
            acct.stopped = True
            self.pool.submit(acct.stop, 0.2, False)
        self._wake.set()

    # -- threads ----------------------------------------------------------------------------
    def _listen(self) -> None:
        """Account changes from the API and replica news arrive here within milliseconds."""
        while not self.stopping.is_set():
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(keys.ACCOUNTS_CHANNEL, keys.SIDECARS_CHANNEL)
                while not self.stopping.is_set():
                    msg = pubsub.get_message(timeout=0.5)
                    if msg and msg.get("type") == "message":
                        self._on_message(msg)
            except Exception as exc:
                log.warning("account channel failed (%s); resubscribing", exc)
                self._full = True   # changes may have been missed: the loop does a full pass
                self._wake.set()
                self.stopping.wait(1)
            finally:
                try:
                    pubsub.close()
                except Exception:
                    pass

    def _on_message(self, msg) -> None:
        channel = msg["channel"].decode() if isinstance(msg["channel"], bytes) else msg["channel"]
        data = msg["data"].decode() if isinstance(msg["data"], bytes) else msg["data"]
        with self._lock:
            if channel == keys.ACCOUNTS_CHANNEL:
                self._changed.add(data)
            else:
                try:
                    news = json.loads(data)
                except ValueError:
                    return
                if news.get("by") == self.sid or news.get("joined") == self.sid:
                    return
                if "released" in news:
                    self._changed.update(news["released"])
                else:   # joined / left: the assignment changes for everyone
                    self._full = True
        self._wake.set()

    def run(self) -> None:
        while not self.stopping.is_set():   # a container may start before Redis is up
            try:
                self.keeper.heartbeat()
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
        threading.Thread(target=self.keeper.run, args=(self.stopping,), name="leases",
                         daemon=True).start()
        self.redis.publish(keys.SIDECARS_CHANNEL, json.dumps({"joined": self.sid}))
        log.info("sidecar %s started (pool %d, lease %gs)", self.sid, self.settings.sidecar_pool,
                 self.settings.sidecar_lease_ttl)
        self.stopping.wait(JOIN_SETTLE)
        last_full = last_wanted = 0.0
        while not self.stopping.is_set():
            if self.leaving.is_set():
                handover.drain(self)
                break
            now = time.time()
            try:
                self.flush_released()
                with self._lock:
                    changed, self._changed = self._changed, set()
                    full, self._full = self._full, False
                if full or now - last_full >= RECONCILE_EVERY:
                    self.reconcile_all(every_record=full)
                    for acct in list(self.accounts.values()):
                        acct.extras.reap(now)
                    last_full = last_wanted = now
                elif changed:
                    self.reconcile_changed(changed)
                self.pace()
                population = getattr(self.runtime.hooks, "set_population", None)
                if population is not None:   # the sync engine's sweeps share one budget
                    population(len(self.accounts))
                if self._wanted and now - last_wanted >= RETRY_WANTED:
                    last_wanted = now
                    self.reconcile_changed(set(self._wanted))   # re-checks the assignment too
                self.flush_released()
                self._freezer.tick(self.runtime.ramp.pending())
            except Exception:
                log.exception("supervisor pass failed")
            self._wake.wait(0.5)
            self._wake.clear()
        self.stopping.set()
        server.join(2)
        self.shutdown()

    def shutdown(self, budget: float = 4.0) -> None:
        """Leave the live set, LOGOUT every connection and release the leases (handover.shutdown)."""
        handover.shutdown(self, budget)


def record_slice(names: list[str], start: int, size: int) -> tuple[list[str], int]:
    """Pure: `size` names from position `start` on, wrapping around (all when there are no
    more) -> (them, where the next slice starts)."""
    if len(names) <= size:
        return names, 0
    start %= len(names)
    part = names[start:start + size]
    part += names[:size - len(part)]
    return part, (start + size) % len(names)


def _signature_raw(imap: bytes, path: bytes | None, forced: bytes | None, account_id: str) -> str:
    def load(v):
        if v is None:
            return None
        try:
            return json.loads(v)
        except ValueError:
            return v.decode()
    # the record's signature is over the secrets in clear (get_record opens them): same here
    return imap_signature({"imap": vault.open_config(load(imap), account_id),
                           "path": path.decode() if path else None,
                           "reconnectRequested": forced.decode() if forced else None})
