"""The sidecar's part of a single-message read alone (issue 15): round trip and CPU per command.

Starts a Dovecot and our stack on one Redis DB, appends the compare bench's multipart message,
then sends --requests messages.get and messages.text commands to the sidecar the way the
worker's task does (rpc.enqueue's script, then BLPOP on the reply key: rpc.call), one at a
time, with no API or Celery hop in between. Prints per op the round trip p10/p50/p90 and the
sidecar's CPU per command (user+system of its process, net of an idle window as long).
Fewer processes on the path than bench/single_cost.py, so A/B runs of a sidecar change
vary less on a shared machine.

    .venv/bin/python bench/sidecar_roundtrip.py [--requests 1000] [--db 29]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis as redis_lib  # noqa: E402

from imapapi import rpc  # noqa: E402
from tests.fixtures import corpus  # noqa: E402
from tests.fixtures.dovecot import Dovecot  # noqa: E402
from tests.fixtures.stack import Stack  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--db", type=int, default=29)
    args = ap.parse_args()
    url = f"redis://127.0.0.1:6379/{args.db}"
    root = Path(tempfile.mkdtemp(prefix="imapapi-sidecar-rt-"))
    root.chmod(0o755)
    dovecot = Dovecot(root / "dovecot")
    redis = redis_lib.Redis.from_url(url)
    redis.flushdb()
    stack = Stack(url, env={"LOG_LEVEL": "warn", "COMMAND_TIMEOUT": "30s"}, log_dir=root / "logs")
    try:
        dovecot.start()
        dovecot.add_user("bench", "bench-pass")
        dovecot.append("bench", "bench-pass", "INBOX", corpus.nested_mixed().raw)
        stack.start()
        assert stack.http.post(stack.api_url + "/v1/account", json=dovecot.account_payload(
            "bench", "bench", "bench-pass"), timeout=30).status_code < 300
        stack.wait_state("bench", "connected", timeout=60)
        rich = stack.http.get(stack.api_url + "/v1/account/bench/messages?path=INBOX",
                              timeout=30).json()["messages"][0]
        calls = {"messages.get": {"message": rich["id"]},
                 "messages.text": {"text": rich["text"]["id"], "textType": "*"}}
        sidecar = stack.procs["sidecar"].pid
        n = args.requests
        for op, op_args in calls.items():
            for _ in range(30):
                rpc.call(redis, "bench", op, op_args, timeout=10)
            took = []
            cpu0, started = cpu_seconds(sidecar), time.perf_counter()
            for _ in range(n):
                t0 = time.perf_counter()
                rpc.call(redis, "bench", op, op_args, timeout=10)
                took.append(time.perf_counter() - t0)
            wall = time.perf_counter() - started
            cpu1 = cpu_seconds(sidecar)
            time.sleep(wall)   # the same time without commands: heartbeats, lease renewals
            idle = cpu_seconds(sidecar) - cpu1
            took.sort()
            print(f"{op:<14} round trip p10 {took[n // 10] * 1000:.3f} ms, "
                  f"p50 {took[n // 2] * 1000:.3f} ms, p90 "
                  f"{took[int(n * 0.9)] * 1000:.3f} ms; sidecar CPU "
                  f"{(cpu1 - cpu0 - idle) / n * 1000:.3f} ms per command "
                  f"(load {os.getloadavg()[0]:.1f})", flush=True)
    finally:
        stack.stop()
        dovecot.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
