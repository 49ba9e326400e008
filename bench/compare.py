"""Side by side with the original (npm imapapi 1.8.2): the issue-15 table for both and the ratio.

Starts one Dovecot, the original from PEER_DIR (../shared/peers/imapapi/start.sh, its own Redis DB)
and our stack (tests/fixtures/stack.py, another DB), and measures each figure for both, phase by
phase, the original first, each phase on a freshly started system with a flushed DB, so load from
other users of the machine hits both alike:
  single   one account, a multipart message and a message with a big attachment in INBOX:
           GET message/{id} p50, GET text/{id}?textType=* p50, GET messages (the listing of
           those two, pageSize 20) p50 (sequential, kept-alive client),
           GET message/{id}/source MB/s vs a direct FETCH BODY.PEEK[] over STARTTLS
  connect  --accounts accounts registered (8 parallel POSTs) until all are `connected`
  memory   Redis growth from --memory-from to --accounts idle connected accounts: the sum of
           MEMORY USAGE over the DB's keys (exact: other DBs on the shared Redis do not count)
           and INFO used_memory (instance-wide, noisy on a shared Redis)

    .venv/bin/python bench/compare.py [--accounts 1000] [--memory-from 100] [--requests 200]
        [--attachment-mb 20] [--phases single,connect,memory] [--db 11] [--peer-db 12]
        [--interleave]   (single: both systems started together, requests taking turns one by
                          one, so the swings of a shared machine's load hit both alike)
"""
from __future__ import annotations

import argparse
import http.client as http_client
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis as redis_lib  # noqa: E402

from tests.fixtures import corpus  # noqa: E402
from tests.fixtures.dovecot import Dovecot, insecure_context  # noqa: E402
from tests.fixtures.stack import Stack  # noqa: E402

PEER_SCRIPTS = Path(os.environ.get("PEER_SCRIPTS", "/work/shared/peers/imapapi"))


class Client:
    """A kept-alive http.client connection (one per thread): the same client for both systems."""

    def __init__(self, port: int):
        self.port = port
        self.conn = http_client.HTTPConnection("127.0.0.1", port, timeout=60)

    def request(self, method: str, path: str, body=None) -> tuple[int, bytes]:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        for attempt in (0, 1):
            try:
                self.conn.request(method, path, body=data, headers=headers)
                resp = self.conn.getresponse()
                return resp.status, resp.read()
            except (http_client.HTTPException, ConnectionError):
                self.conn.close()
                self.conn = http_client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def json(self, method: str, path: str, body=None):
        status, raw = self.request(method, path, body)
        assert 200 <= status < 300, (method, path, status, raw[:300])
        return json.loads(raw)

    def stream(self, path: str) -> int:
        """GET path on a new connection (a server may have closed an idle kept-alive one while
        the direct FETCH ran), read in 1 MiB chunks; -> the byte count."""
        conn = http_client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            assert resp.status == 200, (path, resp.status, resp.read(300))
            total = 0
            while chunk := resp.read(1024 * 1024):
                total += len(chunk)
            return total
        finally:
            conn.close()


class System:
    name = ""
    port = 0

    def __init__(self, redis_url: str):
        self.redis_url = redis_url
        self.redis = redis_lib.Redis.from_url(redis_url)

    def connected(self, http: Client) -> int:
        """How many accounts the system reports `connected` (its own /v1/accounts filter)."""
        body = http.json("GET", "/v1/accounts?state=connected&pageSize=1")
        return int(body["total"])


class Peer(System):
    name = "imapapi 1.8.2"

    def __init__(self, redis_url: str, port: int, run_dir: Path):
        super().__init__(redis_url)
        self.port = port
        self.env = {**os.environ, "PEER_REDIS": redis_url, "PEER_PORT": str(port),
                    "PEER_RUN": str(run_dir), "FRESH": "1",
                    "PEER_DIR": os.environ.get("PEER_DIR", "/tmp/peer-imapapi")}

    def start(self) -> None:
        # start.sh gives it 15 s; on a loaded machine its workers take longer to answer /v1/stats
        # (it keeps running when start.sh gives up): wait on for it here.
        subprocess.run(["bash", str(PEER_SCRIPTS / "start.sh")], env=self.env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                status, _ = Client(self.port).request("GET", "/v1/stats")
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"{self.name} did not come up; see {self.env['PEER_RUN']}")

    def stop(self) -> None:
        subprocess.run(["bash", str(PEER_SCRIPTS / "stop.sh")], env=self.env, check=False,
                       stdout=subprocess.DEVNULL)


