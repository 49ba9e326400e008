"""Benchmark: how fast one account's in-order webhook queue drains (events/s), Redis and receiver on loopback.

    .venv/bin/python bench/webhook_drain.py [--events 500] [--receiver split|single] [--db 27]

Commits --events events for one account (events.append_events, as the sidecar does), then
runs the delivery task's plain function (delivery.deliver_event) until the queue is empty and
reports events per second and Redis commands per event. The receiver runs in its own process:
`split` answers like Python's http.server (status line and headers in one send, the body in a
second), `single` writes the whole answer at once. Flushes the DB it is given.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RECEIVER = r"""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = -1 if sys.argv[2] == "single" else 0
    def log_message(self, *a):
        pass
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")
s = ThreadingHTTPServer(("127.0.0.1", 0), H)
s.daemon_threads = True
print(s.server_address[1], flush=True)
s.serve_forever()
"""


def count_sends() -> list[int]:
    """Count the Redis requests this process sends (one per command or pipeline)."""
    from redis.connection import AbstractConnection

    box = [0]
    original = AbstractConnection.send_packed_command

    def counting(self, *args, **kwargs):
        box[0] += 1
        return original(self, *args, **kwargs)
    AbstractConnection.send_packed_command = counting
    return box


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--receiver", choices=("split", "single"), default="split")
    parser.add_argument("--db", type=int, default=27)
    args = parser.parse_args()
    os.environ["REDIS_URL"] = f"redis://127.0.0.1:6379/{args.db}"
    os.environ["IMAPAPI_DOTENV"] = "0"
    from imapapi import delivery, events, keys, webhook_settings
    from imapapi.settings import get_redis

    redis = get_redis()
    redis.flushdb()
    proc = subprocess.Popen([sys.executable, "-c", RECEIVER, "0", args.receiver],
                            stdout=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline())
        account = "drain1"
        redis.hset(keys.account(account), mapping={"account": account, "state": "connected"})
        webhook_settings.save(redis, {"webhooks": f"http://127.0.0.1:{port}/hook"})
        batch = [events.make_event(account, "messageUpdated",
                                   {"id": f"m{i}", "uid": i,
                                    "changes": {"flags": {"added": ["\\Seen"]}}},
                                   path="INBOX", id_parts=(i,)) for i in range(args.events)]
        events.append_events(redis, account, batch, occurrence=True)
        sends = count_sends()
        started, runs = time.monotonic(), 0
        while redis.llen(keys.webhook_queue(account)):
            delivery.deliver_event(redis, None, account=account)
            runs += 1
        seconds = time.monotonic() - started
        print(json.dumps({
            "events": args.events, "receiver": args.receiver, "seconds": round(seconds, 3),
            "events_per_s": round(args.events / seconds, 1), "taskRuns": runs,
            "delivered": delivery.delivered_upto(redis, account),
            # requests this process sent (a pipeline is one), including the queue-length checks
            "redisRoundTripsPerEvent": round(sends[0] / args.events, 2),
            "loadavg": os.getloadavg()[0]}))
    finally:
        proc.kill()
        redis.flushdb()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
