"""Source download speed alone (issue 15): GET .../source vs a direct FETCH BODY.PEEK[], alternating.

Starts one Dovecot and our stack (tests/fixtures/stack.py), appends a message with an
--attachment-mb attachment, and times, in turn, --runs times:
  direct  one imapclient FETCH BODY.PEEK[] over STARTTLS (the sidecar's transport), the
          same client and read as bench/compare.py's yardstick
  http    GET /v1/account/bench/message/{id}/source through the API (the http.client reader
          of bench/compare.py, 1 MiB reads)
  rpc     (--stages rpc) the sidecar alone: the messages.source command sent to it and its
          frames drained from Redis by the API's reader (app/messages/frames.py), no HTTP
  api     (--stages api, on its own) the API's read path alone: 28 frames of 1 MiB already in
          Redis read by app/messages/frames.py (and --ab's) and written to a TCP peer
  <name>  (--ab TREE) the same GET against a second stack run from TREE (for example an
          exported older commit: git archive <sha> | tar -x -C TREE) on --ab-db: old and new
          code side by side, the machine's load swings hitting both alike
It prints MB/s per run, the medians, each download's ratio to the direct FETCH next to it
and its median, and CPU seconds per download of the sidecar, the API workers and Dovecot's
imap processes, this client, and Redis (from /proc; "redis*": Redis is shared by everyone on
the machine, so it counts their commands too), and how long the GET waited for its status
line (the API answers once it holds the first frame). Before each run it waits (--patience)
while a MONITOR client is attached to Redis: one slows every download several times over.

    .venv/bin/python bench/source_speed.py [--runs 7] [--attachment-mb 20] [--db 40]
        [--stages http,rpc | --stages api] [--tree TREE] [--ab /tmp/old-tree --ab-db 41]
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

from bench.compare import Client  # noqa: E402
from tests.fixtures import corpus  # noqa: E402
from tests.fixtures.dovecot import Dovecot, insecure_context  # noqa: E402
from tests.fixtures.stack import Stack  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    if pid == 0:
        return own_cpu()
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def own_cpu() -> float:
    """This process's CPU: the direct FETCH's reader, or the HTTP client."""
    return sum(os.times()[:2])


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def imap_pids(dovecot: Dovecot) -> list[int]:
    """Our Dovecot's imap and imap-login processes (imap-login holds the TLS session and
    encrypts; other engineers run their own Dovecots beside it)."""
    out = []
    for pid in children(dovecot.proc.pid):
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() in ("imap", "imap-login"):
                out.append(pid)
        except OSError:
            pass
    return out


def redis_pid(rds) -> int:
    return int(rds.info("server")["process_id"])


def monitors(rds) -> int:
    """MONITOR clients: Redis formats every command for them, 1 MiB frames included, which
    slows a download several times over (docs/messages.md); a run next to one says little."""
    return sum(1 for client in rds.client_list() if "O" in client.get("flags", ""))


class Target:
    """One stack under test: its GET and the processes whose CPU is counted."""

    def __init__(self, name: str, stack: Stack, http: Client, message_id: str):
        self.name, self.stack, self.http, self.message_id = name, stack, http, message_id
        self.first: list[float] = []   # ms until the status line (the API has the 1st frame)

    def pids(self) -> dict:
        api = self.stack.procs["api"].pid
        return {"sidecar": [self.stack.procs["sidecar"].pid], "api": children(api) or [api]}

    def get(self) -> int:
        """bench/compare.py's Client.stream, timing the status line too."""
        conn = http_client.HTTPConnection("127.0.0.1", self.stack.port, timeout=60)
        try:
            started = time.perf_counter()
            conn.request("GET", f"/v1/account/bench/message/{self.message_id}/source")
            resp = conn.getresponse()
            self.first.append((time.perf_counter() - started) * 1000)
            assert resp.status == 200, (resp.status, resp.read(300))
            total = 0
            while chunk := resp.read(1024 * 1024):
                total += len(chunk)
            return total
        finally:
            conn.close()


def start_stack(name: str, db: int, tree: Path | None, root: Path, dovecot: Dovecot,
                sample) -> Target:
    url = f"redis://127.0.0.1:6379/{db}"
    redis_lib.Redis.from_url(url).flushdb()
    env = {"LOG_LEVEL": "warn", "COMMAND_TIMEOUT": "30s"}
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
    stack = Stack(url, env=env, log_dir=root / f"logs-{name}")
    if tree is not None:
        stack.command = lambda item: [sys.executable, "-c", "import sys; sys.path.insert(0, "
                                      f"{str(tree)!r}); from launcher.cli import main; "
                                      "sys.exit(main())", item]
    stack.start()
    http = Client(stack.port)
    http.json("POST", "/v1/account", dovecot.account_payload("bench", "bench", "bench-pass"))
    stack.wait_state("bench", "connected", timeout=60)
    rows = http.json("GET", "/v1/account/bench/messages?path=INBOX&pageSize=10")["messages"]
    entry = next(m for m in rows if m.get("messageId") == sample.message_id)
    return Target(name, stack, http, entry["id"])