class Ours(System):
    name = "ours"

    def __init__(self, redis_url: str, log_dir: Path, env: dict):
        super().__init__(redis_url)
        self.log_dir, self.env = log_dir, env
        self.stack: Stack | None = None

    def start(self) -> None:
        self.redis.flushdb()
        self.stack = Stack(self.redis_url, env=self.env, log_dir=self.log_dir)
        self.port = self.stack.port
        self.stack.start()

    def stop(self) -> None:
        if self.stack is not None:
            self.stack.stop()
            self.stack = None


def wait_connected(system: System, http: Client, want: int, timeout: float) -> float:
    """Poll until `want` accounts are connected; -> the monotonic time it happened."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if system.connected(http) >= want:
            return time.monotonic()
        time.sleep(0.1)
    raise AssertionError(f"{system.name}: {system.connected(http)}/{want} connected "
                         f"after {timeout:.0f} s")


def register(system: System, dovecot: Dovecot, indexes, parallel: int = 8) -> None:
    def one(chunk):
        http = Client(system.port)
        for i in chunk:
            http.json("POST", "/v1/account",
                      dovecot.account_payload(f"acct{i:05d}", f"user{i}", f"pw{i}"))
    indexes = list(indexes)
    chunks = [indexes[k::parallel] for k in range(parallel)]
    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(one, chunks))


def prewarm(dovecot: Dovecot, users: int, parallel: int = 8) -> None:
    """Log every benchmark user in once: Dovecot creates a mailbox (Maildir, the auto-created
    folders, the list index) at a user's first login, and that cost must not fall on whichever
    system happens to connect first (the original, which ran first, paid it for both)."""
    def one(chunk):
        for i in chunk:
            conn = dovecot.client(f"user{i}", f"pw{i}")
            conn.list_folders()
            conn.logout()
    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(one, [range(k, users, parallel) for k in range(parallel)]))


def db_bytes(rds) -> tuple[int, int]:
    """(sum of MEMORY USAGE over the DB's keys, key count)."""
    total = count = 0
    batch = []
    for key in rds.scan_iter(count=1000):
        batch.append(key)
        if len(batch) == 500:
            total += _usage(rds, batch)
            count += len(batch)
            batch = []
    if batch:
        total += _usage(rds, batch)
        count += len(batch)
    return total, count


def _usage(rds, batch) -> int:
    pipe = rds.pipeline(transaction=False)
    for key in batch:
        pipe.memory_usage(key, samples=0)
    return sum(v or 0 for v in pipe.execute())


def breakdown(rds, top: int = 12) -> list[tuple[str, int, int]]:
    """[(key shape, keys, bytes)], biggest first: account ids and folder hashes folded."""
    shapes: dict[str, list[int]] = {}
    keys = list(rds.scan_iter(count=1000))
    for start in range(0, len(keys), 500):
        batch = keys[start:start + 500]
        pipe = rds.pipeline(transaction=False)
        for key in batch:
            pipe.memory_usage(key, samples=0)
        for key, size in zip(batch, pipe.execute()):
            shape = re.sub(r"acct\d{5}", "{a}", key.decode(errors="replace"))
            shape = re.sub(r"(:h:)[0-9a-z]+$", r"\1{mk}", shape)
            shape = re.sub(r"[0-9a-f]{16,}", "{id}", shape)
            entry = shapes.setdefault(shape, [0, 0])
            entry[0] += 1
            entry[1] += size or 0
    ordered = sorted(shapes.items(), key=lambda kv: -kv[1][1])[:top]
    return [(shape, n, size) for shape, (n, size) in ordered]


def p50(fn, n: int, warmup: int = 10) -> float:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


# -- phases ---------------------------------------------------------------------------------
class Single:
    """One system's single-message requests (the account `bench` registered and connected)."""

    def __init__(self, system: System, dovecot: Dovecot, samples):
        self.http = http = Client(system.port)
        http.json("POST", "/v1/account", dovecot.account_payload("bench", "bench", "bench-pass"))
        wait_connected(system, http, 1, 60)
        rows = http.json("GET", "/v1/account/bench/messages?path=INBOX&pageSize=10")["messages"]
        by_mid = {m.get("messageId"): m for m in rows}
        self.rich, self.big = by_mid[samples["rich"].message_id], by_mid[samples["big"].message_id]
        self.size = len(samples["big"].raw)

    def details(self):
        status, raw = self.http.request("GET", f"/v1/account/bench/message/{self.rich['id']}")
        assert status == 200, raw[:300]

    def text(self):
        status, raw = self.http.request("GET", f"/v1/account/bench/text/{self.rich['text']['id']}"
                                               "?textType=*")
        assert status == 200 and b"attached report" in raw, raw[:300]

    def listing(self):
        status, raw = self.http.request("GET", "/v1/account/bench/messages?path=INBOX&pageSize=20")
        assert status == 200 and b'"messages"' in raw, raw[:300]

    def source_mbs(self) -> float:
        started = time.perf_counter()
        got = self.http.stream(f"/v1/account/bench/message/{self.big['id']}/source")
        assert got == self.size, (got, self.size)
        return self.size / (time.perf_counter() - started) / 1e6


def direct_mbs(direct, size: int) -> float:
    started = time.perf_counter()
    assert direct() == size
    return size / (time.perf_counter() - started) / 1e6


def phase_single(system: System, dovecot: Dovecot, args, samples, direct) -> dict:
    one = Single(system, dovecot, samples)
    out = {"message_p50": p50(one.details, args.requests), "text_p50": p50(one.text, args.requests),
           "listing_p50": p50(one.listing, args.requests)}
    rates, direct_rates = [], []
    for _ in range(args.runs):
        direct_rates.append(direct_mbs(direct, one.size))
        rates.append(one.source_mbs())
    out["source_mbs"] = statistics.median(rates)
    out["direct_mbs"] = statistics.median(direct_rates)
    out["source_pct"] = out["source_mbs"] / out["direct_mbs"] * 100
    return out


def single_interleaved(peer: System, ours: System, dovecot: Dovecot, args, samples,
                       direct) -> dict:
    """Both systems running at once, request by request in turn (A B A B ..., which one goes
    first alternating), so a load swing of the shared machine hits both alike."""
    both = {peer.name: Single(peer, dovecot, samples), ours.name: Single(ours, dovecot, samples)}
    out = {name: {} for name in both}
    for label, call in (("message_p50", Single.details), ("text_p50", Single.text),
                        ("listing_p50", Single.listing)):
        times = {name: [] for name in both}
        for one in both.values():
            for _ in range(10):
                call(one)
        for i in range(args.requests):
            for name in (list(both) if i % 2 == 0 else list(both)[::-1]):
                started = time.perf_counter()
                call(both[name])
                times[name].append((time.perf_counter() - started) * 1000)
        for name in both:
            out[name][label] = statistics.median(times[name])
    rates = {name: [] for name in both}
    direct_rates = []
    for i in range(args.runs):
        direct_rates.append(direct_mbs(direct, both[ours.name].size))
        for name in (list(both) if i % 2 == 0 else list(both)[::-1]):
            rates[name].append(both[name].source_mbs())
    for name in both:
        out[name]["source_mbs"] = statistics.median(rates[name])
        out[name]["direct_mbs"] = statistics.median(direct_rates)
        out[name]["source_pct"] = out[name]["source_mbs"] / out[name]["direct_mbs"] * 100
    return out


def phase_connect(system: System, dovecot: Dovecot, args) -> dict:
    http = Client(system.port)
    started = time.monotonic()
    register(system, dovecot, range(args.accounts))
    registered = time.monotonic() - started
    done = wait_connected(system, http, args.accounts, args.timeout)
    return {"connect_s": done - started, "register_s": registered}


def phase_memory(system: System, dovecot: Dovecot, args) -> dict:
    http = Client(system.port)
    out = {}
    for lo, hi, tag in ((0, args.memory_from, "lo"), (args.memory_from, args.accounts, "hi")):
        register(system, dovecot, range(lo, hi))
        wait_connected(system, http, hi, args.timeout)
        time.sleep(args.settle)
        out[tag + "_bytes"], out[tag + "_keys"] = db_bytes(system.redis)
        out[tag + "_used"] = system.redis.info("memory")["used_memory"]
    print(f"    {system.name}: Redis keys by shape at {args.accounts} accounts")
    for shape, n, size in breakdown(system.redis):
        print(f"      {shape:<40} {n:>7} keys {size / 1024:>10.1f} KiB")
    out["growth_mib"] = (out["hi_bytes"] - out["lo_bytes"]) / 2**20
    out["used_growth_mib"] = (out["hi_used"] - out["lo_used"]) / 2**20
    n = args.accounts - args.memory_from
    out["per_account_kib"] = (out["hi_bytes"] - out["lo_bytes"]) / n / 1024
    out["keys_per_account"] = (out["hi_keys"] - out["lo_keys"]) / n
    return out


def run_phase(system: System, fn, *extra) -> dict:
    system.start()
    try:
        return fn(system, *extra)
    finally:
        system.stop()


def ratio(ours: float, peer: float) -> str:
    return f"{ours / peer:.2f}x" if peer else "-"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--accounts", type=int, default=1000)
    ap.add_argument("--memory-from", type=int, default=100)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--runs", type=int, default=5, help="source downloads per system")
    ap.add_argument("--attachment-mb", type=int, default=20)
    ap.add_argument("--phases", default="single,connect,memory")
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--settle", type=float, default=5, help="idle seconds before memory is read")
    ap.add_argument("--db", type=int, default=int(os.environ.get("IMAPAPI_TEST_REDIS_DB", "11")))
    ap.add_argument("--peer-db", type=int, default=12)
    ap.add_argument("--peer-port", type=int, default=3100)
    ap.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                    help="extra environment for our stack")
    ap.add_argument("--interleave", action="store_true",
                    help="single phase: both systems at once, requests taking turns")
    args = ap.parse_args()
    phases = [p for p in args.phases.split(",") if p]
    # SIGTERM (timeout, kill) must still stop Dovecot, the original and our stack
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    root = Path(tempfile.mkdtemp(prefix="imapapi-compare-"))
    root.chmod(0o755)
    dovecot = Dovecot(root / "dovecot", many_connections=True)
    env = {"LOG_LEVEL": "warn", "COMMAND_TIMEOUT": "30s"}
    env.update(item.split("=", 1) for item in args.env)
    peer = Peer(f"redis://127.0.0.1:6379/{args.peer_db}", args.peer_port, root / "peer")
    ours = Ours(f"redis://127.0.0.1:6379/{args.db}", root / "logs", env)
    results: dict = {peer.name: {}, ours.name: {}}
    tls_conn = None
    try:
        dovecot.start()
        dovecot.add_user("bench", "bench-pass")
        for i in range(max(args.accounts, args.memory_from)):
            dovecot.add_user(f"user{i}", f"pw{i}")
        if {"connect", "memory"} & set(phases):
            prewarm(dovecot, max(args.accounts, args.memory_from))
        samples = {"rich": corpus.nested_mixed(),
                   "big": corpus.big_attachment(size=args.attachment_mb * 1024 * 1024)}
        conn = dovecot.client("bench", "bench-pass")
        for sample in samples.values():
            conn.append("INBOX", sample.raw)
        conn.logout()
        from imapclient import IMAPClient

        tls_conn = IMAPClient(dovecot.host, port=dovecot.port, ssl=False, timeout=60)
        # imapclient leaves imaplib at debug level 5, which repr()s the whole literal for a
        # logger that drops it: the yardstick is the FETCH itself, as the sidecar now reads
        tls_conn._imap.debug = 0
        tls_conn.starttls(insecure_context())
        tls_conn.login("bench", "bench-pass")
        tls_conn.select_folder("INBOX", readonly=True)
        big_uid = tls_conn.search(["HEADER", "Message-ID", samples["big"].message_id])[0]

        def direct() -> int:
            return len(tls_conn.fetch([big_uid], ["BODY.PEEK[]"])[big_uid][b"BODY[]"])

        for phase in phases:
            if phase == "single" and args.interleave:
                print(f"[{time.strftime('%H:%M:%S')}] single, interleaved: {peer.name} and "
                      f"{ours.name} (load {os.getloadavg()[0]:.1f})", flush=True)
                peer.start()
                ours.start()
                try:
                    got = single_interleaved(peer, ours, dovecot, args, samples, direct)
                finally:
                    peer.stop()
                    ours.stop()
                for system in (peer, ours):
                    print(f"    {system.name}:", {k: round(v, 2) for k, v in got[system.name].items()},
                          flush=True)
                    results[system.name].update(got[system.name])
                continue
            for system in (peer, ours):
                print(f"[{time.strftime('%H:%M:%S')}] {phase}: {system.name} "
                      f"(load {os.getloadavg()[0]:.1f})", flush=True)
                if phase == "single":
                    got = run_phase(system, phase_single, dovecot, args, samples, direct)
                elif phase == "connect":
                    got = run_phase(system, phase_connect, dovecot, args)
                elif phase == "memory":
                    got = run_phase(system, phase_memory, dovecot, args)
                else:
                    raise SystemExit(f"unknown phase {phase}")
                print("   ", {k: round(v, 2) for k, v in got.items()}, flush=True)
                results[system.name].update(got)
        print_table(results, args, peer.name, ours.name)
        shutil.rmtree(root, ignore_errors=True)
        return 0
    except BaseException:
        if ours.stack is not None:
            print(ours.stack.log_tail(lines=30))
        print(f"logs kept in {root}")
        raise
    finally:
        if tls_conn is not None:
            try:
                tls_conn.logout()
            except Exception:
                pass
        peer.stop()
        ours.stop()
        dovecot.stop()


