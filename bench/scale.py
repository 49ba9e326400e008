"""Benchmark (issue 15): 10,000 idle accounts in one sidecar against 100, in the same run.

For each size (--sizes, default 100,10000), on a flushed Redis DB and one Dovecot raised for that
many sessions (login processes shared, process/client/anvil limits, inotify instances and
watches for IDLE): the account records are written first, then the real stack (worker, sidecar,
API) starts and is timed until every account is `connected` (the per-state counters), then:
  sidecar RSS and threads after 5 s (+ --settle) idle, sidecar CPU % over the next --idle-seconds
  INBOX webhook latency: APPEND by another client -> messageNew POST at a local receiver, for
  --samples accounts that have a webhook URL (every other account has none)
  API listing p50 (GET messages, pageSize 20, kept-alive client) of one account with the same
  20 messages at every size

    .venv/bin/python bench/scale.py [--sizes 100,10000] [--db 11] [--samples 20] [--settle 30]
        [--env IMAP_LOGIN_RATE=250 ...] [--cold] [--restart] [--imap-prefork 64]

What "all connected" measures: from the stack's start (processes, imports, the sidecar's 2 s
join settle) until every account's state is `connected`, each one logged in, its first sync
done (LIST-STATUS, SELECT INBOX, commits) and in IDLE. Every user has logged in once before
(prewarm: Dovecot creates a mailbox at a user's first login, which a sidecar (re)start does not
pay; --cold skips it). --restart times a second start too: the stack stopped, every account's
stored state set to `disconnected`, the stack started again with the accounts' sync state in
Redis (EmailEngine's set-up delay at start-up is this case).

Dovecot's master starts an imap process per session, one at a time: with no spare process it
forks one for the pending post-login hand-off and stops accepting more until that one is up
(src/master/service-monitor.c, service_accept), so logins queue behind process start-ups (23 a
second here, whatever the client's concurrency). --imap-prefork N (`service imap {
process_min_avail = N }`) keeps N spares, forked up to 10 at a time; 0 is the old configuration.

Needs root for the inotify sysctls (one IDLE session = one inotify instance, all sessions run
as one user) and about 5 GB of memory on Dovecot's side for 10,000 sessions.
"""
from __future__ import annotations

import argparse
import http.client as http_client
import json
import os
import resource
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

from bench.cpugroup import (CpuGroup, descendants, machine_busy_seconds,  # noqa: E402
                            proc_table, stat_fields)
from imapapi import accounts, keys  # noqa: E402
from tests.fixtures import dovecot as dovecot_mod  # noqa: E402
from tests.fixtures.dovecot import Dovecot  # noqa: E402
from tests.fixtures.stack import Stack  # noqa: E402
from tests.fixtures.webhooks import Receiver  # noqa: E402


def big_dovecot(root: Path, sessions: int, prefork: int = 0) -> Dovecot:
    """The fixture's many-connections Dovecot with its limits raised for `sessions`; `prefork`
    spare imap processes (see the module docstring)."""
    procs = sessions + 500
    # Every TLS session stays proxied through an imap-login process: two from the start (one
    # per core) share the handshakes and logins instead of one doing them all.
    dovecot_mod.MANY_LOGIN = ("  service_count = 0\n  client_limit = 2000\n  process_limit = 64\n"
                              "  process_min_avail = 2\n")
    spare = f"  process_min_avail = {prefork}\n" if prefork else ""
    dovecot_mod.MANY_LIMITS = (f"service imap {{\n  process_limit = {procs}\n{spare}}}\n"
                               f"default_client_limit = {2 * procs}\n"
                               f"default_process_limit = {procs}\n")
    dovecot_mod.CONFIG = dovecot_mod.CONFIG.replace(
        "{anvil_limits}", f"  client_limit = {2 * procs + 1000}")
    return Dovecot(root, many_connections=True)


def raise_limits(sessions: int) -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    want = hard if hard != resource.RLIM_INFINITY else 65536
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))   # inherited by the stack
    for name, value in (("fs.inotify.max_user_instances", 2 * sessions + 1024),
                        ("fs.inotify.max_user_watches", 64 * sessions + 200000)):
        current = int(Path("/proc/sys/" + name.replace(".", "/")).read_text())
        if current < value:
            subprocess.run(["sysctl", "-q", "-w", f"{name}={value}"], check=True)


