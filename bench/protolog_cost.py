"""Benchmark (issue 13): the cost of per-account IMAP protocol logging on a listing request.

Real Dovecot + the real stack; GET /v1/account/bench/messages (pageSize 20, INBOX of 1,000)
through http.client on a kept-alive connection, in alternating blocks with the account's log
off and on (POST /v1/settings {"logs": ...}), so drift on a shared machine hits both alike.

    .venv/bin/python bench/protolog_cost.py [--requests 200] [--blocks 4] [--redis-db 12]
"""
from __future__ import annotations

import argparse
import http.client as http_client
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis as redis_lib  # noqa: E402
import requests  # noqa: E402

from bench.api_latency import fill_inbox, report  # noqa: E402
from imapapi import protolog  # noqa: E402
from tests.fixtures.dovecot import Dovecot  # noqa: E402
from tests.fixtures.stack import Stack  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="requests per mode")
    parser.add_argument("--blocks", type=int, default=4, help="off/on alternations")
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--page-size", type=int, default=20)
    parser.add_argument("--redis-db", type=int,
                        default=int(os.environ.get("IMAPAPI_TEST_REDIS_DB", "12")))
    args = parser.parse_args()

    redis_url = f"redis://127.0.0.1:6379/{args.redis_db}"
    rds = redis_lib.Redis.from_url(redis_url)
    rds.flushdb()
    root = Path(tempfile.mkdtemp(prefix="imapapi-bench-"))
    root.chmod(0o755)
    dovecot = Dovecot(root / "dovecot")
    # a throwaway key: the stack stores credentials encrypted (imapapi.vault)
    env = {"LOG_LEVEL": "warn", "COMMAND_TIMEOUT": "10s",
           "ENCRYPTION_KEY": os.environ.get("ENCRYPTION_KEY") or os.urandom(32).hex()}
    stack = Stack(redis_url, env=env, log_dir=root / "logs")
    try:
        dovecot.start()
        dovecot.add_user("bench", "bench-pass")
        fill_inbox(dovecot, "bench", "bench-pass", args.messages)
        stack.start()
        http = requests.Session()
        resp = http.post(stack.api_url + "/v1/account",
                         json=dovecot.account_payload("bench", "bench", "bench-pass"), timeout=10)
        assert resp.status_code == 200, f"{resp.text[:300]}\n{stack.log_tail(lines=30)}"
        stack.wait_state("bench", "connected", timeout=60)
        lean = http_client.HTTPConnection("127.0.0.1", stack.port, timeout=30)
        query = f"/v1/account/bench/messages?path=INBOX&pageSize={args.page_size}"

        def listing():
            lean.request("GET", query)
            resp = lean.getresponse()
            body = resp.read()
            assert resp.status == 200, body[:300]

        def set_logging(on: bool):
            logs = {"accounts": ["bench"] if on else [], "maxLogLines": 10000}
            http.post(stack.api_url + "/v1/settings", json={"logs": logs},
                      timeout=10).raise_for_status()
            time.sleep(1.5)   # the sidecar reloads the setting from the settings channel

        for _ in range(20):
            listing()
        per_block = max(1, args.requests // args.blocks)
        samples: dict[str, list[float]] = {"log off": [], "log on": []}
        lines_per_request = []
        for _ in range(args.blocks):
            for mode in ("log off", "log on"):
                set_logging(mode == "log on")
                before = rds.llen(protolog.log_key("bench"))
                for _ in range(per_block):
                    started = time.perf_counter()
                    listing()
                    samples[mode].append((time.perf_counter() - started) * 1000)
                if mode == "log on":
                    lines_per_request.append(
                        (rds.llen(protolog.log_key("bench")) - before) / per_block)
        print(f"GET messages pageSize {args.page_size}, INBOX of {args.messages}, "
              f"{per_block * args.blocks} requests per mode in {args.blocks} alternating blocks")
        off = report("log off", samples["log off"])
        on = report("log on", samples["log on"])
        sample = rds.lrange(protolog.log_key("bench"), -3, -1)
        print(f"  log lines per request: {sum(lines_per_request) / len(lines_per_request):.1f}; "
              f"p50 cost of logging: {on - off:+.2f} ms ({(on - off) / off * 100:+.1f} %)")
        print("  last lines:", *[json.loads(x)["msg"][:100] for x in sample], sep="\n    ")
        return 0
    finally:
        stack.stop()
        dovecot.stop()
        rds.flushdb()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
