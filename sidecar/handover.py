"""Assignment (rendezvous hashing), paced handover (no faster than the next holder connects), drain and final release."""
from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
import time

from imapapi import keys, leases

log = logging.getLogger(__name__)

# An account assigned elsewhere is released only while its next holder has fewer than this many
# setups queued (its heartbeat info), so it stays connected here until the other side can take
# it instead of waiting, disconnected, in that queue. Deletions release at once.
HANDOVER_WINDOW = 8
# Releases this recent count against a target's window: its `connecting` lags up to a heartbeat.
RECENT = 1.5
# SIGTERM: the accounts are handed over paced like this for at most sidecar.drainBudget, then
# whatever is left goes at once (LOGOUT, release). The chart sets the budget to its
# terminationGracePeriodSeconds minus 15 s: the preStop wait (imapapi.probe) ends when we
# leave the heartbeat set, then come the final LOGOUT budget (4 s) and the exit.
DRAIN_PASS = 0.25
# Draining, a target gets as few handovers in flight (released, not yet connected there) as
# moves its share in DRAIN_SLACK of the time left: every one more in flight slows each login
# there (CPU), and an account's time without a connection is its own login's time.
DRAIN_WINDOW_MIN = 2
DRAIN_SLACK = 0.7
# A handover in flight this long stops counting against its target (it never settled there:
# a login stuck past its timeout, or the target went away and another replica takes it).
FLIGHT_MAX = 15.0
SETTLED = (b"connected", b"connectError", b"authenticationError")   # the target's attempt is over


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


def by_target(moving, held, owner_of) -> tuple[dict[str, list[str]], set[str]]:
    """Pure: accounts to move, grouped by their next holder (sorted), and those to forget
    (`owner_of` says they are ours again, or we no longer hold them). Accounts nobody can
    take (owner_of -> None: every other replica is leaving) stay where they are."""
    out: dict[str, list[str]] = {}
    forget = set()
    for account_id in sorted(moving):
        target = owner_of(account_id)
        if target is None:
            continue
        if target is False or account_id not in held:
            forget.add(account_id)
        else:
            out.setdefault(target, []).append(account_id)
    return out, forget