def proc_mb(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    fields = stat_fields(f"/proc/{pid}/stat")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(root: int) -> float:
    """CPU of a process tree: `root` with its reaped children, plus every live descendant (Dovecot:
    the master, imap-login, auth and one imap process per session)."""
    table = proc_table()
    total = 0
    for pid in descendants(root, table):
        fields = table.get(pid)
        if fields is None:
            continue
        total += int(fields[11]) + int(fields[12])
        if pid == root:
            total += int(fields[13]) + int(fields[14])   # reaped children
    return total / os.sysconf("SC_CLK_TCK")


def dovecot_cpu_seconds(dovecot) -> float:
    """Exact through its cgroup (exited processes and their kernel work included) when this
    machine allows one, else the live tree's sum (undercounts Dovecot by about half)."""
    group = getattr(dovecot, "cpu_group", None)
    return group.seconds() if group else tree_cpu_seconds(dovecot.proc.pid)


def prewarm(dovecot, users: int, parallel: int = 16) -> None:
    """Log every user in once (plain LOGIN, LIST, SELECT INBOX): Dovecot creates the mailbox
    (Maildir, auto-created folders, indexes) at a user's first login, which a sidecar's
    (re)start with existing accounts does not pay."""
    def one(chunk):
        for i in chunk:
            conn = dovecot.client(f"user{i}", f"pw{i}")
            conn.list_folders()
            conn.select_folder("INBOX", readonly=True)
            conn.logout()
    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(one, [range(k, users, parallel) for k in range(parallel)]))


def count_connected(r, n: int) -> int:
    pipe = r.pipeline(transaction=False)
    for i in range(n):
        pipe.hget(keys.account(f"acct{i:05d}"), "state")
    return sum(1 for state in pipe.execute() if state == b"connected")


def webhook_latency(dovecot, receiver, samples: list[int], timeout: float = 30) -> list[float]:
    out = []
    for i in samples:
        client = dovecot.client(f"user{i}", f"pw{i}")
        subject = f"scale {i} {time.time_ns()}"
        t0 = time.time()
        client.append("INBOX", f"From: a@example.com\r\nSubject: {subject}\r\n\r\nx\r\n".encode())
        client.logout()
        deadline = t0 + timeout
        while time.time() < deadline:
            hit = [r for r in receiver.received(f"acct{i:05d}")
                   if (r["json"] or {}).get("data", {}).get("subject") == subject]
            if hit:
                out.append(hit[0]["at"] - t0)
                break
            time.sleep(0.005)
        else:
            print(f"  acct{i:05d}: no messageNew within {timeout:.0f} s", flush=True)
    return out


LISTED = 1          # user1 / acct00001: never a webhook sample at any size (those are multiples of
LISTED_MESSAGES = 20   # size // samples), so every size lists the same 20 messages


def seed_listed(dovecot) -> None:
    """The listed account's INBOX: exactly LISTED_MESSAGES messages, a full first page. The
    listing used to read a webhook sample's INBOX, which held one message more at 10,000
    than at 100 (each size's webhook test appends one) and none before that test."""
    client = dovecot.client(f"user{LISTED}", f"pw{LISTED}")
    try:
        client.select_folder("INBOX")
        old = client.search("ALL")
        if old:
            client.delete_messages(old)
            client.expunge()
        for k in range(LISTED_MESSAGES):
            client.append("INBOX", (f"From: a{k}@example.com\r\nTo: b@example.com\r\n"
                                    f"Subject: listed {k}\r\n\r\nbody {k}\r\n").encode())
    finally:
        client.logout()


def listing_p50(port: int, account: str, n: int) -> float:
    conn = http_client.HTTPConnection("127.0.0.1", port, timeout=30)
    path = f"/v1/account/{account}/messages?path=INBOX&pageSize=20"
    samples = []
    for k in range(n + 10):
        t0 = time.perf_counter()
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
        assert resp.status == 200, body[:300]
        if k >= 10:
            samples.append((time.perf_counter() - t0) * 1000)
    conn.close()
    return statistics.median(samples)


def time_connect(n: int, stack: Stack, dovecot, r, timeout: float) -> dict:
    """Start the stack and wait until all `n` accounts are connected (the stack keeps running)."""
    load0 = os.getloadavg()[0]
    dovecot_cpu0, busy0 = dovecot_cpu_seconds(dovecot), machine_busy_seconds()
    t0 = time.time()
    stack.start()
    sidecar = stack.procs["sidecar"].pid
    peak, connected, elapsed = 0.0, 0, None
    while time.time() - t0 < timeout:
        peak = max(peak, proc_mb(sidecar))
        connected = count_connected(r, n)
        if connected >= n:
            elapsed = time.time() - t0
            break
        time.sleep(0.5)
    if elapsed is None:
        print(f"  NOT all connected after {timeout:.0f} s: {connected}/{n}", flush=True)
        elapsed = float("nan")
    connect_cpu = cpu_seconds(sidecar)
    dovecot_cpu = dovecot_cpu_seconds(dovecot) - dovecot_cpu0
    busy = machine_busy_seconds() - busy0
    return {"connect_s": elapsed, "connect_cpu_s": connect_cpu,
            "connect_rate": connected / (time.time() - t0 if elapsed != elapsed else elapsed),
            "sidecar_ms_per_account": connect_cpu / max(1, connected) * 1000,
            "dovecot_connect_cpu_s": dovecot_cpu,
            "dovecot_ms_per_account": dovecot_cpu / max(1, connected) * 1000,
            "machine_ms_per_account": busy / max(1, connected) * 1000,
            "peak": peak, "load_start": load0}


