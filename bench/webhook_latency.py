"""Benchmark: APPEND-to-webhook-POST latency (INBOX via IDLE, other folders via NOTIFY) and the
Redis memory of the sync state of a 100,000-message folder.

    .venv/bin/python bench/webhook_latency.py [--count 50] [--db 6] [--messages 100000]

Starts its own Dovecot, the real stack (worker, sidecar, API) on a flushed Redis DB and a local
HTTP receiver; appends with a plain IMAP client one message at a time and measures from just
before APPEND to the receiver getting the messageNew POST; also a non-ASCII folder (its name
pushed as a literal), a flag other than \\Seen set/cleared in an unselected folder (STORE to
messageUpdated) and CREATE-to-mailboxNew, with the STATUS sweep an hour away.
"""
from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis as redis_lib  # noqa: E402
import requests  # noqa: E402

from imapapi import events, keys  # noqa: E402
from sidecar.sync import state  # noqa: E402
from tests.fixtures.dovecot import Dovecot  # noqa: E402
from tests.fixtures.stack import Stack  # noqa: E402
from tests.fixtures.webhooks import Receiver  # noqa: E402


UMLAUT = "&AMQ-rger/&ANw-ber"   # "Ärger/Über" in modified UTF-7


def report(label, lat):
    if lat:
        print(f"{label:18s} n={len(lat):3d}  p50={statistics.median(lat) * 1000:7.1f} ms  "
              f"p95={pct(lat, 95) * 1000:7.1f} ms  max={max(lat) * 1000:7.1f} ms", flush=True)


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def arrival(receiver, name, match, since: float, timeout: float) -> float | None:
    """When the first POST at or after `since` whose JSON body `match`es arrived (None: not
    within `timeout`)."""
    while time.time() < since + timeout:
        hit = [r for r in receiver.received(name) if r["at"] >= since and match(r["json"] or {})]
        if hit:
            return hit[0]["at"]
        time.sleep(0.005)
    return None


def measure(client, receiver, name, folder, count, timeout=30.0):
    out = []
    for i in range(count):
        subject = f"bench {folder} {i} {time.time_ns()}"
        raw = f"From: a@example.com\r\nTo: b@example.com\r\nSubject: {subject}\r\n\r\nbody\r\n"
        t0 = time.time()
        client.append(folder, raw.encode())
        at = arrival(receiver, name, lambda j, s=subject: j.get("data", {}).get("subject") == s,
                     t0, timeout)
        if at is None:
            print(f"  {folder}: message {i} not delivered within {timeout}s", flush=True)
        else:
            out.append(at - t0)
    return out


