"""Benchmark: sidecar replicas with fenced leases: kill -9 failover, lease cost at rest, rolling restart."""
#     .venv/bin/python bench/sidecar_failover.py [--accounts 2000] [--replicas 4] [--db 8]
#
# Starts its own Dovecot (raised limits), N account records in a dedicated Redis DB (flushed)
# and R `python -m sidecar` replicas, samples Dovecot's sessions every 200 ms (doveadm who + ss,
# tests/fixtures/replicas.py) and prints:
#   - time until all accounts are connected (cold start)
#   - Redis calls per second at rest: lease scripts (heartbeat, renew, janitor) and everything
#   - kill -9 of one replica: time until each of its accounts has a session elsewhere
#   - rolling restart (SIGTERM one by one, a fresh replica each time) while mail arrives:
#     messageNew events lost (must be 0), duplicated ids, the longest time any account had no
#     session from a running replica (sampled), and from Dovecot's log (µs timestamps) each
#     leaving replica's accounts' logout -> next login, split by bench/handover_gaps.py
# The replicas drain with the chart's default budget (sidecar.terminationGracePeriodSeconds
# in charts/imap-api/values.yaml minus 15 s, as the StatefulSet sets SIDECAR_DRAIN_BUDGET).
from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis as redis_lib  # noqa: E402
import yaml  # noqa: E402
from handover_gaps import LOG_TIMESTAMP, LeaseWatch, breakdown, sessions  # noqa: E402

from imapapi import accounts, events, keys, leases  # noqa: E402
from tests.fixtures.replicas import (Replicas, SessionSampler, longest_gaps,  # noqa: E402
                                     raise_inotify_limit, serving, session_dovecot)

APPENDUID = re.compile(rb"APPENDUID \d+ (\d+)")


def chart_drain_budget() -> int:
    """What the chart's StatefulSet sets SIDECAR_DRAIN_BUDGET to with its default values."""
    values = yaml.safe_load((ROOT / "charts" / "imap-api" / "values.yaml").read_text())
    return max(1, int(values["sidecar"]["terminationGracePeriodSeconds"]) - 15)


def served(sample, user, by_pid, exclude=None) -> bool:
    return bool(serving(sample, user, by_pid, exclude))


def wait_all_served(sampler, users, reps, timeout, exclude=None) -> float | None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        s = sampler.latest()
        by_pid = reps.by_pid()
        if s and s.t > t0 and all(served(s, u, by_pid, exclude) for u in users):
            return time.time() - t0
        time.sleep(0.2)
    return None


def misplaced(r, ids) -> int:
    """Accounts whose lease holder is not the replica rendezvous hashing assigns them to."""
    from sidecar.supervisor import owner

    now = leases.redis_now_ms(r) / 1000.0
    live = [m.decode() for m in r.zrangebyscore(keys.SIDECARS, now - 4, "+inf")]
    held = lease_owners(r)
    return sum(1 for a in ids if held.get(a) != owner(a, live))


def lease_owners(r) -> dict[str, str]:
    now = leases.redis_now_ms(r)
    out = {}
    for acct, value in r.hgetall(keys.LEASES).items():
        _tok, exp, owner = leases.parse(value)
        if exp > now:
            out[acct.decode()] = owner
    return out


# What each lease script's text contains (MONITOR shows a script call with its full text).
LEASE_MARKERS = {"heartbeat": "redis.call('ZADD', KEYS[1], now, ARGV[1])",
                 "janitor": "ZRANGEBYSCORE', KEYS[1], '-inf'",
                 "renew": "local lost = {}",
                 "acquire": "redis.call('INCR', KEYS[2])"}


