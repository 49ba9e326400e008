"""CPU of the sidecar's pure steps of one GET message (issue 15): FETCH parse, details, reply JSON.

Starts a Dovecot, appends the compare bench's multipart message, FETCHes it once with the
details items (as messages.get does, through our FETCH parser) and keeps imaplib's raw
response. Then times each step on that response: thread CPU per call, the best of --batches
batches (the least disturbed by a shared machine's load).

    .venv/bin/python bench/details_cpu.py [--calls 6000] [--batches 30]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import imapclient.imapclient as imapclient_module  # noqa: E402

from imapapi import wire  # noqa: E402
from sidecar.imap import bodystructure, details, fetchparse, listing, objectid  # noqa: E402
from sidecar.imap.fetch import fetch_one  # noqa: E402
from tests.fixtures import corpus  # noqa: E402
from tests.fixtures.dovecot import Dovecot  # noqa: E402


def best_us(fn, calls: int, batches: int) -> float:
    for _ in range(50):
        fn()
    per = max(1, calls // batches)
    best = float("inf")
    for _ in range(batches):
        started = time.thread_time()
        for _ in range(per):
            fn()
        best = min(best, (time.thread_time() - started) / per)
    return best * 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=6000)
    ap.add_argument("--batches", type=int, default=30)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="imapapi-details-cpu-"))
    root.chmod(0o755)
    dovecot = Dovecot(root / "dovecot")
    dovecot.start()
    try:
        dovecot.add_user("bench", "bench-pass")
        dovecot.append("bench", "bench-pass", "INBOX", corpus.nested_mixed().raw)
        fetchparse.install()
        client = dovecot.client("bench", "bench-pass")
        client.normalise_times = False   # as the sidecar's connections
        client.select_folder("INBOX", readonly=True)
        uid = client.search("ALL")[0]
        items = list(details.DETAIL_ITEMS + objectid.items(client, True))
        raw = {}
        parse = imapclient_module.parse_fetch_response

        def keep(text, *rest):
            raw["text"], raw["rest"] = list(text), rest
            return parse(text, *rest)

        imapclient_module.parse_fetch_response = keep
        entry = fetch_one(client, uid, items)
        imapclient_module.parse_fetch_response = parse
        text, rest = raw["text"], raw["rest"]
        result = details.build_details(1, entry)
        header = details._header_bytes(entry)
        steps = {
            "parse_fetch_response": lambda: parse(text, *rest),
            "build_details": lambda: details.build_details(1, entry),
            "  build_entry": lambda: listing.build_entry(1, entry),
            "  bodystructure.summary": lambda: bodystructure.summary(
                entry[b"BODYSTRUCTURE"], 1, uid),
            "  parse_headers": lambda: details.parse_headers(header),
            "Reply.dumps": lambda: wire.Reply(id="x" * 32, ok=True, result=result).dumps(),
        }
        print(f"FETCH response {sum(len(c) if isinstance(c, bytes) else sum(map(len, c)) for c in text)} bytes; "
              f"thread CPU per call, best of {args.batches} batches:")
        for name, fn in steps.items():
            print(f"  {name:<26} {best_us(fn, args.calls, args.batches):8.1f} us", flush=True)
        client.logout()
    finally:
        dovecot.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
