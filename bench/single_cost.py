"""What one single-message read costs (issue 15): Redis commands, IMAP commands, CPU per process.

Starts a Dovecot with rawlog (every command a session sends) and our stack on one Redis DB,
appends the compare bench's multipart message, then runs --requests sequential
GET message/{id} and GET text/{id}?textType=* on a kept-alive connection and divides by the
request count:
  Redis    MONITOR lines of this DB (commands a client sent, and those a Lua script ran),
           net of an idle window as long as the run (heartbeats, lease renewals, BRPOP timeouts)
  IMAP     lines the sidecar's sessions sent (Dovecot rawlog), by command
  CPU      user+system time of each process tree (/proc), net of the idle window

    .venv/bin/python bench/single_cost.py [--requests 300] [--db 29] [--env K=V ...]
"""
from __future__ import annotations

import argparse
import collections
import http.client as http_client
import os
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis as redis_lib  # noqa: E402

from tests.fixtures import corpus  # noqa: E402
from tests.fixtures.dovecot import Dovecot  # noqa: E402
from tests.fixtures.stack import Stack  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
_MONITOR = re.compile(rb'^([0-9.]+) \[(\d+) ([^\]]+)\] "([^"]+)"')


def children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = collections.defaultdict(list)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            tree[ppid].append(int(entry))
    return tree


def tree_cpu(pid: int, tree: dict) -> float:
    """Seconds of user+system CPU of pid and its live descendants (reaped children included)."""
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(x) for x in fields[11:15]) / TICK   # utime stime cutime cstime
        todo.extend(tree.get(p, ()))
    return total


class Monitor:
    """MONITOR on its own connection: per-command counts for one DB while running."""

    def __init__(self, url: str, db: int):
        self.url, self.db = url, str(db).encode()
        self.counts: collections.Counter = collections.Counter()
        self.events: list = []   # (server time, "client"|"lua", command)
        self.on = False
        self.stop = False
        self.conn = redis_lib.Redis.from_url(url).connection_pool.get_connection()
        self.conn.send_command("MONITOR")
        self.conn.read_response()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop:
            try:
                line = self.conn.read_response()
            except Exception:
                return
            if not self.on or not isinstance(line, (bytes, str)):
                continue
            line = line.encode() if isinstance(line, str) else line
            m = _MONITOR.match(line)
            if m and m.group(2) == self.db:
                where = "lua" if m.group(3) == b"lua" else "client"
                cmd = m.group(4).decode().upper()
                self.counts[(where, cmd)] += 1
                self.events.append((float(m.group(1)), where, cmd))

    def window(self, seconds_or_fn):
        time.sleep(0.3)   # let lines of what came before drain
        self.counts = collections.Counter()
        self.events = []
        self.on = True
        if callable(seconds_or_fn):
            seconds_or_fn()
        else:
            time.sleep(seconds_or_fn)
        time.sleep(0.3)
        self.on = False
        return self.counts


SEGMENTS = ("client send -> API publishes (LPUSH)", "LPUSH -> worker's EVAL",
            "EVAL -> sidecar's reply (RPUSH)", "RPUSH -> client has the answer")


def timeline(spans, events) -> dict:
    """Per request: the client's send/done times and the publish, hand-off and reply that
    Redis saw in between -> p50 of each hop in ms."""
    out: dict = {name: [] for name in SEGMENTS}
    # the hand-off and the reply are scripts (EVAL or EVALSHA; the reply's RPUSH runs in Lua)
    mark = {("client", "LPUSH"): "LPUSH", ("client", "EVAL"): "EVAL",
            ("client", "EVALSHA"): "EVAL", ("client", "RPUSH"): "RPUSH", ("lua", "RPUSH"): "RPUSH"}
    events = sorted(events)
    i = 0
    for started, done in spans:
        marks = {}
        while i < len(events) and events[i][0] <= done:
            t, where, cmd = events[i]
            name = mark.get((where, cmd))
            if t >= started and name and name not in marks and (name != "RPUSH" or "EVAL" in marks):
                marks[name] = t
            i += 1
        if len(marks) == 3:
            points = [started, marks["LPUSH"], marks["EVAL"], marks["RPUSH"], done]
            for name, a, b in zip(SEGMENTS, points, points[1:]):
                out[name].append((b - a) * 1000)
    return {name: statistics.median(v) if v else float("nan") for name, v in out.items()}


def rawlog_sizes(root: Path) -> dict:
    return {p: p.stat().st_size for p in (root / "rawlog").glob("*.in")}


