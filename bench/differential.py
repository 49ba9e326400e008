"""Benchmark: the seeded differential run at scale, and what the few-second sweep costs an idle account.

    .venv/bin/python bench/differential.py [--ops 10000] [--seed 1414] [--db 8]
    .venv/bin/python bench/differential.py --idle 100 --seconds 60 [--sweep 3s]

Starts its own Dovecot, the real stack and a local receiver. The run (tests/fixtures/
differential.py) makes random changes with a direct IMAP client (sidecar killed at 1/4, worker at
1/2, Dovecot restarted at 3/4), then replays the webhooks and the feed over the initial state and
compares with the server: missed / spurious / flag mismatches / order violations, change-to-
webhook latency, time to settle after the last change. --idle registers N quiet accounts and
reports the CPU the sidecar and Dovecot spend on them per account (sweeps only) and the Redis
commands per second on the run's DB, each net of the same stack without accounts.
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis as redis_lib  # noqa: E402

from tests.fixtures import differential as D  # noqa: E402
from tests.fixtures.dovecot import Dovecot  # noqa: E402
from tests.fixtures.services import ApiSession  # noqa: E402
from tests.fixtures.stack import Stack  # noqa: E402
from tests.fixtures.webhooks import Receiver  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])   # utime + stime
        except (OSError, IndexError, ValueError):
            pass
    return total / TICK


def group_pids(pgid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) == pgid:
                    out.append(int(entry.name))
            except OSError:
                pass
    return out


def redis_ops(url: str, db: int, seconds: float) -> tuple[float, dict]:
    """-> (commands per second on `db`, the five most frequent commands and keys' first
    segment per second). MONITOR, counted by the server's timestamps, so a reader that lags
    behind the shared server's other traffic still counts the right window."""
    conn = redis_lib.Redis.from_url(url)
    count, start, kinds = 0, time.time(), Counter()
    with conn.monitor() as mon:
        while True:
            cmd = mon.next_command()
            if cmd["time"] > start + seconds:
                break
            if cmd["time"] >= start and int(cmd["db"]) == db:
                count += 1
                words = cmd["command"].split()
                key = words[1].split(":")[0:2] if len(words) > 1 else []
                kinds[" ".join([words[0].upper(), ":".join(key)])] += 1
    return count / seconds, {k: round(v / seconds, 2) for k, v in kinds.most_common(5)}


def cpu_window(stack, dovecot, seconds: float) -> tuple[float, float, float]:
    """-> (sidecar CPU s, Dovecot CPU s, wall s) over `seconds`."""
    side = group_pids(stack.procs["sidecar"].pid)
    s0, d0, t0 = cpu_seconds(side), cpu_seconds(group_pids(dovecot.proc.pid)), time.time()
    time.sleep(seconds)
    s1, d1 = cpu_seconds(side), cpu_seconds(group_pids(dovecot.proc.pid))
    return s1 - s0, d1 - d0, time.time() - t0


def idle_cost(api, stack, dovecot, receiver, count: int, seconds: float, url: str,
              db: int) -> dict:
    # The same stack with no account first: what it costs anyway (heartbeats, reconciles,
    # the worker's broker polling), subtracted below.
    time.sleep(10)   # the processes' own start-up work done
    base_side, base_dove, base_wall = cpu_window(stack, dovecot, min(seconds, 30.0))
    base_ops, _ = redis_ops(url, db, 15.0)
    users = []
    for i in range(count):
        user = f"idle{i}x{time.time_ns() % 10**6}"
        dovecot.add_user(user, "pw12345")
        client = dovecot.client(user, "pw12345")
        for folder in ("Work", "Lists"):
            client.create_folder(folder)
        client.logout()
        payload = dovecot.account_payload(user, user, "pw12345", webhooks=receiver.url("idle"))
        resp = api.post("/v1/account", json=payload)
        assert resp.status_code == 200, resp.text
        users.append(user)
    for user in users:
        stack.wait_state(user, "connected", timeout=120)
    time.sleep(5)   # first passes done
    side, dove, wall = cpu_window(stack, dovecot, seconds)
    ops, top = redis_ops(url, db, 15.0)
    net_side = side / wall - base_side / base_wall
    net_dove = dove / wall - base_dove / base_wall
    return {"accounts": count, "seconds": round(wall, 1),
            "sidecarCpu_ms_per_s": round(side / wall * 1000, 1),
            "dovecotCpu_ms_per_s": round(dove / wall * 1000, 1),
            "noAccounts": {"sidecarCpu_ms_per_s": round(base_side / base_wall * 1000, 1),
                           "dovecotCpu_ms_per_s": round(base_dove / base_wall * 1000, 1),
                           "redisOps_per_s": round(base_ops, 1)},
            "sidecarCpuPerAccount_ms_per_s": round(net_side / count * 1000, 3),
            "dovecotCpuPerAccount_ms_per_s": round(net_dove / count * 1000, 3),
            "redisOps_per_s": round(ops, 1),
            "redisOpsPerAccount_per_s": round((ops - base_ops) / count, 3),
            "redisTop_per_s": top}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ops", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=1414)
    parser.add_argument("--db", type=int, default=8)
    parser.add_argument("--idle", type=int, default=0, help="measure N idle accounts instead")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--sweep", default=None, help="sidecar.statusSweep for this run")
    parser.add_argument("--no-disrupt", action="store_true")
    args = parser.parse_args()
    url = f"redis://127.0.0.1:6379/{args.db}"
    redis_lib.Redis.from_url(url).flushdb()
    tmp = Path(tempfile.mkdtemp(prefix="imapapi-bench-diff-"))
    os.chmod(tmp, 0o755)
    dovecot = Dovecot(tmp / "dovecot", many_connections=bool(args.idle)).start()
    receiver = Receiver().start()
    # a key of its own: the run's fresh DB must not race the processes over generating one
    env = {"COMMAND_TIMEOUT": "10s", "EVENTS_MAXLEN": "200000", "LOG_LEVEL": "info",
           "ENCRYPTION_KEY": secrets.token_hex(32)}
    if args.sweep:
        env["STATUS_SWEEP"] = args.sweep
    stack = Stack(url, env=env, log_dir=tmp / "logs").start()
    api = ApiSession(stack.api_url)
    try:
        if args.idle:
            print(json.dumps(idle_cost(api, stack, dovecot, receiver, args.idle, args.seconds,
                                       url, args.db)))
        else:
            result = D.run(api=api, stack=stack, dovecot=dovecot, receiver=receiver,
                           seed=args.seed, ops=args.ops, disrupt=not args.no_disrupt,
                           settle=300.0, log=lambda *a: None)
            keep = ("ops", "opsDone", "feed", "webhooks", "orderViolations", "duplicates",
                    "feedAnomalies", "webhookAnomalies", "events", "webhookEvents",
                    "settleSeconds", "latency", "latencyAwayFromDisruptions",
                    "latencyFromRecovery", "breakdown", "marks", "slowest", "repeats")
            print(json.dumps({k: result[k] for k in keep}, indent=1, default=str))
    finally:
        stack.stop()
        receiver.stop()
        dovecot.stop()
        print(f"logs: {tmp / 'logs'}")
    shutil.rmtree(tmp / "dovecot", ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