def script_calls(url: str, db: int, seconds: float) -> tuple[dict, int]:
    """MONITOR for `seconds`: lease script calls by kind and all commands, in DB `db` only."""
    mon_client = redis_lib.Redis.from_url(url)
    counts = dict.fromkeys(LEASE_MARKERS, 0)
    total = 0
    end = time.time() + seconds
    with mon_client.monitor() as mon:
        for cmd in mon.listen():
            if cmd.get("db") == db and cmd.get("client_type") != "lua":
                total += 1
                text = cmd.get("command", "")
                if text.startswith("EVAL"):
                    for kind, marker in LEASE_MARKERS.items():
                        if marker in text:
                            counts[kind] += 1
            if time.time() > end:
                break
    mon_client.close()
    return counts, total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--accounts", type=int, default=2000)
    ap.add_argument("--replicas", type=int, default=4)
    ap.add_argument("--db", type=int, default=8, help="Redis DB (flushed)")
    ap.add_argument("--redis", default="redis://127.0.0.1:6379",
                    help="Redis server (without the DB); the shared one may have only 16 DBs")
    ap.add_argument("--lease-ttl", default="10s")
    ap.add_argument("--login-rate", type=int, default=50, help="IMAP logins/s per host")
    ap.add_argument("--rest", type=float, default=30, help="seconds measured at rest")
    ap.add_argument("--timeout", type=float, default=900, help="cold start limit (s)")
    ap.add_argument("--sample", type=float, default=0.2, help="session sampling period (s)")
    ap.add_argument("--drain-budget", type=float, default=chart_drain_budget(),
                    help="sidecar.drainBudget (s); default: the chart's")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))   # clean up replicas and Dovecot

    raise_inotify_limit(max(8192, 2 * args.accounts))
    url = f"{args.redis.rstrip('/')}/{args.db}"
    r = redis_lib.Redis.from_url(url)
    r.flushdb()
    root = tempfile.mkdtemp(prefix="imapapi-bench-dovecot-")
    log_dir = tempfile.mkdtemp(prefix="imapapi-bench-replicas-")
    os.environ.setdefault("ENCRYPTION_KEY", "5" * 64)   # sealed secrets, if this build seals them
    dovecot = session_dovecot(root, extra_config=LOG_TIMESTAMP)
    env = {**os.environ, "REDIS_URL": url, "LOG_LEVEL": "warn", "COMMAND_TIMEOUT": "30s",
           "IMAPAPI_DOTENV": "0", "SIDECAR_LEASE_TTL": args.lease_ttl,
           "IMAP_LOGIN_RATE": str(args.login_rate), "SIDECAR_DRAIN_BUDGET": f"{args.drain_budget}s",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    reps = Replicas(env, log_dir, prefix="bench")
    sampler = SessionSampler(str(Path(root) / "dovecot.conf"), dovecot.port,
                             log_path=str(Path(root) / "dovecot.log"), every=args.sample)
    try:
        ids = [f"fo{i:05d}" for i in range(args.accounts)]
        for i, account_id in enumerate(ids):
            dovecot.add_user(account_id, f"pw{i}")
            accounts.upsert(r, dovecot.account_payload(account_id, account_id, f"pw{i}"))
        users = set(ids)
        sampler.start()
        t0 = time.time()
        for _ in range(args.replicas):
            reps.start()
        took = wait_all_served(sampler, users, reps, args.timeout)
        if took is None:
            print("NOT all connected within", args.timeout, "s; logs in", log_dir)
            return 1
        # wait for the state too (baseline done): mail from now on must give events
        while time.time() - t0 < args.timeout:
            pipe = r.pipeline(transaction=False)
            for a in ids:
                pipe.hget(keys.account(a), "state")
            if all(v == b"connected" for v in pipe.execute()):
                break
            time.sleep(0.5)
        print(f"accounts: {args.accounts} over {args.replicas} replicas (lease {args.lease_ttl}, "
              f"login rate {args.login_rate}/s per host, drain budget {args.drain_budget:g} s)")
        print(f"cold start: all connected after {time.time() - t0:.1f} s")
        per = {}
        for owner in lease_owners(r).values():
            per[owner] = per.get(owner, 0) + 1
        print(f"accounts per replica: {sorted(per.values())}")

        # -- at rest: first let the (paced) rebalancing of a staggered start finish ---------
        t_settle = time.time()
        while time.time() - t_settle < 180 and misplaced(r, ids):
            time.sleep(1)
        print(f"assignment settled {time.time() - t_settle:.1f} s later "
              f"({misplaced(r, ids)} accounts not on their rendezvous replica)")
        time.sleep(5)
        counts, total = script_calls(url, args.db, args.rest)
        lease_rt = sum(counts.values()) / args.rest
        print(f"at rest: {lease_rt:.1f} Redis round trips/s on leases for all replicas ("
              + ", ".join(f"{k} {v / args.rest:.1f}/s" for k, v in counts.items())
              + f"); all commands of this DB: {total / args.rest:.0f}/s (sync sweeps, command "
              f"queue BRPOPs, reconcile passes)")

        # -- kill -9 ------------------------------------------------------------------------
        victim = reps.running()[0]
        held = {a for a, o in lease_owners(r).items() if o == victim.sid}
        t_kill = reps.signal(victim, signal.SIGKILL)
        wait_all_served(sampler, held, reps, 60, exclude=victim.pid)
        times = []
        for u in held:
            t = sampler.first_after(t_kill, lambda s, u=u: served(s, u, reps.by_pid(), victim.pid))
            times.append((t - t_kill) if t else float("inf"))
        times.sort()
        print(f"kill -9 of a replica holding {len(held)} accounts: all connected elsewhere after "
              f"{times[-1]:.1f} s (p50 {times[len(times) // 2]:.1f} s; target <= 30 s)")
        reps.start()
        wait_all_served(sampler, users, reps, 120)
        time.sleep(10)   # the newcomer takes its share

        # -- rolling restart with mail arriving -----------------------------------------------
        appended: list[tuple[str, int]] = []
        mail_ports: dict[int, list[float]] = {}   # the mailer's own sessions are no sidecar's
        halt = threading.Event()
        rnd = random.Random(7)

        def mailer():
            from tests.integration.helpers import message
            n = 0
            while not halt.is_set():
                acct = rnd.choice(ids)
                try:
                    conn = dovecot.client(acct, f"pw{ids.index(acct)}", timeout=10)
                    mail_ports.setdefault(conn.socket().getsockname()[1], []).append(time.time())
                    try:
                        n += 1
                        res = conn.append("INBOX", message(f"rolling {n}"))
                        appended.append((acct, int(APPENDUID.search(res).group(1))))
                    finally:
                        conn.logout()
                except Exception:
                    pass
                halt.wait(0.1)

        mail = threading.Thread(target=mailer, daemon=True)
        mail.start()
        watch = LeaseWatch(redis_lib.Redis.from_url(url))
        watch.start()
        load = [os.getloadavg()[0]]
        t_roll = time.time()
        terms = []   # (replica, accounts it held, SIGTERM at, exited at)
        for old in list(reps.running()):
            held = {a for a, o in lease_owners(r).items() if o == old.sid}
            t_sig = reps.signal(old, signal.SIGTERM)
            reps.wait_exit(old, args.drain_budget + 30)   # it drains, then exits
            load.append(os.getloadavg()[0])
            terms.append((old, held, t_sig, time.time()))
            reps.start()
            wait_all_served(sampler, users, reps, 120)
            time.sleep(8)   # the replacement takes its share back before the next one goes
        t_end = time.time()
        halt.set()
        mail.join(20)
        watch.stop()
        dlog = sessions(str(Path(root) / "dovecot.log"))
        worst = longest_gaps(sampler, users, reps, t_roll, t_end)
        # events: every append exactly one messageNew id (give sync a moment to catch up)
        deadline = time.time() + 60
        while True:
            lost, dups = 0, 0
            for acct in {a for a, _ in appended}:
                evs, _ = events.read_events(r, acct, None, count=10000)
                got: dict[int, set] = {}
                for ev in evs:
                    if ev["event"] == "messageNew":
                        got.setdefault(ev["data"]["uid"], set()).add(ev["id"])
                for a, uid in appended:
                    if a == acct:
                        lost += uid not in got
                dups += sum(1 for v in got.values() if len(v) > 1)
            if not lost or time.time() > deadline:
                break
            time.sleep(2)
        exact = []
        for old, held, t_sig, t_exit in terms:
            # the leaving replica's accounts, from SIGTERM until a while after it exited
            g = sorted(longest_gaps(sampler, held, reps, t_sig, t_exit + 5).values()) or [0.0]
            print(f"  SIGTERM {old.sid}: {len(held)} accounts, exited after {t_exit - t_sig:.1f} s;"
                  f" their longest time without a connection {g[-1]:.1f} s (p50 {g[len(g) // 2]:.1f} s;"
                  f" sampled: an upper bound, up to two sampling intervals more than the gap)")
            lines, got = breakdown(dlog, watch, held, old.sid, t_sig, mail_ports)
            exact += got
            print("\n".join("    " + ln for ln in lines))
        during = [s.t for s in sampler.samples if t_roll <= s.t <= t_end]
        steps = sorted(b - a for a, b in zip(during, during[1:])) or [0.0]
        print(f"  session samples during the restart: {len(during) / max(1e-9, t_end - t_roll):.1f}/s, "
              f"longest interval {steps[-1]:.1f} s (the resolution of these gaps)")
        gap_list = sorted(worst.values())
        print(f"rolling restart of {args.replicas} replicas (SIGTERM one by one, "
              f"{t_end - t_roll:.0f} s): {len(appended)} messages appended meanwhile, "
              f"{lost} messageNew events lost (must be 0), {dups} changes with several event ids; "
              f"longest time any account was without a connection: {gap_list[-1]:.1f} s "
              f"(p99 {gap_list[int(len(gap_list) * 0.99)]:.1f} s; sampled, an upper bound)")
        exact.sort()
        if exact:
            print(f"  from Dovecot's log: longest logout -> next login of a leaving replica's account "
                  f"{exact[-1]:.2f} s (p99 {exact[int(len(exact) * 0.99)]:.2f} s, p50 "
                  f"{exact[len(exact) // 2]:.2f} s, {len(exact)} handovers)")
        print(f"load average (1 min) during the restart: {min(load):.1f}-{max(load):.1f}")
        print(f"sampler: {len(sampler.samples)} samples, {sampler.errors} errors; logs in {log_dir}")
        return 0
    finally:
        sampler.stop()
        reps.stop_all()
        dovecot.stop()
        shutil.copy(Path(root) / "dovecot.log", log_dir)   # for a look at a gap afterwards
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