def window(live: int, draining: bool) -> int:
    """Pure: this replica's share of a target's window. Draining, it is the only one sending
    to its targets; rebalancing towards a newcomer, every other live replica may be sending
    to it at once (each would otherwise fill the whole window: 3 x 8 queued, ~12 s waits)."""
    if draining:
        return HANDOVER_WINDOW
    return -(-HANDOVER_WINDOW // max(1, live - 1))


def allowance(groups: dict[str, list[str]], busy: dict[str, int],
              window: int = HANDOVER_WINDOW) -> dict[str, list[str]]:
    """Pure: per target, the accounts to release now: up to `window` minus its queued setups."""
    return {t: names[:max(0, window - busy.get(t, 0))] for t, names in groups.items()}


def drain_window(remaining: int, seconds_left: float, cycle: float) -> int:
    """Pure: handovers in flight towards one target while draining, by Little's law: enough to
    move its `remaining` accounts (in flight included) in DRAIN_SLACK of `seconds_left` at
    `cycle` seconds from release to connected each; at least DRAIN_WINDOW_MIN, at most
    HANDOVER_WINDOW."""
    need = math.ceil(remaining * cycle / max(1.0, seconds_left * DRAIN_SLACK))
    return max(DRAIN_WINDOW_MIN, min(HANDOVER_WINDOW, need))


class Pacer:
    """Remembers what was released to whom lately (a target's info counts it a beat late) and,
    draining, which handovers are still in flight."""

    def __init__(self):
        self._recent: dict[str, list[tuple[float, int]]] = {}
        self._flight: dict[str, dict[str, float]] = {}   # target -> {account: released at}
        self.cycle = 1.0   # seconds from release to connected at the target (moving average)

    def busy(self, redis, targets: list[str], now: float) -> dict[str, int]:
        """Setups queued at each target: its heartbeat info plus what we released since."""
        out = {}
        for target, raw in zip(targets, redis.hmget(keys.SIDECARS_INFO, targets)):
            try:
                out[target] = int(json.loads(raw or "{}").get("connecting", 0))
            except (ValueError, TypeError, AttributeError):
                out[target] = 0
            recent = [(t, n) for t, n in self._recent.get(target, ()) if t > now - RECENT]
            self._recent[target] = recent
            out[target] += sum(n for _t, n in recent)
        return out

    def sent(self, give: dict[str, list[str]], now: float) -> None:
        for target, names in give.items():
            if names:
                self._recent.setdefault(target, []).append((now, len(names)))

    def in_flight(self, redis, now: float) -> dict[str, int]:
        """Handovers released to each target and not settled there yet. Exact and fresh,
        unlike the heartbeat's `connecting`: settled once the target holds the lease (RELEASE
        cleared ours) and its own fenced write has set the record's state to connected, or to
        an error state (a bad password must not hold a slot for FLIGHT_MAX)."""
        pending = [(t, a) for t, accts in self._flight.items() for a in accts]
        if pending:
            pipe = redis.pipeline(transaction=False)
            for _t, acct in pending:
                pipe.hget(keys.LEASES, acct)
                pipe.hget(keys.account(acct), "state")
            got = pipe.execute()
            for i, (target, acct) in enumerate(pending):
                lease, state = got[2 * i], got[2 * i + 1]
                since = self._flight[target][acct]
                holder = leases.parse(lease)[2] if lease is not None else None
                done = state is None or (holder == target and state in SETTLED)
                if done or now - since > FLIGHT_MAX:
                    del self._flight[target][acct]
                if done:
                    self.cycle = 0.8 * self.cycle + 0.2 * (now - since)
        return {t: len(accts) for t, accts in self._flight.items()}

    def drain_allowance(self, redis, groups: dict[str, list[str]], now: float,
                        deadline: float) -> dict[str, list[str]]:
        """(draining) Per target, the accounts to release now: its drain_window() minus the
        handovers in flight to it; they count as in flight from now on."""
        flying = self.in_flight(redis, now)
        give = {}
        for target, names in groups.items():
            busy = flying.get(target, 0)
            room = drain_window(len(names) + busy, deadline - now, self.cycle) - busy
            give[target] = names[:max(0, room)]
            for acct in give[target]:
                self._flight.setdefault(target, {})[acct] = now
        return give


def drain(sup, budget: float | None = None) -> None:
    """SIGTERM on Supervisor `sup`: say we are leaving (heartbeat info first, then a `left`
    note, so the others stop assigning to us at once), then hand every account over paced by
    the handovers in flight to its next holder (Pacer.drain_allowance), connected and serving
    requests meanwhile until its turn. Stops early when no
    other replica can take them; sup.shutdown() then logs out whatever is left."""
    log.info("sidecar %s leaving: handing %d accounts over", sup.sid, len(sup.accounts))
    try:
        sup.keeper.heartbeat()   # "leaving" in our info before anyone recomputes
        sup.redis.publish(keys.SIDECARS_CHANNEL, json.dumps({"left": sup.sid}))
    except Exception as exc:
        log.warning("could not announce leaving: %s", exc)
        return
    deadline = time.time() + (sup.settings.sidecar_drain_budget if budget is None else budget)
    sup.drain_until = deadline
    while time.time() < deadline and not sup.stopping.is_set():
        try:
            sup.flush_released()
            moving, busy = sup.moving_all()
            if not moving and not busy:
                break
            live = sup.live()
            if not live and not busy:
                break   # nobody to hand over to: shutdown() logs the rest out at once
            sup.pace(live, force=True)
            sup.flush_released()
        except Exception:
            log.exception("drain pass failed")
        sup.wait_wake(DRAIN_PASS)
    sup.flush_released()
    log.info("sidecar %s drained (%d accounts left)", sup.sid, len(sup.accounts))


def shutdown(sup, budget: float = 4.0) -> None:
    """Leave the live set, LOGOUT every connection (in parallel, bounded) and release each
    lease as its LOGOUT completes, so the next owners connect within seconds."""
    try:
        sup.keeper.leave()
    except Exception:
        log.exception("could not leave the live set")
    with sup._lock:
        accts, sup.accounts = list(sup.accounts.values()), {}
    done = threading.Semaphore(0)
    for acct in accts:
        acct.stopped = True

        def job(a=acct):
            try:
                sup._logout_then_release(a)
            finally:
                done.release()
        sup.pool.submit(job)
    deadline = time.time() + budget
    left = len(accts)
    while left and time.time() < deadline:
        if done.acquire(timeout=min(0.1, max(0.0, deadline - time.time()))):
            left -= 1
            while left and done.acquire(blocking=False):
                left -= 1
        sup.flush_released()   # batches: one round trip per ~100 ms of LOGOUTs
    # What did not log out in time is released anyway: we are exiting, its socket closes.
    with sup._lock:
        for acct in accts:
            if acct.lease is not None and sup.keeper.token(acct.id) == acct.lease:
                sup._released.setdefault(acct.id, acct.lease)
    sup.flush_released()
    try:
        sup.keeper.leave()
    except Exception:
        pass
    sup.runtime.reactor.stop()
    sup.pool.shutdown()
    log.info("sidecar %s stopped", sup.sid)