def measure_flags(client, receiver, name, folder, count, timeout=30.0):
    """STORE of a flag other than \\Seen in a folder the sidecar has not selected, until the
    messageUpdated POST: with CONDSTORE/QRESYNC enabled before NOTIFY, Dovecot pushes a STATUS
    with the new HIGHESTMODSEQ for it (without ENABLE it pushes only \\Seen, as UNSEEN)."""
    subject = f"flags {folder} {time.time_ns()}"
    measure(client, receiver, name, folder, 1)   # a message to flag
    client.append(folder, f"Subject: {subject}\r\n\r\nbody\r\n".encode())
    deadline = time.time() + timeout
    uid = None
    while uid is None and time.time() < deadline:
        uid = next((r["json"]["data"]["uid"] for r in receiver.received(name)
                    if (r["json"] or {}).get("data", {}).get("subject") == subject), None)
        time.sleep(0.01)
    time.sleep(2.0)   # past the follow-up sweep of that push: what follows is the flag's own push
    client.select_folder(folder)
    out = []
    for i in range(count):
        flag, add = ("\\Flagged", "$Label1", "\\Answered")[i % 3], (i // 3) % 2 == 0
        side = "added" if add else "deleted"
        t0 = time.time()
        (client.add_flags if add else client.remove_flags)([uid], [flag])
        at = arrival(receiver, name, lambda j, f=flag, d=side: j.get("event") == "messageUpdated"
                     and f in j["data"]["changes"]["flags"].get(d, []), t0, timeout)
        if at is None:
            print(f"  {folder}: flag change {i} not delivered within {timeout}s", flush=True)
        else:
            out.append(at - t0)
    client.unselect_folder()
    return out


def measure_created(client, receiver, name, count, timeout=30.0):
    """CREATE by another client until the mailboxNew POST (NOTIFY MailboxName -> LIST pass)."""
    out = []
    for i in range(count):
        path = f"Bench{i}x{time.time_ns()}"
        t0 = time.time()
        client.create_folder(path)
        at = arrival(receiver, name, lambda j, p=path: j.get("event") == "mailboxNew"
                     and j.get("path") == p, t0, timeout)
        if at is None:
            print(f"  CREATE {path}: no mailboxNew within {timeout}s", flush=True)
        else:
            out.append(at - t0)
    return out


def idle_floor(dovecot, count: int = 20) -> list[float]:
    """The server's own delay: APPEND by one client until a bare IDLE client hears EXISTS
    (Dovecot coalesces mailbox change notifications for about 0.5 s)."""
    watcher = dovecot.client("bench", "benchpw")
    writer = dovecot.client("bench", "benchpw")
    watcher.select_folder("Trash", readonly=True)
    out = []
    for _ in range(count):
        watcher.idle()
        t0 = time.time()
        writer.append("Trash", b"Subject: floor\r\n\r\nx")
        if watcher.idle_check(5):
            out.append(time.time() - t0)
        watcher.idle_done()
    watcher.logout()
    writer.logout()
    return out


def state_memory(r, messages: int) -> tuple[int, int]:
    """Build a realistic folder state directly and store it the way the engine does."""
    rng = random.Random(7)
    index, uid = {}, 0
    for _ in range(messages):
        uid += rng.choice((1, 1, 1, 2, 5))
        flags = set()
        if rng.random() < 0.85:
            flags.add("\\Seen")
        if rng.random() < 0.04:
            flags.add("\\Flagged")
        if rng.random() < 0.1:
            flags.add("\\Answered")
        if rng.random() < 0.02:
            flags.add("$Label%d" % rng.randint(1, 5))
        index[uid] = frozenset(flags)
    st = state.FolderState(path="Big", uid_validity=1, uid_next=uid + 1, messages=messages,
                           highest_modseq=messages * 2, version=1, index=index)
    r.hset(keys.account("bench-state"), "account", "bench-state")   # commits need the record
    events.append_events(r, "bench-state", [], [state.update_for("bench-state", st, None)])
    key = keys.folder_state("bench-state", "Big")
    return r.memory_usage(key, samples=0), len(state.pack_index(index))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=50)
    ap.add_argument("--db", type=int, default=6)
    ap.add_argument("--messages", type=int, default=100000)
    args = ap.parse_args()
    url = f"redis://127.0.0.1:6379/{args.db}"
    r = redis_lib.Redis.from_url(url)
    r.flushdb()
    tmp = Path(tempfile.mkdtemp(prefix="imapapi-bench-wh-"))
    tmp.chmod(0o755)   # Dovecot's unprivileged processes must enter it
    dovecot = Dovecot(tmp / "dovecot").start()
    # A sweep an hour away: every number below is a push (IDLE or NOTIFY), never the sweep.
    stack = Stack(url, env={"STATUS_SWEEP": "1h"}, log_dir=tmp / "logs")
    receiver = Receiver().start()
    try:
        stack.start()
        dovecot.add_user("bench", "benchpw")
        client = dovecot.client("bench", "benchpw")
        client.folder_encode = False
        client.create_folder("&AMQ-rger")
        client.create_folder(UMLAUT)   # Dovecot pushes its name as a UTF-8 literal
        payload = dovecot.account_payload("bench", "bench", "benchpw",
                                          webhooks=receiver.url("bench"))
        assert requests.post(f"{stack.api_url}/v1/account", json=payload, timeout=10).ok
        stack.wait_state("bench", "connected", timeout=60)
        time.sleep(2.0)     # let the first pass (baseline, NOTIFY SET) finish
        for folder, label in (("INBOX", "INBOX (IDLE)"), ("Archive", "Archive (NOTIFY)"),
                              (UMLAUT, "Ärger/Über NOTIFY")):
            report(label, measure(client, receiver, "bench", folder, args.count))
        report("flag in Archive", measure_flags(client, receiver, "bench", "Archive",
                                                min(args.count, 30)))
        report("CREATE->mailboxNew", measure_created(client, receiver, "bench",
                                                     min(args.count, 20)))
        floor = idle_floor(dovecot)
        print(f"{'server IDLE floor':18s} n={len(floor):3d}  p50={statistics.median(floor) * 1000:7.1f} ms"
              f"  (bare IMAPClient IDLE, no IMAP API involved)", flush=True)
        mem, blob = state_memory(r, args.messages)
        print(f"sync state for {args.messages} messages: Redis MEMORY USAGE {mem / 1024:.1f} KiB "
              f"(index blob {blob / 1024:.1f} KiB)")
    finally:
        receiver.stop()
        stack.stop()
        dovecot.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
