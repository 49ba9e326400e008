"""Gunicorn worker classes side by side (gthread vs launcher.linger) on a bare WSGI app: latency per client mix.

Starts one Gunicorn per class (1 worker, --threads threads, keepalive 5 s) serving `app` below,
which sleeps --sleep ms (a request waiting on Redis, the GIL released) around --cpu ms of CPU
(1.5 is about an API read's) and returns 300 bytes.
Then, for --rounds rounds, each scenario runs on each class in turn (the order alternates per
round, so load swings of a shared machine hit both alike) and the latencies of all rounds are
pooled per class, with Gunicorn's CPU per request (arbiter + worker, from /proc):
  seq       1 kept-alive client, sequential
  N:T       N kept-alive clients in a closed loop on T threads (--mixes, e.g. 4,12,32)
  idle+1    --idle kept-alive connections left idle (one request each), 1 busy client

    .venv/bin/python bench/gunicorn_workers.py [--threads 4] [--requests 400] [--rounds 3]
        [--sleep 2] [--cpu 0] [--mixes 4,12,32] [--idle 200] [--classes gthread,linger]
    (--classes takes any Gunicorn worker class path too, e.g. an A/A run:
     --classes gthread,gunicorn.workers.gthread.ThreadWorker)
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLASSES = {"gthread": "gthread", "linger": "launcher.linger.LingerThreadWorker"}
BODY = b"x" * 300
REQUEST = b"GET /v1/x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def _spin(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def app(environ, start_response):
    """The bench's WSGI app: half its CPU, a wait like one on a reply, the other half."""
    cpu = float(os.environ.get("BENCH_CPU_MS", "0")) / 2000.0
    _spin(cpu)
    time.sleep(float(os.environ.get("BENCH_SLEEP_MS", "2")) / 1000.0)
    _spin(cpu)
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))])
    return [BODY]


class Server:
    def __init__(self, name: str, threads: int, sleep_ms: float, cpu_ms: float, log_dir: str):
        self.name = name
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        env = {**os.environ, "BENCH_SLEEP_MS": str(sleep_ms), "BENCH_CPU_MS": str(cpu_ms),
               "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        self.log = open(Path(log_dir) / f"{name}.log", "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-w", "1", "-k", CLASSES.get(name, name), "--threads",
             str(threads), "--keep-alive", "5", "-b", f"127.0.0.1:{self.port}",
             "bench.gunicorn_workers:app"], cwd=ROOT, env=env, stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                Client(self.port).get()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{name} did not start (see {self.log.name})")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()


class Client:
    """A kept-alive raw-socket client: the response length is known, so no HTTP parsing."""

    WANT = None

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def get(self) -> float:
        start = time.perf_counter()
        self.sock.sendall(REQUEST)
        data = b""
        while not data.endswith(BODY):
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        return time.perf_counter() - start

    def close(self):
        self.sock.close()


def closed_loop(port: int, clients: int, requests: int) -> list[float]:
    """`clients` kept-alive clients, each sending requests // clients requests back to back."""
    out: list[float] = []
    conns = [Client(port) for _ in range(clients)]
    for c in conns:
        c.get()                              # connected and served once before timing
    go = threading.Barrier(clients)

    def run(c: Client):
        go.wait()
        mine = [c.get() for _ in range(max(1, requests // clients))]
        out.extend(mine)

    threads = [threading.Thread(target=run, args=(c,)) for c in conns]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for c in conns:
        c.close()
    return out


def idle_plus_one(port: int, idle: int, requests: int) -> list[float]:
    idlers = []
    for _ in range(idle):
        c = Client(port)
        c.get()
        idlers.append(c)
    busy = Client(port)
    busy.get()
    out = [busy.get() for _ in range(requests)]
    for c in idlers + [busy]:
        c.close()
    return out


def summary(values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return f"p50 {statistics.median(ms):6.2f}  p99 {p99:6.2f}  max {ms[-1]:6.2f} ms  (n={len(ms)})"


def main() -> int:
    # here, not at the top: Gunicorn imports this module for `app`
    sys.path.insert(0, str(ROOT))
    from bench.single_cost import children, tree_cpu

    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sleep", type=float, default=2.0)
    parser.add_argument("--cpu", type=float, default=0.0,
                        help="ms of CPU per request, half before the sleep, half after")
    parser.add_argument("--mixes", default="4,12,32")
    parser.add_argument("--idle", type=int, default=200)
    parser.add_argument("--classes", default="gthread,linger")
    args = parser.parse_args()
    names = args.classes.split(",")
    scenarios = [("seq", lambda p: closed_loop(p, 1, args.requests))]
    for n in (int(x) for x in args.mixes.split(",") if x):
        scenarios.append((f"{n}:{args.threads}",
                          lambda p, n=n: closed_loop(p, n, args.requests * max(1, n // 4))))
    if args.idle:
        scenarios.append((f"idle{args.idle}+1", lambda p: idle_plus_one(p, args.idle, args.requests)))
    print(f"load average {os.getloadavg()[0]:.2f} at start; threads {args.threads}, "
          f"app sleep {args.sleep} ms, CPU {args.cpu} ms, {args.rounds} rounds", flush=True)
    with tempfile.TemporaryDirectory(prefix="gw-bench-") as log_dir:
        servers = {n: Server(n, args.threads, args.sleep, args.cpu, log_dir) for n in names}
        try:
            results = {(s, n): [] for s, _ in scenarios for n in names}
            cpu = dict.fromkeys(results, 0.0)     # Gunicorn's CPU seconds (arbiter + worker)
            for r in range(args.rounds):
                order = names if r % 2 == 0 else names[::-1]
                for label, run in scenarios:
                    for n in order:
                        before = tree_cpu(servers[n].proc.pid, children())
                        results[(label, n)].extend(run(servers[n].port))
                        cpu[(label, n)] += tree_cpu(servers[n].proc.pid, children()) - before
            for label, _ in scenarios:
                for n in names:
                    per = cpu[(label, n)] / len(results[(label, n)]) * 1e6
                    print(f"{label:<10} {n:<8} {summary(results[(label, n)])}  CPU {per:4.0f} us/req")
        finally:
            for s in servers.values():
                s.stop()
    print(f"load average {os.getloadavg()[0]:.2f} at end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
