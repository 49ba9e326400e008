"""Benchmark (issue 15): an idle sidecar's RSS and CPU with N accounts, for two (or more) source trees in one run.

One many-connections Dovecot with N users (bench/scale.py's), then for each --variant in turn
(--rounds times, alternating): a flushed Redis DB, N account records, the real stack started
from that tree, timed until every account is `connected`; then, after 5 s + --settle idle:
sidecar RSS and threads, sidecar CPU % over --idle seconds (with --threads: each thread's),
optionally a py-spy --gil profile
(--profile seconds, raw format, its path printed), and with --latency K the INBOX webhook p50
of K accounts and the API listing p50. One JSON line per run. Compare variants within a run:
the machine is shared, numbers from another time are not comparable.

    .venv/bin/python bench/idle_ab.py --n 2000 --db 42 --settle 45 --idle 60 --latency 10 \\
        --variant old:/tmp/old-tree --variant new:/work/main [--variant arena:/work/main:MALLOC_ARENA_MAX=2]

A tree is a checkout or `git archive` of the repository (its own tests/fixtures are not used:
the stack's PYTHONPATH points at it). With a settle shorter than N / 25 seconds the first
sweeps of the accounts (sidecar/sync/notify.py SWEEP_BUDGET) fall into the measured window.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import redis as redis_lib  # noqa: E402
import scale  # noqa: E402

from imapapi import accounts, crypto  # noqa: E402
from tests.fixtures.stack import Stack  # noqa: E402
from tests.fixtures.webhooks import Receiver  # noqa: E402


def thread_cpu(pid: int) -> dict[int, tuple[float, float]]:
    """Native thread id -> (user, system) CPU seconds."""
    tick, out = os.sysconf("SC_CLK_TCK"), {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            fields = scale.stat_fields(f"/proc/{pid}/task/{tid}/stat")
        except OSError:
            continue
        out[int(tid)] = (int(fields[11]) / tick, int(fields[12]) / tick)
    return out


def print_threads(pid: int, before: dict, after: dict, seconds: float) -> None:
    """Each thread's user/system CPU % over the idle window, named from a py-spy dump (Python
    does not name its OS threads), busiest first; threads of one name are summed."""
    dump = subprocess.run([str(Path(sys.executable).parent / "py-spy"), "dump", "--json",
                           "--nonblocking", "--pid", str(pid)], capture_output=True, text=True)
    names = {}
    try:
        for thread in json.loads(dump.stdout):
            names[thread.get("os_thread_id")] = thread.get("thread_name") or "?"
    except ValueError:
        pass
    rows: dict[str, list] = {}
    for tid, (user, system) in after.items():
        u0, s0 = before.get(tid, (0.0, 0.0))
        row = rows.setdefault(names.get(tid, f"native {tid}"), [0, 0.0, 0.0])
        row[0] += 1
        row[1] += user - u0
        row[2] += system - s0
    print(f"  sidecar threads over {seconds:.0f} s idle (% of one core): name, count, user, system")
    for name, (count, user, system) in sorted(rows.items(), key=lambda kv: -(kv[1][1] + kv[1][2])):
        if user + system > 0:
            print(f"    {name:28} {count:3d} {user / seconds * 100:6.2f} {system / seconds * 100:6.2f}",
                  flush=True)


def run_variant(name, tree, env_items, n, url, dovecot, receiver, samples, root, args) -> dict:
    r = redis_lib.Redis.from_url(url)
    r.flushdb()
    hooked = set(samples)
    for i in range(n):
        payload = dovecot.account_payload(f"acct{i:05d}", f"user{i}", f"pw{i}")
        if i in hooked:
            payload["webhooks"] = receiver.url(f"acct{i:05d}")
        accounts.upsert(r, payload)
    env = {"LOG_LEVEL": "warn", "COMMAND_TIMEOUT": "30s", **dict(env_items)}
    stack = Stack(url, env=env, log_dir=root / f"logs-{name}-{time.time_ns()}")
    stack.env["PYTHONPATH"] = str(tree)
    load0, t0 = os.getloadavg()[0], time.time()
    stack.start()
    sidecar = stack.procs["sidecar"].pid
    try:
        while scale.count_connected(r, n) < n and time.time() - t0 < args.timeout:
            time.sleep(1)
        connect_s = time.time() - t0
        connect_cpu = scale.cpu_seconds(sidecar)
        time.sleep(5 + args.settle)
        rss = scale.proc_mb(sidecar)
        threads = len(os.listdir(f"/proc/{sidecar}/task"))
        c0, t_before = scale.cpu_seconds(sidecar), thread_cpu(sidecar)
        time.sleep(args.idle)
        idle = (scale.cpu_seconds(sidecar) - c0) / args.idle * 100
        if args.threads:
            print_threads(sidecar, t_before, thread_cpu(sidecar), args.idle)
        prof = None
        if args.profile:
            prof = str(root / f"profile-{name}-{time.time_ns()}.txt")
            subprocess.run([str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(sidecar),
                            "--duration", str(int(args.profile)), "--rate", "100", "--format", "raw",
                            "--gil", "--nonblocking", "-o", prof], capture_output=True, check=False)
        lat = scale.webhook_latency(dovecot, receiver, samples) if samples else []
        listing = (scale.listing_p50(stack.port, f"acct{samples[0]:05d}", 100)
                   if samples else float("nan"))
        return {"variant": name, "accounts": n, "connected": scale.count_connected(r, n),
                "connect_s": round(connect_s, 1), "connect_cpu_s": round(connect_cpu, 1),
                "rss_mb": round(rss, 1), "threads": threads, "idle_cpu_pct": round(idle, 2),
                "webhook_p50_ms": round(statistics.median(lat) * 1000) if lat else None,
                "listing_p50_ms": round(listing, 1), "load": [round(load0, 1),
                                                               round(os.getloadavg()[0], 1)],
                "profile": prof}
    finally:
        stack.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--db", type=int, default=int(os.environ.get("IMAPAPI_TEST_REDIS_DB", "11")))
    ap.add_argument("--variant", action="append", required=True, metavar="NAME:TREE[:K=V,...]")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--settle", type=float, default=0)
    ap.add_argument("--idle", type=float, default=30)
    ap.add_argument("--profile", type=float, default=0)
    ap.add_argument("--threads", action="store_true",
                    help="print each sidecar thread's CPU over the idle window")
    ap.add_argument("--latency", type=int, default=0, help="accounts with a webhook (0: none)")
    ap.add_argument("--timeout", type=float, default=900)
    args = ap.parse_args()
    variants = []
    for spec in args.variant:
        name, tree, envs = (spec.split(":", 2) + [""])[:3]
        variants.append((name, Path(tree).resolve(), [e.split("=", 1) for e in envs.split(",") if e]))
    root = Path(tempfile.mkdtemp(prefix="imapapi-idle-ab-"))
    root.chmod(0o755)
    scale.raise_limits(args.n)
    crypto.load_keyring(state_dir=str(root / "state"), generate=True)
    os.environ["KEY_FILE"] = str(root / "state" / "secret.key")
    # spare imap processes and a first login per user, as bench/scale.py (its docstring says why)
    dovecot = scale.big_dovecot(root / "dovecot", args.n, prefork=64)
    receiver = Receiver().start()
    step = max(1, args.n // max(1, args.latency))
    samples = list(range(0, args.n, step))[:args.latency]
    try:
        dovecot.start()
        for i in range(args.n):
            dovecot.add_user(f"user{i}", f"pw{i}")
        scale.prewarm(dovecot, args.n)
        for _ in range(args.rounds):
            for name, tree, env_items in variants:
                got = run_variant(name, tree, env_items, args.n,
                                  f"redis://127.0.0.1:6379/{args.db}", dovecot, receiver, samples,
                                  root, args)
                print(json.dumps(got), flush=True)
    finally:
        receiver.stop()
        dovecot.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
