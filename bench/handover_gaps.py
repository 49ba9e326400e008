"""Where a drained account's time without a connection goes: Dovecot's log (µs) joined with lease news."""
from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass

from imapapi import keys, leases

# session_dovecot(log_usecs=True) stamps every log line like this (Dovecot's log_timestamp)
LOG_TIMESTAMP = 'log_timestamp = "%Y-%m-%d %H:%M:%S.%{usecs} "\n'
_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\.(\d{6}) ")
_LOGIN = re.compile(r"imap-login: Info: Login: user=<([^>]*)>.*?rport=(\d+)(.*?)session=<([^>]*)>")
_END = re.compile(r"imap\(([^)]*)\)<\d+><([^>]*)>: Info: (?:Logged out|Disconnected)")


@dataclass
class Session:
    user: str
    rport: int
    login: float
    end: float | None = None
    tls: bool = False   # STARTTLS (the sidecars here) or not (the bench's mailer)


def sessions(log_path: str) -> dict[str, list[Session]]:
    """user -> its IMAP sessions in login order, from the Dovecot log (login and end times)."""
    by_id: dict[str, Session] = {}
    ended: dict[str, float] = {}   # a short session's end can be logged before its login
    out: dict[str, list[Session]] = {}
    with open(log_path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            m = _STAMP.match(line)
            if not m:
                continue
            t = time.mktime(time.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")) + int(m.group(2)) / 1e6
            if (g := _LOGIN.search(line)) is not None:
                s = by_id[g.group(4)] = Session(g.group(1), int(g.group(2)), t,
                                                ended.pop(g.group(4), None), ", TLS" in g.group(3))
                out.setdefault(s.user, []).append(s)
            elif (g := _END.search(line)) is not None:
                if g.group(2) in by_id:
                    by_id[g.group(2)].end = t
                else:
                    ended[g.group(2)] = t
    return out


class LeaseWatch(threading.Thread):
    """Lease news as it happens: `released` on keys.SIDECARS_CHANNEL (when, by whom), the lease
    hash every 0.1 s (when each account got a new holder) and when a replica left ia:sidecars."""

    def __init__(self, redis):
        super().__init__(name="lease-watch", daemon=True)
        self.redis = redis
        self.released: dict[str, list[tuple[float, str]]] = {}
        self.acquired: dict[str, list[tuple[float, str]]] = {}
        self.left: dict[str, float] = {}
        self._halt = threading.Event()

    def run(self) -> None:
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(keys.SIDECARS_CHANNEL)
        holders: dict[str, str] = {}
        seen: set[str] = set()
        while not self._halt.is_set():
            while (msg := pubsub.get_message(timeout=0.1)) is not None:
                news = json.loads(msg["data"])
                for acct in news.get("released", ()):
                    self.released.setdefault(acct, []).append((time.time(), news.get("by")))
            now = time.time()
            for acct, value in self.redis.hgetall(keys.LEASES).items():
                owner = leases.parse(value)[2]
                acct = acct.decode()
                if holders.get(acct) != owner:
                    holders[acct] = owner
                    self.acquired.setdefault(acct, []).append((now, owner))
            live = {m.decode() for m in self.redis.zrange(keys.SIDECARS, 0, -1)}
            for sid in seen - live:
                self.left.setdefault(sid, now)
            seen |= live
        pubsub.close()

    def stop(self) -> None:
        self._halt.set()
        self.join(5)


def _pct(xs: list[float], q: float) -> float:
    return sorted(xs)[min(len(xs) - 1, int(len(xs) * q))] if xs else float("nan")


def _line(name: str, xs: list[float]) -> str:
    if not xs:
        return f"{name}: none"
    return (f"{name}: n={len(xs)} p50 {_pct(xs, 0.5):.2f} s, p90 {_pct(xs, 0.9):.2f} s, "
            f"max {max(xs):.2f} s")


def breakdown(log: dict[str, list[Session]], watch: LeaseWatch, held, sid: str, t_sig: float,
              skip: dict[int, list[float]]) -> tuple[list[str], list[float]]:
    """Per account the replica `sid` held at SIGTERM (`t_sig`): its session's end there ->
    the next holder's login (the gap), split into end -> lease released, released -> acquired
    by the next holder, acquired -> login; paced (released while `sid` was still in the
    heartbeat set, i.e. draining) or after the drain. `skip`: client port -> when another
    client (the mailer, without TLS) logged in from it; ports are reused (the same local port
    towards another server port too), so only a login without TLS within 10 s of that is
    the other client's. -> (report lines, gaps)."""
    left = watch.left.get(sid, float("inf"))
    parts = {k: [] for k in ("gap", "paced", "after", "end-rel", "rel-acq", "acq-login")}
    overlap = missing = 0
    overlap_max = 0.0
    worst = (-1.0, "")
    for acct in held:
        mine = [s for s in log.get(acct, ()) if s.tls
                or not any(abs(s.login - t) < 10 for t in skip.get(s.rport, ()))]
        old = [s for s in mine if s.login < t_sig and (s.end is None or s.end >= t_sig)]
        new = [s for s in mine if s.login >= t_sig]
        rel = next((t for t, by in watch.released.get(acct, ()) if by == sid and t >= t_sig), None)
        acq = next((t for t, o in watch.acquired.get(acct, ()) if o != sid and t >= t_sig), None)
        if not old or old[-1].end is None or not new:
            missing += 1
            continue
        end, login = old[-1].end, new[0].login
        if login < end:   # Dovecot logs a session's end a moment after the LOGOUT reply
            overlap += 1
            overlap_max = max(overlap_max, end - login)
        gap = max(0.0, login - end)
        parts["gap"].append(gap)
        worst = max(worst, (gap, f"{acct}: logout {end - t_sig:+.2f} s, released "
                                 f"{(rel or t_sig) - t_sig:+.2f}, acquired {(acq or t_sig) - t_sig:+.2f}, "
                                 f"login {login - t_sig:+.2f} (from SIGTERM)"))
        if rel is not None:
            parts["paced" if rel < left else "after"].append(gap)
            parts["end-rel"].append(rel - end)
            if acq is not None:
                parts["rel-acq"].append(max(0.0, acq - rel))
                parts["acq-login"].append(login - acq)
    lines = [_line("logout -> next login (Dovecot log)", parts["gap"]),
             _line("  released while draining", parts["paced"]),
             _line("  released after the drain", parts["after"]),
             _line("  logout -> lease released", parts["end-rel"]),
             _line("  released -> acquired by the next holder (0.1 s polls)", parts["rel-acq"]),
             _line("  acquired -> logged in", parts["acq-login"]),
             f"  next login logged before the old session's end: {overlap} (by up to "
             f"{overlap_max:.3f} s); accounts without a logout/login pair: {missing}",
             f"  longest: {worst[1]}"]
    return lines, parts["gap"]
