"""Benchmark (issue 3): source download MB/s through the API vs direct FETCH; details/text p50.

Runs a real Dovecot and the real stack (worker, sidecar, API) like the integration tests.
  source   GET .../message/{id}/source of a ~50 MB message, streamed, vs one imapclient
           FETCH BODY.PEEK[] on an open STARTTLS connection like the sidecar's (target: API
           >= 90 % of direct MB/s; a plaintext direct FETCH is shown too), downloads interleaved;
           also the sidecar's and the API workers' RSS before and peak (VmHWM) after them
  details  GET .../message/{id} vs SELECT + the same UID FETCH (BODYSTRUCTURE, ENVELOPE, header)
  text     GET .../text/{id} vs SELECT + FETCH of the text parts, decoded

    .venv/bin/python bench/messages_bench.py [--requests 200] [--size-mb 50] [--redis-db 12]
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis as redis_lib  # noqa: E402
import requests  # noqa: E402

from tests.fixtures import corpus  # noqa: E402
from tests.fixtures.dovecot import Dovecot  # noqa: E402
from tests.fixtures.stack import Stack  # noqa: E402


def proc_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def timed(fn, n: int, warmup: int = 5) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(n):
        started = time.perf_counter()
        fn()
        out.append((time.perf_counter() - started) * 1000)
    return out


def report(name: str, samples: list[float]) -> float:
    ordered = sorted(samples)
    p50 = statistics.median(samples)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    print(f"  {name:<22} p50 {p50:7.2f} ms   p95 {p95:7.2f} ms   max {max(samples):7.2f} ms")
    return p50


def throughputs(fns: dict, size: int, runs: int) -> dict:
    """MB/s of each download function, runs interleaved so machine load hits all alike."""
    rates: dict = {name: [] for name in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            started = time.perf_counter()
            got = fn()
            elapsed = time.perf_counter() - started
            assert got == size, (name, got, size)
            rates[name].append(size / elapsed / 1e6)
    for name, values in rates.items():
        print(f"  {name:<22} median {statistics.median(values):7.1f} MB/s   "
              f"best {max(values):7.1f} MB/s   ({runs} runs)")
    return {name: statistics.median(values) for name, values in rates.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--size-mb", type=int, default=50, help="size of the source message")
    parser.add_argument("--runs", type=int, default=5, help="downloads per source measurement")
    parser.add_argument("--redis-db", type=int,
                        default=int(os.environ.get("IMAPAPI_TEST_REDIS_DB", "12")))
    args = parser.parse_args()

    redis_url = f"redis://127.0.0.1:6379/{args.redis_db}"
    redis_lib.Redis.from_url(redis_url).flushdb()
    root = Path(tempfile.mkdtemp(prefix="imapapi-bench-"))
    root.chmod(0o755)   # Dovecot's unprivileged processes must enter it
    dovecot = Dovecot(root / "dovecot")
    stack = Stack(redis_url, env={"LOG_LEVEL": "warn", "COMMAND_TIMEOUT": "30s"},
                  log_dir=root / "logs")
    try:
        dovecot.start()
        user, password = "bench", "bench-pass"
        dovecot.add_user(user, password)
        # base64 grows the attachment by 4/3: pick the binary size that gives ~size-mb in total
        big = corpus.big_attachment(size=args.size_mb * 1024 * 1024 * 3 // 4)
        rich = corpus.nested_mixed()
        conn = dovecot.client(user, password)
        for sample in (big, rich):
            conn.append("INBOX", sample.raw)
        conn.logout()

        stack.start()
        http = requests.Session()
        http.post(stack.api_url + "/v1/account",
                  json=dovecot.account_payload("bench", user, password), timeout=10).raise_for_status()
        stack.wait_state("bench", "connected", timeout=60)
        base = f"{stack.api_url}/v1/account/bench"
        listing = {m["messageId"]: m for m in
                   http.get(base + "/messages", params={"path": "INBOX"}, timeout=30).json()["messages"]}
        big_entry, rich_entry = listing[big.message_id], listing[rich.message_id]

        conn = dovecot.client(user, password)
        conn._imap.debug = 0   # imapclient's level 5 repr()s each literal (the sidecar's is 0)
        conn.select_folder("INBOX", readonly=True)
        # The sidecar upgrades with STARTTLS because Dovecot offers it: compare like with like.
        from imapclient import IMAPClient

        from tests.fixtures.dovecot import insecure_context

        tls_conn = IMAPClient(dovecot.host, port=dovecot.port, ssl=False, timeout=60)
        tls_conn._imap.debug = 0
        tls_conn.starttls(insecure_context())
        tls_conn.login(user, password)
        tls_conn.select_folder("INBOX", readonly=True)

        def fetch_len(client):
            return len(client.fetch([big_entry["uid"]], ["BODY.PEEK[]"])[big_entry["uid"]][b"BODY[]"])

        def direct_source():
            return fetch_len(tls_conn)

        def direct_plain():
            return fetch_len(conn)

        def api_source():
            with http.get(f"{base}/message/{big_entry['id']}/source", stream=True, timeout=60) as r:
                assert r.status_code == 200, r.text[:300]
                return sum(len(c) for c in r.iter_content(1024 * 1024))

        from imapapi import rpc

        rds = redis_lib.Redis.from_url(redis_url)

        def rpc_source():
            reply = rpc.call(rds, "bench", "messages.source", {"message": big_entry["id"]}, timeout=30)
            return sum(len(c) for c in rpc.iter_stream(rds, reply.stream, timeout=30))

        sidecar_pid = stack.procs["sidecar"].pid
        rss_before = proc_mb(sidecar_pid, "VmRSS")
        api_pids = [int(p) for p in Path(f"/proc/{stack.procs['api'].pid}/task/"
                                         f"{stack.procs['api'].pid}/children").read_text().split()]
        api_before = max(proc_mb(pid, "VmRSS") for pid in api_pids)
        size = len(big.raw)
        print(f"\nsource download of a {size / 1e6:.1f} MB message:")
        rates = throughputs({"direct, no TLS": direct_plain,
                             "direct FETCH BODY[]": direct_source,
                             "rpc stream (no HTTP)": rpc_source,
                             "HTTP API (streamed)": api_source}, size, args.runs)
        direct_rate, api_rate = rates["direct FETCH BODY[]"], rates["HTTP API (streamed)"]
        ratio = api_rate / direct_rate * 100
        print(f"  API / direct = {ratio:.0f} % ({'meets' if ratio >= 90 else 'MISSES'} the 90 % target)"
              f"   load average {os.getloadavg()[0]:.1f}")
        print(f"  sidecar RSS {rss_before:.0f} MB before, peak {proc_mb(sidecar_pid, 'VmHWM'):.0f} MB "
              f"after {args.runs} downloads; API worker RSS {api_before:.0f} MB before, peak "
              f"{max(proc_mb(pid, 'VmHWM') for pid in api_pids):.0f} MB")

        from sidecar.imap.bodystructure import analyze
        from sidecar.imap.listing import FETCH_ITEMS
        from sidecar.imap.textdecode import TextDecoder

        detail_items = list(FETCH_ITEMS) + [b"BODY.PEEK[HEADER]"]
        uid = rich_entry["uid"]

        def direct_details():
            conn.select_folder("INBOX", readonly=True)
            return conn.fetch([uid], detail_items)[uid]

        def direct_text():
            conn.select_folder("INBOX", readonly=True)
            structure = analyze(conn.fetch([uid], ["BODYSTRUCTURE"])[uid][b"BODYSTRUCTURE"])
            for number in structure.groups[0] + structure.groups[1]:
                part = structure.part(number)
                raw = conn.fetch([uid], [f"BODY.PEEK[{number}]"])[uid][f"BODY[{number}]".encode()]
                dec = TextDecoder(part.encoding, part.charset)
                dec.feed(raw)
                dec.finish(complete=True)

        def api_details():
            r = http.get(f"{base}/message/{rich_entry['id']}", timeout=30)
            assert r.status_code == 200, r.text[:300]

        def api_text():
            r = http.get(f"{base}/text/{rich_entry['text']['id']}", timeout=30)
            assert r.status_code == 200 and r.json()["plain"], r.text[:300]

        n = args.requests
        print(f"\nmessage details / text of a multipart message, {n} sequential requests each:")
        d_direct = report("direct SEL+FETCH", timed(direct_details, n))
        d_api = report("HTTP API details", timed(api_details, n))
        t_direct = report("direct SEL+FETCH text", timed(direct_text, n))
        t_api = report("HTTP API text", timed(api_text, n))
        print(f"  details: API p50 - direct p50 = {d_api - d_direct:.2f} ms; "
              f"text: API p50 - direct p50 = {t_api - t_direct:.2f} ms")
        conn.logout()
        tls_conn.logout()
        return 0
    finally:
        stack.stop()
        dovecot.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