def print_table(results: dict, args, peer: str, ours: str) -> None:
    p, o = results[peer], results[ours]
    rows = []
    if "message_p50" in p:
        rows += [("GET message/{id} p50 (ms)", "message_p50", "{:.2f}"),
                 ("GET text/{id}?textType=* p50 (ms)", "text_p50", "{:.2f}"),
                 ("GET messages?path=INBOX&pageSize=20 p50 (ms)", "listing_p50", "{:.2f}"),
                 (f"source {args.attachment_mb} MB attachment (MB/s)", "source_mbs", "{:.1f}"),
                 ("  direct FETCH BODY.PEEK[] STARTTLS (MB/s)", "direct_mbs", "{:.1f}"),
                 ("  source / direct (%)", "source_pct", "{:.0f}")]
    if "connect_s" in p:
        rows += [(f"{args.accounts} accounts registered -> all connected (s)", "connect_s",
                  "{:.1f}")]
    if "growth_mib" in p:
        span = f"{args.memory_from} -> {args.accounts}"
        rows += [(f"Redis keys' memory growth {span} idle (MiB)", "growth_mib", "{:.2f}"),
                 ("  per idle account (KiB)", "per_account_kib", "{:.2f}"),
                 ("  keys per idle account", "keys_per_account", "{:.2f}"),
                 (f"  INFO used_memory growth {span} (MiB, shared Redis)", "used_growth_mib",
                  "{:.2f}")]
    print(f"\n| figure | {peer} | {ours} | ours / original |\n|---|---|---|---|")
    for label, key, fmt in rows:
        print(f"| {label} | {fmt.format(p[key])} | {fmt.format(o[key])} | "
              f"{ratio(o[key], p[key])} |")
    print(f"\nmachine load average at the end: {os.getloadavg()[0]:.1f} (2 cores, shared)")


if __name__ == "__main__":
    raise SystemExit(main())