def rawlog_commands(root: Path, before: dict) -> collections.Counter:
    out: collections.Counter = collections.Counter()
    for path in (root / "rawlog").glob("*.in"):
        data = path.read_bytes()[before.get(path, 0):]
        for line in data.decode("utf-8", "replace").splitlines():
            parts = line.split(" ", 3)   # "<time> <tag> <command> <args>"
            if len(parts) >= 3:
                word = parts[2].upper()
                if word == "UID" and len(parts) > 3:
                    word += " " + parts[3].split(" ", 1)[0].upper()
                out[word] += 1
            elif line.split(" ")[-1].upper() == "DONE":
                out["DONE"] += 1
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--db", type=int, default=29)
    ap.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args()
    url = f"redis://127.0.0.1:6379/{args.db}"
    root = Path(tempfile.mkdtemp(prefix="imapapi-cost-"))
    root.chmod(0o755)
    dovecot = Dovecot(root / "dovecot", rawlog=True)
    env = {"LOG_LEVEL": "warn", "COMMAND_TIMEOUT": "30s"}
    env.update(item.split("=", 1) for item in args.env)
    redis_lib.Redis.from_url(url).flushdb()
    stack = Stack(url, env=env, log_dir=root / "logs")
    try:
        dovecot.start()
        dovecot.add_user("bench", "bench-pass")
        sample = corpus.nested_mixed()
        dovecot.append("bench", "bench-pass", "INBOX", sample.raw)
        stack.start()
        assert stack.http.post(stack.api_url + "/v1/account", json=dovecot.account_payload(
            "bench", "bench", "bench-pass"), timeout=30).status_code < 300
        stack.wait_state("bench", "connected", timeout=60)
        rows = stack.http.get(stack.api_url + "/v1/account/bench/messages?path=INBOX",
                              timeout=30).json()["messages"]
        rich = rows[0]
        conn = [http_client.HTTPConnection("127.0.0.1", stack.port, timeout=60)]
        spans: list = []

        def get(path):
            started = time.time()
            try:
                conn[0].request("GET", path)
                resp = conn[0].getresponse()
            except (http_client.HTTPException, ConnectionError):
                # Gunicorn closes a kept-alive connection idle for 5 s (the idle windows)
                conn[0].close()
                conn[0] = http_client.HTTPConnection("127.0.0.1", stack.port, timeout=60)
                started = time.time()
                conn[0].request("GET", path)
                resp = conn[0].getresponse()
            body = resp.read()
            assert resp.status == 200, body[:300]
            spans.append((started, time.time()))

        paths = {"message": f"/v1/account/bench/message/{rich['id']}",
                 "text": f"/v1/account/bench/text/{rich['text']['id']}?textType=*"}
        for path in paths.values():
            for _ in range(20):
                get(path)
        monitor = Monitor(url, args.db)
        names = ("api", "worker", "sidecar")
        dovecot_pid = dovecot.proc.pid

        def cpu():
            tree = children()
            out = {n: tree_cpu(stack.procs[n].pid, tree) for n in names}
            out["dovecot"] = tree_cpu(dovecot_pid, tree)
            return out

        results = {}
        for label, path in paths.items():
            spans.clear()
            before_cpu, before_log = cpu(), rawlog_sizes(dovecot.root)
            started = time.perf_counter()
            counts = monitor.window(lambda p=path: [get(p) for _ in range(args.requests)])
            wall = time.perf_counter() - started
            after_cpu = cpu()
            imap = rawlog_commands(dovecot.root, before_log)
            segments = timeline(spans, monitor.events)
            # the same wall time without requests: what the stack does anyway
            idle_before = cpu()
            idle = monitor.window(wall - 0.6)
            idle_after = cpu()
            results[label] = (wall, counts, imap, segments, {
                n: ((after_cpu[n] - before_cpu[n]) - (idle_after[n] - idle_before[n]))
                for n in after_cpu}, idle)
        n = args.requests
        for label, (wall, counts, imap, segments, cpu_used, idle) in results.items():
            print(f"\n== GET {label}: {n} requests, {wall / n * 1000:.2f} ms each "
                  f"(load {os.getloadavg()[0]:.1f})")
            net = collections.Counter(counts)
            net.subtract(idle)
            print("  Redis commands per request (net of idle):")
            for (where, cmd), c in sorted(net.items(), key=lambda kv: (kv[0][0], -kv[1])):
                if abs(c / n) >= 0.05:
                    print(f"    {where:<6} {cmd:<10} {c / n:6.2f}")
            client = sum(c for (w, _), c in net.items() if w == "client")
            print(f"    client total {client / n:.2f} round trips per request")
            print("  IMAP commands per request (rawlog):")
            for cmd, c in imap.most_common():
                print(f"    {cmd:<14} {c / n:6.2f}")
            print("  wall ms p50 per hop (Redis MONITOR server times; MONITOR slows Redis):")
            for name, ms in segments.items():
                print(f"    {name:<34} {ms:6.2f}")
            print("  CPU ms per request (net of idle):")
            for name, sec in cpu_used.items():
                print(f"    {name:<8} {sec / n * 1000:6.2f}")
        monitor.stop = True
    finally:
        stack.stop()
        dovecot.stop()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
