"""Benchmark (issue 15): where one account's connect spends its time, N accounts, one sidecar.

Runs the sidecar's Supervisor in this process (no API, no worker) against one Dovecot raised as
bench/scale.py raises it, with timing wrappers around each step of a connect: the ramp queue,
the record read, the login gate, TCP + greeting, CAPABILITY, STARTTLS, LOGIN, ENABLE, the first
sync (LIST-STATUS, Redis reads, SELECT + FETCH per folder, commits, NOTIFY), the state writes
and IDLE. Prints per step: calls, wall and thread-CPU per call (p50 / mean), the total per
account, and when the accounts reached `connected` (from the supervisor's first lease round).

    .venv/bin/python bench/connect_steps.py [--n 2000] [--db 54] [--cold] [--env K=V ...]
        [--restart]   (then a second start with the sync state in place, timed the same way)
        [--imap-prefork 64]   (Dovecot's spare imap processes, as bench/scale.py)

CONNECT_STEPS_PYSPY=/tmp/prof records a py-spy profile of each start (/tmp/prof-<start>.txt).
Wall minus CPU of a step is waiting: the IMAP server, Redis, or other threads holding the GIL.
"""
from __future__ import annotations

import argparse
import functools
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import redis as redis_lib  # noqa: E402

STATS: dict[str, list] = defaultdict(list)   # label -> [(wall, cpu), ...]
LABELS: list[str] = []   # in the order the steps were wrapped (the table's order)
_lock = threading.Lock()


def wrap(owner, name: str, label: str | None = None) -> None:
    fn = getattr(owner, name)
    label = label or f"{getattr(owner, '__name__', owner)}.{name}"
    LABELS.append(label)

    @functools.wraps(fn)
    def timed(*args, **kwargs):
        t0, c0 = time.perf_counter(), time.thread_time()
        try:
            return fn(*args, **kwargs)
        finally:
            item = (time.perf_counter() - t0, time.thread_time() - c0)
            with _lock:
                STATS[label].append(item)
    setattr(owner, name, timed)


