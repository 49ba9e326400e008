"""Benchmark (issue 15): listing throughput with several clients, ours against the original, one run.

The issue's "the listing keeps its lead" was 8-client listing throughput (194 against 144 req/s).
Both systems run at once against one Dovecot user whose INBOX holds --messages messages; each
round sends GET messages?path=INBOX&pageSize=20 from --clients kept-alive connections for
--seconds, the systems taking turns A B B A (so a load swing of the shared machine hits both
alike). Prints requests a second and p50 per system and round, and the ratio of the medians.

    .venv/bin/python bench/listing_throughput.py [--clients 8] [--seconds 10] [--rounds 4]
        [--db 20] [--peer-db 21] [--peer-port 3901]
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from compare import Client, Ours, Peer, wait_connected  # noqa: E402
from tests.fixtures import corpus  # noqa: E402
from tests.fixtures.dovecot import Dovecot  # noqa: E402

PATH = "/v1/account/bench/messages?path=INBOX&pageSize=20"


def burst(port: int, clients: int, seconds: float) -> tuple[float, float]:
    """`clients` threads listing for `seconds` -> (requests a second, p50 ms)."""
    times: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)
    stop_at = [0.0]

    def worker():
        http = Client(port)
        mine = []
        start.wait()
        while time.perf_counter() < stop_at[0]:
            t0 = time.perf_counter()
            status, raw = http.request("GET", PATH)
            assert status == 200 and b'"messages"' in raw, raw[:300]
            mine.append((time.perf_counter() - t0) * 1000)
        with lock:
            times.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    stop_at[0] = time.perf_counter() + seconds
    start.wait()
    for t in threads:
        t.join()
    return len(times) / seconds, statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--messages", type=int, default=40)
    ap.add_argument("--db", type=int, default=int(os.environ.get("IMAPAPI_TEST_REDIS_DB", "20")))
    ap.add_argument("--peer-db", type=int, default=21)
    ap.add_argument("--peer-port", type=int, default=3901)
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    root = Path(tempfile.mkdtemp(prefix="imapapi-listing-"))
    root.chmod(0o755)
    dovecot = Dovecot(root / "dovecot", many_connections=True)
    peer = Peer(f"redis://127.0.0.1:6379/{args.peer_db}", args.peer_port, root / "peer")
    ours = Ours(f"redis://127.0.0.1:6379/{args.db}", root / "logs",
                {"LOG_LEVEL": "warn", "COMMAND_TIMEOUT": "30s"})
    try:
        dovecot.start()
        dovecot.add_user("bench", "bench-pass")
        conn = dovecot.client("bench", "bench-pass")
        for i in range(args.messages):
            conn.append("INBOX", corpus.nested_mixed().raw if i % 2 else corpus.alternative().raw)
        conn.logout()
        peer.start()
        ours.start()
        for system in (peer, ours):
            http = Client(system.port)
            http.json("POST", "/v1/account",
                      dovecot.account_payload("bench", "bench", "bench-pass"))
            wait_connected(system, http, 1, 60)
            burst(system.port, args.clients, 1.0)   # warm-up
        got = {peer.name: [], ours.name: []}
        print(f"[{time.strftime('%H:%M:%S')}] {args.clients} clients, {args.seconds:g} s a turn "
              f"(load {os.getloadavg()[0]:.1f})", flush=True)
        for r in range(args.rounds):
            order = (peer, ours) if r % 2 == 0 else (ours, peer)
            for system in order:
                rate, p50 = burst(system.port, args.clients, args.seconds)
                got[system.name].append((rate, p50))
                print(f"    round {r + 1} {system.name}: {rate:.1f} req/s, p50 {p50:.2f} ms",
                      flush=True)
        med = {name: (statistics.median(x[0] for x in rows), statistics.median(x[1] for x in rows))
               for name, rows in got.items()}
        p, o = med[peer.name], med[ours.name]
        print(f"\n| figure ({args.clients} clients) | {peer.name} | ours | ours / original |\n"
              f"|---|---|---|---|\n"
              f"| GET messages pageSize 20, req/s | {p[0]:.1f} | {o[0]:.1f} | {o[0] / p[0]:.2f}x |\n"
              f"| p50 (ms) | {p[1]:.2f} | {o[1]:.2f} | {o[1] / p[1]:.2f}x |\n\n"
              f"machine load average at the end: {os.getloadavg()[0]:.1f}")
        shutil.rmtree(root, ignore_errors=True)
        return 0
    finally:
        peer.stop()
        ours.stop()
        dovecot.stop()


if __name__ == "__main__":
    raise SystemExit(main())
