"""Two API processes on one stack, requests taking turns: single-message read latency and API CPU per Gunicorn worker class.

Starts a Dovecot, our stack (worker, sidecar, API) on one Redis DB and a second API process
beside it; the two APIs differ only in IMAPAPI_API_WORKER (--classes, default gthread,linger)
and share the Celery worker and the sidecar. Then --requests rounds of GET message/{id} (and
then GET text/{id}?textType=*), one kept-alive client per API, the two APIs taking turns
(ABBA order), so the load of a shared machine hits both alike. Prints per class the p50 / p90
and the API process tree's CPU per request, the ratio of the second class to the first, and the
median of the paired differences (request i of the second minus request i of the first).

    .venv/bin/python bench/api_worker_ab.py [--requests 400] [--db 31] [--classes gthread,linger]
        [--tree1 DIR] [--tree2 DIR]   (the stack's / the second API's code from DIR: A/B a
                         code change, e.g. --classes linger,linger --tree1 <a `git archive` of
                         the commit before it> --tree2 <the same with the change>)
"""
from __future__ import annotations

import argparse
import http.client as http_client
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis as redis_lib  # noqa: E402

from bench.single_cost import children, tree_cpu  # noqa: E402
from tests.fixtures import corpus  # noqa: E402
from tests.fixtures.dovecot import Dovecot, free_port  # noqa: E402
from tests.fixtures.stack import ENTRY, Stack  # noqa: E402


class Api:
    """A kept-alive client of one API process, its latencies and the process tree's pid."""

    def __init__(self, name: str, port: int, pid: int):
        self.name, self.port, self.pid = name, port, pid
        self.conn = http_client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.times: list[float] = []

    def get(self, path: str, record: bool = True) -> None:
        started = time.perf_counter()
        self.conn.request("GET", path)
        resp = self.conn.getresponse()
        body = resp.read()
        if record:
            self.times.append((time.perf_counter() - started) * 1000)
        assert resp.status == 200, body[:300]


def wait_up(port: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, "second API exited"
        try:
            conn = http_client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError("second API did not come up")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--db", type=int, default=31)
    ap.add_argument("--classes", default="gthread,linger")
    ap.add_argument("--tree1", help="run the stack (worker, sidecar, first API) from this "
                    "source tree instead of this checkout")
    ap.add_argument("--tree2", help="run the second API from this source tree (e.g. a `git "
                    "archive` of another commit): A/B a code change rather than a worker class")
    args = ap.parse_args()
    first, second = args.classes.split(",")
    label1 = f"{first}@{Path(args.tree1).name}" if args.tree1 else first
    label2 = f"{second}@{Path(args.tree2).name}" if args.tree2 else second
    url = f"redis://127.0.0.1:6379/{args.db}"
    root = Path(tempfile.mkdtemp(prefix="imapapi-ab-"))
    root.chmod(0o755)
    dovecot = Dovecot(root / "dovecot")
    redis_lib.Redis.from_url(url).flushdb()
    stack = Stack(url, env={"LOG_LEVEL": "warn", "COMMAND_TIMEOUT": "30s",
                            "IMAPAPI_API_WORKER": first,
                            **({"PYTHONPATH": args.tree1} if args.tree1 else {})},
                  log_dir=root / "logs")
    other = None
    try:
        dovecot.start()
        dovecot.add_user("bench", "bench-pass")
        dovecot.append("bench", "bench-pass", "INBOX", corpus.nested_mixed().raw)
        stack.start()
        port2 = free_port()
        with open(root / "logs" / "api2.log", "ab") as log:
            other = subprocess.Popen(
                [sys.executable, "-c", ENTRY, "api"], cwd=root / "logs", stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
                env={**stack.env, "API_PORT": str(port2), "IMAPAPI_API_WORKER": second,
                     **({"PYTHONPATH": args.tree2} if args.tree2 else {})})
        wait_up(port2, other)
        assert stack.http.post(stack.api_url + "/v1/account", json=dovecot.account_payload(
            "bench", "bench", "bench-pass"), timeout=30).status_code < 300
        stack.wait_state("bench", "connected", timeout=60)
        rich = stack.http.get(stack.api_url + "/v1/account/bench/messages?path=INBOX",
                              timeout=30).json()["messages"][0]
        apis = [Api(label1, stack.port, stack.procs["api"].pid), Api(label2, port2, other.pid)]
        paths = {"message": f"/v1/account/bench/message/{rich['id']}",
                 "text": f"/v1/account/bench/text/{rich['text']['id']}?textType=*"}
        print(f"load average {os.getloadavg()[0]:.2f} at start, {args.requests} requests each")
        for label, path in paths.items():
            for api in apis:
                api.times.clear()
                for _ in range(20):
                    api.get(path, record=False)
            tree = children()
            before = [tree_cpu(api.pid, tree) for api in apis]
            for i in range(args.requests):
                for api in (apis if i % 2 == 0 else apis[::-1]):
                    api.get(path)
            tree = children()
            cpu = [(tree_cpu(api.pid, tree) - b) / args.requests * 1000
                   for api, b in zip(apis, before)]
            p50 = [statistics.median(api.times) for api in apis]
            for api, p, c in zip(apis, p50, cpu):
                p90 = statistics.quantiles(api.times, n=10)[-1]
                print(f"GET {label:<8} {api.name:<8} p50 {p:6.2f}  p90 {p90:6.2f} ms  "
                      f"API CPU {c:5.2f} ms/request")
            # request i of both went out back to back: their difference is nearly free of the
            # machine's load swings, unlike each p50
            diffs = [b - a for a, b in zip(*(api.times for api in apis))]
            faster = sum(d < 0 for d in diffs) / len(diffs)
            print(f"GET {label:<8} {label2}/{label1}: p50 {p50[1] / p50[0]:.3f}x, paired "
                  f"difference p50 {statistics.median(diffs):+.3f} ms ({faster:.0%} of pairs "
                  f"{label2} faster), API CPU {cpu[1] / cpu[0]:.3f}x  "
                  f"(load {os.getloadavg()[0]:.2f})")
    finally:
        if other is not None and other.poll() is None:
            os.killpg(other.pid, signal.SIGTERM)
            other.wait(15)
        stack.stop()
        dovecot.stop()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