def rpc_reader(target: Target, db: int):
    """The sidecar alone: messages.source sent as the worker would, frames read as the API does."""
    from app.messages.frames import iter_frames
    from imapapi import rpc

    rds = redis_lib.Redis.from_url(f"redis://127.0.0.1:6379/{db}")

    def run() -> int:
        reply = rpc.call(rds, "bench", "messages.source", {"message": target.message_id},
                         timeout=30)
        return sum(len(c) for c in iter_frames(rds, reply.stream, timeout=30))
    return run


def quiet(rds, patience: float) -> int:
    """Wait (up to `patience` s) until no MONITOR client is attached -> how many still are."""
    deadline = time.monotonic() + patience
    while (count := monitors(rds)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return count


def measure(fns: dict, cpu_of: dict, size: int, runs: int, firsts: dict, rds,
            patience: float) -> None:
    rates = {name: [] for name in fns}
    cpu = {name: {} for name in fns}
    names = list(fns)
    for i in range(runs):
        # the direct FETCH first, the others in turns (which goes first alternating)
        order = names[:1] + (names[1:] if i % 2 == 0 else names[1:][::-1])
        left = quiet(rds, patience)
        for name in order:
            before = {k: sum(cpu_seconds(p) for p in pids) for k, pids in cpu_of[name]().items()}
            started = time.perf_counter()
            got = fns[name]()
            elapsed = time.perf_counter() - started
            assert got == size, (name, got, size)
            rates[name].append(size / elapsed / 1e6)
            for k, pids in cpu_of[name]().items():
                cpu[name].setdefault(k, []).append(sum(cpu_seconds(p) for p in pids) - before[k])
        print(f"  run {i + 1}: " + "  ".join(f"{n} {rates[n][-1]:6.1f}" for n in names)
              + f"   (load {os.getloadavg()[0]:.1f}" + (f", {left} MONITOR" if left else "") + ")",
              flush=True)
    direct = rates[names[0]]
    print(f"\n{size / 1e6:.1f} MB message, {runs} runs, MB/s median (min-max), ratio to the "
          "direct FETCH of the same run (median of the per-run ratios):")
    for name in names:
        values = rates[name]
        ratios = [v / d * 100 for v, d in zip(values, direct)]
        # the mean: /proc counts 10 ms ticks, which a median of a few runs would round away
        costs = "  ".join(f"{k} {statistics.fmean(v) * 1000:.0f}" for k, v in cpu[name].items())
        first = (f"   status line after {statistics.median(firsts[name][-runs:]):.1f} ms"
                 if firsts.get(name) else "")
        print(f"  {name:<10} {statistics.median(values):7.1f} ({min(values):.1f}-{max(values):.1f})"
              f"  {statistics.median(ratios):5.1f} %   CPU ms/download: {costs}{first}")


def frames_module(tree: Path | None):
    """app/messages/frames.py of a tree, loaded on its own (the rest is this tree's)."""
    import importlib.util

    path = (tree or ROOT) / "app" / "messages" / "frames.py"
    spec = importlib.util.spec_from_file_location(f"frames_{abs(hash(str(path)))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def api_alone(trees: dict, db: int, frames: int, runs: int) -> None:
    """The API's read path alone: `frames` 1 MiB data frames already in Redis, read by each
    tree's iter_frames and written to a TCP peer that drains them (as Gunicorn's sendall to a
    client); CPU of the reading thread."""
    import socket
    import threading

    from imapapi import wire

    rds = redis_lib.Redis.from_url(f"redis://127.0.0.1:6379/{db}", socket_timeout=60)
    server = socket.create_server(("127.0.0.1", 0))
    out = socket.create_connection(server.getsockname())
    peer, _ = server.accept()

    def drain():
        sink = bytearray(1 << 20)
        while peer.recv_into(sink):
            pass
    threading.Thread(target=drain, daemon=True).start()
    frame = bytearray(wire.DATA_HEADER_SIZE + wire.STREAM_CHUNK)
    frame[wire.DATA_HEADER_SIZE:] = os.urandom(wire.STREAM_CHUNK)
    wire.put_data_header(frame, wire.STREAM_CHUNK)
    modules = {name: frames_module(tree) for name, tree in trees.items()}
    cpu: dict = {name: [] for name in modules}
    wall: dict = {name: [] for name in modules}
    key = "ia:stream:bench-api-alone"
    for i in range(runs + 1):
        for name in (list(modules) if i % 2 == 0 else list(modules)[::-1]):
            rds.delete(key)
            rds.rpush(key, *([bytes(frame)] * frames), wire.end_frame({"size": 0}))
            started, used = time.perf_counter(), time.thread_time()
            for chunk in modules[name].iter_frames(rds, key, timeout=30):
                out.sendall(chunk)
            if i:   # the first round warms up
                cpu[name].append(time.thread_time() - used)
                wall[name].append(time.perf_counter() - started)
    rds.delete(key)
    out.close()
    print(f"\nAPI read path alone, {frames} x 1 MiB frames from Redis to a TCP peer, {runs} runs:")
    for name in modules:
        print(f"  {name:<10} reader CPU {statistics.median(cpu[name]) * 1000:6.1f} ms   "
              f"wall {statistics.median(wall[name]) * 1000:6.1f} ms (medians)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--attachment-mb", type=int, default=20)
    ap.add_argument("--db", type=int, default=40)
    ap.add_argument("--stages", default="http", help="http, rpc and/or api, comma-separated")
    ap.add_argument("--tree", type=Path, help="run the main stack from this tree (default: ours)")
    ap.add_argument("--ab", type=Path, help="a second tree to run a stack from, side by side")
    ap.add_argument("--ab-db", type=int, default=41)
    ap.add_argument("--ab-name", default="ab")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--patience", type=float, default=120,
                    help="seconds to wait before a run for MONITOR clients to go away")
    args = ap.parse_args()
    if args.stages == "api":   # no Dovecot, no stack
        trees = {"http": args.tree, **({args.ab_name: args.ab} if args.ab else {})}
        print(f"[{time.strftime('%H:%M:%S')}] load {os.getloadavg()}", flush=True)
        api_alone(trees, args.db, 28, args.runs)
        return 0

    root = Path(tempfile.mkdtemp(prefix="imapapi-source-"))
    root.chmod(0o755)
    dovecot = Dovecot(root / "dovecot")
    sample = corpus.big_attachment(size=args.attachment_mb * 1024 * 1024)
    targets: list[Target] = []
    tls_conn = None
    try:
        dovecot.start()
        dovecot.add_user("bench", "bench-pass")
        conn = dovecot.client("bench", "bench-pass")
        conn.append("INBOX", sample.raw)
        conn.logout()
        from imapclient import IMAPClient

        tls_conn = IMAPClient(dovecot.host, port=dovecot.port, ssl=False, timeout=60)
        tls_conn._imap.debug = 0   # as bench/compare.py: imapclient's level 5 repr()s literals
        tls_conn.starttls(insecure_context())
        tls_conn.login("bench", "bench-pass")
        tls_conn.select_folder("INBOX", readonly=True)
        uid = tls_conn.search(["HEADER", "Message-ID", sample.message_id])[0]
        ours = start_stack("http", args.db, args.tree, root, dovecot, sample)
        rds = redis_lib.Redis.from_url(f"redis://127.0.0.1:6379/{args.db}")
        server = [redis_pid(rds)]
        targets.append(ours)
        fns = {"direct": lambda: len(tls_conn.fetch([uid], ["BODY.PEEK[]"])[uid][b"BODY[]"])}
        cpu_of = {"direct": lambda: {"dovecot": imap_pids(dovecot), "client": [0],
                                    "redis*": server}}
        with_dovecot = (lambda t: lambda: {**t.pids(), "dovecot": imap_pids(dovecot),
                                           "client": [0], "redis*": server})
        if "http" in args.stages.split(","):
            fns["http"], cpu_of["http"] = ours.get, with_dovecot(ours)
        if "rpc" in args.stages.split(","):
            fns["rpc"], cpu_of["rpc"] = rpc_reader(ours, args.db), with_dovecot(ours)
        if args.ab is not None:
            other = start_stack(args.ab_name, args.ab_db, args.ab, root, dovecot, sample)
            targets.append(other)
            fns[args.ab_name], cpu_of[args.ab_name] = other.get, with_dovecot(other)
        for _ in range(args.warmup):
            for fn in fns.values():
                fn()
        print(f"[{time.strftime('%H:%M:%S')}] load {os.getloadavg()}, "
              f"MONITOR clients on Redis: {monitors(rds)}", flush=True)
        firsts = {"http": ours.first}
        if args.ab is not None:
            firsts[args.ab_name] = targets[1].first
        measure(fns, cpu_of, len(sample.raw), args.runs, firsts, rds, args.patience)
        print(f"[{time.strftime('%H:%M:%S')}] load {os.getloadavg()}, "
              f"MONITOR clients on Redis: {monitors(rds)}", flush=True)
        shutil.rmtree(root, ignore_errors=True)
        return 0
    except BaseException:
        for target in targets:
            print(target.stack.log_tail(lines=30))
        print(f"logs kept in {root}")
        raise
    finally:
        if tls_conn is not None:
            try:
                tls_conn.logout()
            except Exception:
                pass
        for target in targets:
            target.stack.stop()
        dovecot.stop()


if __name__ == "__main__":
    raise SystemExit(main())