def settle_children(pid: int, timeout: float = 120) -> None:
    """Wait until the old sessions' imap processes are gone: one reaped while its CPU is read
    counts twice (live, then in the master's reaped total), and 10,000 of them exiting made the
    restart's Dovecot CPU come out negative."""
    last, since, deadline = -1, time.time(), time.time() + timeout
    while time.time() < deadline:
        count = sum(1 for entry in os.listdir("/proc") if entry.isdigit()
                    and _ppid(entry) == pid)
        if count != last:
            last, since = count, time.time()
        elif time.time() - since >= 2:
            return
        time.sleep(0.5)


def _ppid(entry: str) -> int:
    try:
        return int(stat_fields(f"/proc/{entry}/stat")[1])
    except (OSError, IndexError, ValueError):
        return -1


def restart(n: int, url: str, dovecot, root: Path, env: dict, r, timeout: float) -> dict:
    """The second start: every stored state set to `disconnected` (a stopped sidecar leaves
    them `connected`), then the stack again, timed like the first."""
    pipe = r.pipeline(transaction=False)
    for i in range(n):
        accounts.set_state(pipe, f"acct{i:05d}", "disconnected")
    pipe.execute()
    settle_children(dovecot.proc.pid)
    stack = Stack(url, env=env, log_dir=root / f"logs-{n}-restart")
    try:
        got = time_connect(n, stack, dovecot, r, timeout)
    finally:
        stack.stop()
    return {f"restart_{k}": v for k, v in got.items() if k not in ("peak", "load_start")}


