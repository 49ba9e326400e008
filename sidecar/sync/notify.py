"""Watching folders other than INBOX: NOTIFY where offered, else a STATUS (LIST-STATUS) sweep."""
from __future__ import annotations

import logging
import random
import time
import weakref

from sidecar.connection import is_connection_error
from sidecar.imap import compat
from sidecar.imap.codec import as_str
from sidecar.imap.responses import regroup

from . import imapio

log = logging.getLogger(__name__)


SLOW_SWEEP = 30.0   # shortest sweep interval when every folder needs its own STATUS
# Sweeps per second one sidecar process runs at most, over all its accounts: each wakes an
# account out of IDLE (DONE, LIST-STATUS, IDLE). With 10,000 accounts a 3 s interval would be
# 3,300 a second (more than two cores); past SWEEP_BUDGET * interval accounts the interval grows
# with the account count instead (1,000 accounts: every 67 s, 10,000: every 667 s; pushes stay
# immediate, the sweeps only catch what a server failed to push). 200 a second took most of a
# core at 1,000 accounts and starved their connects. A quiet sweep costs about 1.4 ms of CPU
# (bench/idle_ab.py --threads, 2,000 accounts): 15 a second are ~2 % of a core, on top of an
# idle 10,000-account sidecar's ~1.6 % without sweeps (lease renewal, heartbeat, supervisor).
SWEEP_BUDGET = 15.0
LOAD = {"accounts": 1}   # accounts this process holds (set by the supervisor's loop)
# Every live connection's Watch: the supervisor sets LOAD only after a reconcile round, and the
# first one takes all 10,000 accounts (minutes of connecting): the accounts connected meanwhile
# must already share the budget, not sweep every 3 s as if alone.
LIVE: "weakref.WeakSet[Watch]" = weakref.WeakSet()


def set_population(accounts: int) -> None:
    LOAD["accounts"] = max(1, int(accounts))


class Watch:
    """Per-session watching mode and schedule (kept on the session, rebuilt on reconnect)."""

    def __init__(self, caps: set[str], sweep_every: float):
        self.caps = caps
        self.notify = False
        self.sweep_every = max(1.0, float(sweep_every))
        self.last_sweep = 0.0
        self.phased = False
        LIVE.add(self)

    def start(self, client) -> None:
        """Issue NOTIFY once per connection when offered (it covers folders created later);
        a refusal means sweeps only."""
        if "NOTIFY" not in self.caps or self.notify:
            return
        try:
            imapio.notify_set(client)
            self.notify = True
        except Exception as exc:
            if is_connection_error(exc):
                raise
            log.info("NOTIFY refused (%s): falling back to STATUS sweeps", exc)

    def interval(self) -> float:
        # Even with NOTIFY: Dovecot drops some bursts, pushes get lost while a SELECT flushes
        # imaplib's untagged responses, and without CONDSTORE/QRESYNC enabled it pushes no flag
        # change for unselected folders except \Seen (with it: STATUS with HIGHESTMODSEQ).
        # With LIST-STATUS a sweep is one round trip (every few seconds keeps every folder
        # within 5 s); without it a STATUS per folder, so not that often.
        spread = max(LOAD["accounts"], len(LIVE)) / SWEEP_BUDGET
        if "LIST-STATUS" in self.caps:
            return max(self.sweep_every, spread)
        return max(self.sweep_every, SLOW_SWEEP, spread)

    def next_due(self) -> float:
        return self.last_sweep + self.interval()

    def swept(self, now: float, draw=random.random) -> None:
        """A sweep (or pass) ended at `now`. The session's first is backdated by a random part
        of the interval: after a (re)start that connected 10,000 accounts within 4 minutes,
        their sweeps (every 400 s then) spread over the whole interval at once, instead of all
        coming due together one interval after their connects, above the budget."""
        if not self.phased:
            self.phased = True
            now -= draw() * self.interval()
        self.last_sweep = now


def status_moved(stored: dict | None, live: dict | None) -> bool:
    """Pure: does a folder's STATUS differ from what its stored state recorded?"""
    if stored is None or live is None:
        return True
    for key, name in (("UIDVALIDITY", "uidValidity"), ("UIDNEXT", "uidNext"),
                      ("MESSAGES", "messages"), ("HIGHESTMODSEQ", "highestModseq")):
        if key in live and int(live[key]) != int(stored.get(name, -1)):
            return True
    return False


class Pushed:
    """What a batch of untagged responses says moved (pure parsing of imapclient tuples)."""

    def __init__(self, idle_folder: str = "INBOX"):
        self.idle_folder = idle_folder
        self.selected = False       # EXISTS/EXPUNGE/FETCH/VANISHED on the selected folder
        self.flags = False          # an untagged FETCH: flags changed (matters without CONDSTORE)
        self.folders: set[str] = set()
        self.statuses: dict[str, dict] = {}   # path -> the last STATUS values pushed for it
        self.listing = False        # LIST pushed: a folder was created, renamed or deleted

    def __bool__(self):
        return self.selected or self.listing or bool(self.folders)

    def feed_pushed(self, other: "Pushed") -> "Pushed":
        self.selected |= other.selected
        self.flags |= other.flags
        self.folders |= other.folders
        self.statuses.update(other.statuses)
        self.listing |= other.listing
        return self

    def feed(self, responses, known=()) -> "Pushed":
        """`known`: our folder paths, to tell which form a pushed name is in (imapio.push_path)."""
        for resp in responses or ():
            if not isinstance(resp, tuple) or not resp:
                continue
            head = resp[0]
            if isinstance(head, int):
                kind = as_str(resp[1]).upper() if len(resp) > 1 else ""
                if kind in ("EXISTS", "EXPUNGE", "FETCH", "RECENT"):
                    self.selected = True
                    self.flags = self.flags or kind == "FETCH"
                continue
            kind = as_str(head).upper()
            if kind == "VANISHED":
                self.selected = True
            elif kind == "STATUS" and len(resp) > 1:
                items = resp[2] if len(resp) > 2 and isinstance(resp[2], tuple) else ()
                self._status(imapio.push_path(resp[1], known), imapio.status_dict(items))
            elif kind == "LIST":
                self.listing = True
        return self

    def _status(self, name: str, values: dict) -> None:
        if name == self.idle_folder:
            self.selected = True
        else:
            self.folders.add(name)
            self.statuses[name] = values

    def stale(self, path: str, stored: dict | None) -> bool:
        """Pure: the push says nothing our stored state lacks (it arrived after we synced).
        Only with HIGHESTMODSEQ: without it a flag change would look like no change."""
        pushed = self.statuses.get(path) or {}
        return "HIGHESTMODSEQ" in pushed and stored is not None and not status_moved(stored, pushed)


def pending_pushes(client, idle_folder: str = "INBOX", known=()) -> Pushed:
    """STATUS/LIST pushes that arrived while commands ran (imaplib kept them aside; a SELECT
    would flush them, so callers collect them before one)."""
    pushed = Pushed(idle_folder)
    untagged = compat.untagged(client)
    for parts in regroup(untagged.pop("STATUS", None)):
        got = imapio.parse_status_line(parts, known)
        if got:
            pushed._status(*got)
    if untagged.pop("LIST", None):
        pushed.listing = True
    return pushed


def due(watch: Watch, now: float | None = None) -> bool:
    return (now or time.time()) >= watch.next_due()