def install() -> dict:
    """Wrap the steps; -> per-account timestamps {account: {"queued", "started", "connected"}}."""
    from imapclient import IMAPClient

    from imapapi import accounts, events, leases
    from sidecar import account as account_mod
    from sidecar import loginrate, supervisor
    from sidecar.sync import engine, folder, imapio, notify, state

    marks: dict[str, dict] = defaultdict(dict)
    start, job, move = (account_mod.Account.start, account_mod.Account._connect_job,
                        account_mod.Account._move)

    def start_marked(self):
        marks[self.id].setdefault("queued", time.perf_counter())
        return start(self)

    def job_marked(self):
        marks[self.id]["started"] = time.perf_counter()
        return job(self)

    def move_marked(self, event, error=None):
        out = move(self, event, error)
        if event == "ok":
            marks[self.id]["connected"] = time.perf_counter()
        return out
    account_mod.Account.start = start_marked
    account_mod.Account._connect_job = job_marked
    account_mod.Account._move = move_marked
    from redis.connection import AbstractConnection
    wrap(AbstractConnection, "send_packed_command", "Redis round trips (all threads)")
    wrap(supervisor, "get_record", "supervisor: get_record (lease round)")
    wrap(account_mod.Account, "_connect_job", "0 ramp job (all of it)")
    wrap(accounts, "get_record", "  get_record")
    wrap(loginrate.LoginGate, "wait", "  login gate")
    wrap(account_mod, "connect", "1 connect()")
    wrap(IMAPClient, "__init__", "  TCP + greeting")
    wrap(IMAPClient, "capabilities", "  CAPABILITY")
    wrap(IMAPClient, "starttls", "  STARTTLS")
    wrap(IMAPClient, "login", "  LOGIN")
    wrap(engine.SyncEngine, "on_connected", "2 on_connected (first sync)")
    wrap(IMAPClient, "enable", "  ENABLE")
    wrap(events, "emit_account_event", "  authenticationSuccess event")
    wrap(engine.SyncEngine, "_pass", "  _pass (also later sweeps)")
    wrap(imapio, "list_folders", "    LIST-STATUS")
    wrap(state, "load_account", "    load_account")
    wrap(state, "load_statuses", "    load_statuses")
    wrap(engine.webhook_settings, "get_all", "    webhook settings")
    wrap(folder.FolderSync, "sync", "    folder sync")
    wrap(imapio, "select", "      SELECT")
    wrap(state, "load_cached", "      state.load_cached")
    wrap(folder.FolderSync, "commit", "    commit")
    wrap(notify.Watch, "start", "    NOTIFY")
    wrap(account_mod.Account, "_move", "4 state write (_move)")
    wrap(leases, "set_state", "  leases.set_state (fenced)")
    wrap(account_mod.Account, "_arm", "5 IDLE (_arm)")
    return marks


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def run_once(n: int, url: str, env: dict, marks: dict, label: str, dovecot) -> dict:
    import scale

    from imapapi import settings as settings_mod
    from sidecar.supervisor import Supervisor

    os.environ.update(env)
    settings = settings_mod.configure(settings_mod.load_settings([]))
    STATS.clear()
    marks.clear()
    sup = Supervisor(settings, settings_mod.get_redis())
    t0 = time.perf_counter()
    load0 = os.getloadavg()[0]
    spy = None
    if os.environ.get("CONNECT_STEPS_PYSPY"):   # a py-spy profile of this start (raw format)
        spy = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "-r", "250",
                                "-f", "raw", "--nonblocking", "-o",
                                f"{os.environ['CONNECT_STEPS_PYSPY']}-{label}.txt",
                                "-p", str(os.getpid())], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    dove0, busy0 = scale.dovecot_cpu_seconds(dovecot), scale.machine_busy_seconds()
    thread = threading.Thread(target=sup.run, name="supervisor", daemon=True)
    thread.start()
    cpu0 = time.process_time()
    backlog = []
    while time.perf_counter() - t0 < 900:
        done = sum(1 for m in list(marks.values()) if "connected" in m)
        backlog.append((time.perf_counter() - t0, done, sup.runtime.ramp.pending()))
        if done >= n:
            break
        time.sleep(0.25)
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    dove = scale.dovecot_cpu_seconds(dovecot) - dove0
    busy = scale.machine_busy_seconds() - busy0
    if spy is not None:
        spy.send_signal(signal.SIGINT)
        spy.wait(30)
    sup.stop()
    sup.stop()
    thread.join(30)
    firsts = [m["queued"] for m in marks.values() if "queued" in m]
    first = min(firsts) if firsts else t0
    conn = sorted(m["connected"] - first for m in marks.values() if "connected" in m)
    queue = [m["started"] - m["queued"] for m in marks.values() if "started" in m]
    print(f"\n== {label}: {n} accounts, load {load0:.1f} -> {os.getloadavg()[0]:.1f}")
    print(f"  supervisor start -> first account queued {first - t0:.2f} s; "
          f"first queued -> all connected {conn[-1] if conn else float('nan'):.2f} s "
          f"({len(conn) / max(1e-9, conn[-1] if conn else 1):.1f}/s); "
          f"sidecar CPU {cpu:.1f} s = {cpu / max(1, len(conn)) * 1000:.1f} ms/account, "
          f"Dovecot {dove:.1f} s = {dove / max(1, len(conn)) * 1000:.1f} ms/account, "
          f"machine (all processes) {busy:.1f} s = {busy / max(1, len(conn)) * 1000:.1f} ms/account",
          flush=True)
    print("  connected at 25/50/90/100 %: " + " / ".join(
        f"{pct(conn, q):.2f}" for q in (0.25, 0.5, 0.9, 1.0)) + " s")
    print(f"  ramp queue wait p50 / p90 / max: {pct(queue, 0.5):.2f} / {pct(queue, 0.9):.2f} / "
          f"{max(queue) if queue else float('nan'):.2f} s")
    print(f"  {'step':36} {'calls':>6} {'/acct':>5} {'wall p50':>9} {'wall mean':>9} "
          f"{'cpu mean':>9} {'ms/acct wall':>12} {'ms/acct cpu':>11}")
    for name in [label for label in LABELS if STATS.get(label)]:
        items = STATS[name]
        walls = [w for w, _ in items]
        cpus = [c for _, c in items]
        print(f"  {name:36} {len(items):6d} {len(items) / max(1, len(conn)):5.1f} "
              f"{statistics.median(walls) * 1000:8.2f}m "
              f"{statistics.fmean(walls) * 1000:8.2f}m {statistics.fmean(cpus) * 1000:8.2f}m "
              f"{sum(walls) / max(1, len(conn)) * 1000:12.2f} {sum(cpus) / max(1, len(conn)) * 1000:11.2f}")
    return {"elapsed": elapsed, "connected": len(conn)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--db", type=int, default=54)
    ap.add_argument("--cold", action="store_true", help="no prewarm: first logins create mailboxes")
    ap.add_argument("--restart", action="store_true", help="time a second start as well")
    ap.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--imap-prefork", type=int, default=64,
                    help="Dovecot's spare imap processes, as bench/scale.py (0: none)")
    args = ap.parse_args()
    import scale

    from imapapi import accounts

    scale.raise_limits(args.n)
    root = Path(tempfile.mkdtemp(prefix="imapapi-steps-"))
    root.chmod(0o755)
    from imapapi import crypto
    crypto.load_keyring(state_dir=str(root / "state"), generate=True)
    url = f"redis://127.0.0.1:6379/{args.db}"
    env = {"REDIS_URL": url, "LOG_LEVEL": "warn", "COMMAND_TIMEOUT": "30s", "IMAPAPI_DOTENV": "0",
           "KEY_FILE": str(root / "state" / "secret.key")}
    env.update(item.split("=", 1) for item in args.env)
    os.environ.update(env)   # the records are sealed with the same key the sidecar opens them with
    dovecot = scale.big_dovecot(root / "dovecot", args.n, args.imap_prefork)
    marks = install()
    from sidecar.main import setup_logging
    setup_logging("WARNING")
    try:
        dovecot.start()
        dovecot.cpu_group = scale.CpuGroup.create("dovecot", dovecot.proc.pid)
        for i in range(args.n):
            dovecot.add_user(f"user{i}", f"pw{i}")
        if not args.cold:
            t0 = time.time()
            scale.prewarm(dovecot, args.n)
            print(f"prewarm: {args.n} first logins in {time.time() - t0:.1f} s", flush=True)
        r = redis_lib.Redis.from_url(url)
        r.flushdb()
        for i in range(args.n):
            accounts.upsert(r, dovecot.account_payload(f"acct{i:05d}", f"user{i}", f"pw{i}"))
        run_once(args.n, url, env, marks, "first start", dovecot)
        if args.restart:
            scale.settle_children(dovecot.proc.pid)   # the first start's sessions gone first
            run_once(args.n, url, env, marks, "restart", dovecot)
        r.flushdb()
    finally:
        dovecot.stop()
        if getattr(dovecot, "cpu_group", None):
            dovecot.cpu_group.remove()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