def run_size(n: int, dovecot, url: str, root: Path, args, receiver) -> dict:
    r = redis_lib.Redis.from_url(url)
    r.flushdb()
    samples = list(range(0, n, max(1, n // args.samples)))[:args.samples]
    hooked = set(samples)
    t0 = time.time()
    for i in range(n):
        payload = dovecot.account_payload(f"acct{i:05d}", f"user{i}", f"pw{i}")
        if i in hooked:
            payload["webhooks"] = receiver.url(f"acct{i:05d}")
        accounts.upsert(r, payload)
    print(f"  {n} account records written in {time.time() - t0:.1f} s", flush=True)
    env = {"LOG_LEVEL": "warn", "COMMAND_TIMEOUT": "30s"}
    env.update(item.split("=", 1) for item in args.env)
    stack = Stack(url, env=env, log_dir=root / f"logs-{n}")
    try:
        got = time_connect(n, stack, dovecot, r, args.timeout)
        print(f"  all connected in {got['connect_s']:.1f} s", flush=True)
        sidecar = stack.procs["sidecar"].pid
        peak = got.pop("peak")
        time.sleep(5 + args.settle)
        rss = proc_mb(sidecar)
        threads = len(os.listdir(f"/proc/{sidecar}/task"))
        c0 = cpu_seconds(sidecar)
        time.sleep(args.idle_seconds)
        idle_cpu = (cpu_seconds(sidecar) - c0) / args.idle_seconds * 100
        lat = webhook_latency(dovecot, receiver, samples)
        listing = listing_p50(stack.port, f"acct{LISTED:05d}", args.requests)
        got.update({"accounts": n,
                    "rss_mb": rss, "peak_rss_mb": max(peak, proc_mb(sidecar, "VmHWM")),
                    "threads": threads, "idle_cpu_pct": idle_cpu,
                    "webhook_p50_ms": statistics.median(lat) * 1000 if lat else float("nan"),
                    "webhook_max_ms": max(lat) * 1000 if lat else float("nan"),
                    "webhooks": len(lat), "listing_p50_ms": listing,
                    "redis_mib": sum(r.memory_usage(k, samples=0) or 0
                                     for k in r.scan_iter(count=2000)) / 2**20,
                    "load_end": os.getloadavg()[0]})
    finally:
        stack.stop()
    if args.restart:
        got.update(restart(n, url, dovecot, root, env, r, args.timeout))
        print(f"  restart: all connected in {got['restart_connect_s']:.1f} s", flush=True)
    return got


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100,10000")
    ap.add_argument("--db", type=int, default=int(os.environ.get("IMAPAPI_TEST_REDIS_DB", "11")))
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument("--requests", type=int, default=100)
    ap.add_argument("--idle-seconds", type=float, default=10)
    ap.add_argument("--settle", type=float, default=0,
                    help="more seconds to wait after all connected before measuring RSS and idle "
                         "CPU (the sidecar freezes its objects for the GC ~20 s after its ramp)")
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                    help="extra environment for the stack, e.g. IMAP_LOGIN_RATE=250")
    ap.add_argument("--cold", action="store_true",
                    help="no prewarm: the timed start pays Dovecot's mailbox creation")
    ap.add_argument("--restart", action="store_true",
                    help="also time a second start (accounts and their sync state exist)")
    ap.add_argument("--imap-prefork", type=int, default=64, metavar="N",
                    help="Dovecot's spare imap processes (process_min_avail); 0: none")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    raise_limits(max(sizes))
    root = Path(tempfile.mkdtemp(prefix="imapapi-scale-"))
    root.chmod(0o755)
    if not os.environ.get("KEY_FILE") and not os.environ.get("ENCRYPTION_KEY"):
        # one key for this process (it writes the records) and the stack (inherits the env)
        from imapapi import crypto
        crypto.load_keyring(state_dir=str(root / "state"), generate=True)
        os.environ["KEY_FILE"] = str(root / "state" / "secret.key")
    dovecot = big_dovecot(root / "dovecot", max(sizes), args.imap_prefork)
    receiver = Receiver().start()
    results = []
    try:
        dovecot.start()
        dovecot.cpu_group = CpuGroup.create("dovecot", dovecot.proc.pid)
        print("Dovecot CPU: " + ("its cgroup (exact)" if dovecot.cpu_group else
                                 "its live process tree (no writable cgroup)"), flush=True)
        for i in range(max(sizes)):
            dovecot.add_user(f"user{i}", f"pw{i}")
        if not args.cold:
            t0 = time.time()
            prewarm(dovecot, max(sizes))
            print(f"prewarm: {max(sizes)} first logins in {time.time() - t0:.1f} s", flush=True)
        seed_listed(dovecot)
        for n in sizes:
            print(f"[{time.strftime('%H:%M:%S')}] {n} accounts (load {os.getloadavg()[0]:.1f})",
                  flush=True)
            got = run_size(n, dovecot, f"redis://127.0.0.1:6379/{args.db}", root, args, receiver)
            print("   ", json.dumps({k: round(v, 2) for k, v in got.items()}), flush=True)
            results.append(got)
    finally:
        receiver.stop()
        dovecot.stop()
        if getattr(dovecot, "cpu_group", None):
            dovecot.cpu_group.remove()
    rows = [("all connected (s, target <= 60 at 10,000)", "connect_s", "{:.1f}"),
            ("accounts connected per second", "connect_rate", "{:.1f}"),
            ("sidecar CPU during connect (s)", "connect_cpu_s", "{:.1f}"),
            ("  per account (ms)", "sidecar_ms_per_account", "{:.1f}"),
            ("Dovecot CPU during connect (s, all its processes)", "dovecot_connect_cpu_s", "{:.1f}"),
            ("  per account (ms)", "dovecot_ms_per_account", "{:.1f}"),
            ("machine CPU during connect per account (ms, all processes, both cores)",
             "machine_ms_per_account", "{:.1f}"),
            ("sidecar RSS idle (MiB, target <= 800)", "rss_mb", "{:.0f}"),
            ("sidecar peak RSS (MiB)", "peak_rss_mb", "{:.0f}"),
            ("sidecar threads", "threads", "{:d}"),
            ("sidecar CPU idle (% of one core, target <= 5)", "idle_cpu_pct", "{:.1f}"),
            ("INBOX webhook latency p50 (ms)", "webhook_p50_ms", "{:.0f}"),
            ("INBOX webhook latency max (ms)", "webhook_max_ms", "{:.0f}"),
            ("API listing p50 (ms)", "listing_p50_ms", "{:.1f}"),
            ("Redis keys' memory (MiB)", "redis_mib", "{:.1f}"),
            ("load average start / end", None, None)]
    if args.restart:
        rows[2:2] = [("restart: all connected (s)", "restart_connect_s", "{:.1f}"),
                     ("restart: sidecar / Dovecot / machine CPU per account (ms)", None, "restart")]
    print("\n| figure | " + " | ".join(f"{r['accounts']} accounts" for r in results) +
          " |\n|---|" + "---|" * len(results))
    for label, key, fmt in rows:
        if fmt == "restart":
            cells = [f"{r['restart_sidecar_ms_per_account']:.1f} / "
                     f"{r['restart_dovecot_ms_per_account']:.1f} / "
                     f"{r['restart_machine_ms_per_account']:.1f}" for r in results]
        elif key is None:
            cells = [f"{r['load_start']:.1f} / {r['load_end']:.1f}" for r in results]
        else:
            cells = [fmt.format(r[key]) for r in results]
        print(f"| {label} | " + " | ".join(cells) + " |")
    shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
