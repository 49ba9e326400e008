"""Watching folders other than INBOX: NOTIFY where offered, else a STATUS (LIST-STATUS) sweep."""
from __future__ import annotations

import logging
import time

from . import imapio

log = logging.getLogger(__name__)



class Watch:
    """Per-session watching mode and schedule (kept on the session, rebuilt on reconnect)."""

    def __init__(self, caps: set[str], sweep_every: float):
        self.caps = caps
        self.notify = False
        self.notified: tuple = ()   # the folder set NOTIFY was last set for
        self.sweep_every = max(1.0, float(sweep_every))
        self.last_sweep = 0.0

    def start(self, client, folders) -> None:
        """(Re)issue NOTIFY when offered and the folder set changed; a refusal means sweeps."""
        if "NOTIFY" not in self.caps:
            return
        wanted = tuple(sorted(folders))
        if self.notify and wanted == self.notified:
            return
        try:
            if self.notify:
                imapio.notify_none(client)
            imapio.notify_set(client, wanted)
            self.notify, self.notified = True, wanted
        except Exception as exc:
            if _is_connection_error(exc):
                raise
            self.notify = False
            log.info("NOTIFY refused (%s): falling back to STATUS sweeps", exc)

    def interval(self) -> float:
        # Even with NOTIFY: folder creation/deletion and non-ASCII folders come from the sweep.
        return self.sweep_every

    def next_due(self) -> float:
        return self.last_sweep + self.interval()


def _is_connection_error(exc) -> bool:
    return isinstance(exc, (OSError, EOFError)) or type(exc).__name__ == "abort"


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
        self.listing = False        # LIST pushed: a folder was created, renamed or deleted

    def __bool__(self):
        return self.selected or self.listing or bool(self.folders)

    def feed_pushed(self, other: "Pushed") -> "Pushed":
        self.selected |= other.selected
        self.flags |= other.flags
        self.folders |= other.folders
        self.listing |= other.listing
        return self

    def feed(self, responses) -> "Pushed":
        for resp in responses or ():
            if not isinstance(resp, tuple) or not resp:
                continue
            head = resp[0]
            if isinstance(head, int):
                kind = imapio.text(resp[1]).upper() if len(resp) > 1 else ""
                if kind in ("EXISTS", "EXPUNGE", "FETCH", "RECENT"):
                    self.selected = True
                    self.flags = self.flags or kind == "FETCH"
                continue
            kind = imapio.text(head).upper()
            if kind == "VANISHED":
                self.selected = True
            elif kind == "STATUS" and len(resp) > 1:
                name = imapio.folder_name(resp[1])
                if name == self.idle_folder:
                    self.selected = True
                else:
                    self.folders.add(name)
            elif kind == "LIST":
                self.listing = True
        return self


def pending_pushes(client, idle_folder: str = "INBOX") -> Pushed:
    """STATUS/LIST pushes that arrived while an op ran commands (imaplib kept them aside)."""
    pushed = Pushed(idle_folder)
    untagged = client._imap.untagged_responses
    for raw in untagged.pop("STATUS", None) or ():
        got = imapio.parse_status_line(raw)
        if got and got[0] != idle_folder:
            pushed.folders.add(got[0])
    if untagged.pop("LIST", None):
        pushed.listing = True
    return pushed


def due(watch: Watch, now: float | None = None) -> bool:
    return (now or time.time()) >= watch.next_due()
