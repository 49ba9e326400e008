"""Two whole stacks from two source trees, requests taking turns: single-message read latency and CPU per process.

A/B of a code change under a shared machine's swinging load: one Dovecot, stack A from --tree-a
on Redis DB --db-a and stack B from --tree-b on --db-b (each its worker, sidecar and API, the
code taken from its tree by PYTHONPATH), the same account and multipart message in both. Then
--requests rounds of GET message/{id} or GET text/{id}?textType=* (--read), one kept-alive
client per stack, in ABBA order so load swings hit both alike. Prints per stack the p50 / p10
and each process tree's CPU per request (api, worker, sidecar), and B / A.

    .venv/bin/python bench/stack_ab.py --tree-a DIR --tree-b DIR [--requests 1500]
        [--read message|text] [--db-a 37] [--db-b 38]
    (a tree: e.g. `git archive <commit> | tar -x -C DIR`, or a copy of the work tree)
"""
from __future__ import annotations

import argparse
import http.client as http_client
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis as redis_lib  # noqa: E402

from bench.single_cost import children, tree_cpu  # noqa: E402
from tests.fixtures import corpus  # noqa: E402
from tests.fixtures.dovecot import Dovecot  # noqa: E402
from tests.fixtures.stack import Stack  # noqa: E402

PROCS = ("api", "worker", "sidecar")


class Side:
    """One stack, its kept-alive client, its read's path and its latencies."""

    def __init__(self, name: str, tree: str, db: int, root: Path):
        url = f"redis://127.0.0.1:6379/{db}"
        redis_lib.Redis.from_url(url).flushdb()
        self.name, self.times = name, []
        # PYTHONPATH given last wins over the stack's own (this repository's) entry
        path = os.pathsep.join(filter(None, [str(Path(tree).resolve()),
                                             os.environ.get("PYTHONPATH")]))
        self.stack = Stack(url, env={"LOG_LEVEL": "warn", "COMMAND_TIMEOUT": "30s",
                                     "PYTHONPATH": path}, log_dir=root / f"logs-{name}")
        self.conn = self.path = None

    def ready(self, dovecot: Dovecot, read: str) -> None:
        s = self.stack
        assert s.http.post(s.api_url + "/v1/account", json=dovecot.account_payload(
            "bench", "bench", "bench-pass"), timeout=30).status_code < 300
        s.wait_state("bench", "connected", timeout=60)
        rich = s.http.get(s.api_url + "/v1/account/bench/messages?path=INBOX",
                          timeout=30).json()["messages"][0]
        self.path = (f"/v1/account/bench/message/{rich['id']}" if read == "message"
                     else f"/v1/account/bench/text/{rich['text']['id']}?textType=*")
        self.conn = http_client.HTTPConnection("127.0.0.1", s.port, timeout=60)

    def get(self, record: bool = True) -> None:
        started = time.perf_counter()
        self.conn.request("GET", self.path)
        resp = self.conn.getresponse()
        body = resp.read()
        assert resp.status == 200, body[:300]
        if record:
            self.times.append((time.perf_counter() - started) * 1000)

    def cpu(self) -> dict:
        tree = children()
        return {name: tree_cpu(self.stack.procs[name].pid, tree) for name in PROCS}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tree-a", required=True)
    ap.add_argument("--tree-b", required=True)
    ap.add_argument("--requests", type=int, default=1500)
    ap.add_argument("--read", choices=("message", "text"), default="message")
    ap.add_argument("--db-a", type=int, default=37)
    ap.add_argument("--db-b", type=int, default=38)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="imapapi-stack-ab-"))
    root.chmod(0o755)
    dovecot = Dovecot(root / "dovecot")
    sides = [Side("A", args.tree_a, args.db_a, root), Side("B", args.tree_b, args.db_b, root)]
    try:
        dovecot.start()
        dovecot.add_user("bench", "bench-pass")
        dovecot.append("bench", "bench-pass", "INBOX", corpus.nested_mixed().raw)
        for side in sides:
            side.stack.start()
            side.ready(dovecot, args.read)
        for _ in range(50):              # warm-up: imports, connections, caches
            for side in sides:
                side.get(record=False)
        load = os.getloadavg()[0]
        before = [side.cpu() for side in sides]
        for i in range(args.requests):
            for side in (sides if i % 2 == 0 else sides[::-1]):
                side.get()
        after = [side.cpu() for side in sides]
        print(f"GET {args.read}: {args.requests} rounds, load {load:.1f} -> {os.getloadavg()[0]:.1f}")
        rows = []
        for side, b, a in zip(sides, before, after):
            v = sorted(side.times)
            cpu = {n: (a[n] - b[n]) / args.requests * 1000 for n in PROCS}
            rows.append((statistics.median(v), v[len(v) // 10], cpu))
            print(f"  {side.name}: p50 {rows[-1][0]:.2f} ms  p10 {rows[-1][1]:.2f}  CPU ms per "
                  "request " + "  ".join(f"{n} {cpu[n]:.3f}" for n in PROCS))
        (p50a, p10a, cpua), (p50b, p10b, cpub) = rows
        print(f"  B / A: p50 {p50b / p50a:.3f}  p10 {p10b / p10a:.3f}  " + "  ".join(
            f"{n} {cpub[n] / cpua[n]:.3f}" for n in PROCS if cpua[n]))
    finally:
        for side in sides:
            side.stack.stop()
        dovecot.stop()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
