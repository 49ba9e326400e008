"""Benchmark: N idle accounts in one sidecar process -> time until all `connected`, sidecar RSS."""
#     .venv/bin/python bench/idle_accounts.py [--accounts 1000] [--db 7] [--secure] [--pool 32]
#
# Starts its own Dovecot (raised connection limits), creates the users and account records in a
# dedicated Redis DB (flushed), runs `python -m sidecar` and prints the numbers.
from __future__ import annotations

import argparse
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis as redis_lib  # noqa: E402

from imapapi import accounts, keys  # noqa: E402
from tests.fixtures.dovecot import Dovecot  # noqa: E402


# The sidecar with the no-op hooks, to tell the runtime's cost from the sync engine's.
NO_SYNC = ("import sidecar.hooks as h, sidecar.runtime as r; r.load_hooks = h.SyncHooks; "
           "from imapapi.settings import load_settings; from sidecar.main import run; "
           "run(load_settings([]))")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def count_states(r, ids) -> dict:
    pipe = r.pipeline(transaction=False)
    for account_id in ids:
        pipe.hget(keys.account(account_id), "state")
    out: dict = {}
    for state in pipe.execute():
        state = (state or b"?").decode()
        out[state] = out.get(state, 0) + 1
    return out


def raise_nofile():
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    want = 65536 if hard == resource.RLIM_INFINITY else min(65536, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(want, hard)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--accounts", type=int, default=1000)
    ap.add_argument("--db", type=int, default=7)
    ap.add_argument("--secure", action="store_true", help="implicit TLS instead of STARTTLS")
    ap.add_argument("--pool", type=int, default=32)
    ap.add_argument("--timeout", type=float, default=180)
    ap.add_argument("--no-sync", action="store_true",
                    help="runtime alone: no-op SyncHooks instead of the change-detection engine")
    args = ap.parse_args()

    url = f"redis://127.0.0.1:6379/{args.db}"
    r = redis_lib.Redis.from_url(url)
    r.flushdb()
    root = tempfile.mkdtemp(prefix="imapapi-bench-dovecot-")
    dovecot = Dovecot(root, many_connections=True).start()
    sidecar = None
    try:
        ids = [f"bench{i:05d}" for i in range(args.accounts)]
        for i in range(len(ids)):
            dovecot.add_user(f"user{i}", f"pw{i}")
        for i, account_id in enumerate(ids):
            accounts.upsert(r, dovecot.account_payload(account_id, f"user{i}", f"pw{i}",
                                                       secure=args.secure))
        env = {**os.environ, "REDIS_URL": url, "LOG_LEVEL": "warn", "SIDECAR_POOL": str(args.pool),
               "COMMAND_TIMEOUT": "30s", "IMAPAPI_DOTENV": "0"}
        t0 = time.time()
        cmd = [sys.executable, "-m", "sidecar"]
        if args.no_sync:
            cmd = [sys.executable, "-c", NO_SYNC]
        sidecar = subprocess.Popen(cmd, cwd=str(ROOT), env=env, preexec_fn=raise_nofile)
        states, peak, elapsed = {}, 0.0, None
        while time.time() - t0 < args.timeout:
            time.sleep(0.25)
            if sidecar.poll() is not None:
                print("sidecar exited early:", sidecar.returncode)
                return 1
            peak = max(peak, rss_mb(sidecar.pid))
            states = count_states(r, ids)
            if states.get("connected", 0) == len(ids):
                elapsed = time.time() - t0
                connect_cpu = cpu_seconds(sidecar.pid)
                break
        if elapsed is None:
            print(f"NOT all connected after {args.timeout:.0f}s: {states}")
            return 1
        time.sleep(5)     # steady state: nothing should be running while everyone IDLEs
        steady = rss_mb(sidecar.pid)
        threads = len(os.listdir(f"/proc/{sidecar.pid}/task"))
        cpu = cpu_seconds(sidecar.pid)
        time.sleep(5)
        cpu_idle = (cpu_seconds(sidecar.pid) - cpu) / 5 * 100
        t1 = time.time()
        sidecar.send_signal(signal.SIGTERM)
        sidecar.wait(30)
        stop_s = time.time() - t1
        owners_left = r.hlen(keys.OWNERS)
        mode = ("implicit TLS" if args.secure else "STARTTLS") + (
            ", no sync engine" if args.no_sync else "")
        print(f"accounts: {len(ids)} ({mode}), sidecar pool {args.pool}")
        print(f"time until all connected: {elapsed:.1f} s (target <= 60 s); sidecar CPU used: "
              f"{connect_cpu:.1f} s; machine load average: {os.getloadavg()[0]:.1f}")
        print(f"sidecar RSS: {steady:.1f} MB steady, {peak:.1f} MB peak (target <= 150 MB)")
        print(f"sidecar threads while idle: {threads}; CPU while idle: {cpu_idle:.1f} %")
        print(f"SIGTERM -> exit: {stop_s:.1f} s (LOGOUT of all), owner entries left: {owners_left}")
        return 0
    finally:
        if sidecar is not None and sidecar.poll() is None:
            sidecar.kill()
        dovecot.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
