"""SyncEngine: the sidecar hooks that turn IDLE/NOTIFY pushes and sweeps into committed events."""
from __future__ import annotations

import hashlib
import logging
import time

from imapapi import events as ev
from imapapi import webhook_settings
from imapapi.settings import get_settings
from sidecar.connection import is_connection_error, shared
from sidecar.hooks import IDLE_FOLDER, SyncHooks
from sidecar.imap import codec, selection

from . import diff, imapio, notify, probe, state
from .folder import FolderSync

log = logging.getLogger(__name__)

SPECIAL = ("\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash")
RESUME_SWEEP_DELAY = 1.0   # after an API op: a sweep soon catches what it changed elsewhere
FOLLOW_UP = 1.0            # after pushes: one more look catches the rest of a burst Dovecot dropped
STALE_RECONNECT_EVERY = 600.0   # at most this often: a new session for a server's stale folder list
FULL_PASS_EVERY = 600.0   # a sweep compares with Redis's stored states at least this often
# LIST attributes that say nothing about a folder's identity or role: Dovecot adds \UnMarked
# once a folder has an index (so every new account's first sweep after its first pass was a
# full one: Redis reads and a SELECT), and \Marked comes and goes with new mail, which the
# STATUS values show anyway.
_VOLATILE_FLAGS = frozenset(("\\marked", "\\unmarked"))


def _selectable(client, path: str) -> bool:
    try:
        client.select_folder(path, readonly=True)
        return True
    except Exception as exc:
        if is_connection_error(exc) or not _nonexistent(exc):
            raise
        return False


def snapshot(live: dict, caps: set[str]) -> dict | None:
    """Pure: what a sweep compares -> {path: (flags, delimiter, STATUS values)}, or None when it
    cannot tell "nothing moved" from it (no CONDSTORE: STATUS misses flag changes; a folder
    without STATUS values)."""
    if "CONDSTORE" not in caps:
        return None
    out = {}
    for path, meta in live.items():
        st = meta.get("status")
        if not st or "HIGHESTMODSEQ" not in st:
            return None
        flags = tuple(f for f in meta.get("flags") or () if f.lower() not in _VOLATILE_FLAGS)
        out[path] = (flags, meta.get("delimiter"), tuple(sorted(st.items())))
    return out


def fingerprint(seen: dict | None) -> bytes | None:
    """Pure: a snapshot as 16 bytes. Kept per connection instead of the snapshot itself (its
    tuples and ints were ~4 KiB of each idle account's memory)."""
    if seen is None:
        return None
    return hashlib.blake2b(repr(sorted(seen.items())).encode(), digest_size=16).digest()


def empty_state(path: str, status: dict | None, caps: set[str]) -> state.FolderState | None:
    """Pure: the state a silent baseline of an empty folder commits, from its STATUS values
    (what SELECT would say); None when the folder has messages or a value is missing."""
    need = imapio.status_items(caps)
    if not status or any(k not in status for k in need) or int(status["MESSAGES"]) != 0:
        return None
    return state.FolderState(path=path, uid_validity=int(status["UIDVALIDITY"]),
                             uid_next=int(status["UIDNEXT"]), messages=0,
                             highest_modseq=int(status.get("HIGHESTMODSEQ") or 0), version=1)


def _webhook_view(redis, account: str) -> tuple[dict, str | None]:
    """(webhookEvents and notify* settings, the account's webhook URL), one round trip."""
    return webhook_settings.sync_view(redis, account, ["webhookEvents", "notifyText",
                                                       "notifyTextSize", "notifyHeaders"])


def _wanted(view: tuple[dict, str | None], event: str) -> bool:
    """Pure: does an event get a webhook job under these settings?"""
    return bool(view[1]) and webhook_settings.event_allowed(view[0].get("webhookEvents"), event)


class StaleFolderList(ConnectionError):
    """The server lists a folder that it says does not exist: only a new session helps."""


def _nonexistent(exc) -> bool:
    text = str(exc).lower()
    return any(s in text for s in ("nonexistent", "doesn't exist", "does not exist", "deleted under us"))


def stale_verdict(listed: set, checked: set, unreachable: set, live: set,
                  may_reconnect: bool) -> tuple[bool, set, set]:
    """Pure: after LIST, `checked` folders (listed, lately called nonexistent) were tried and
    `listed` of them still cannot be selected -> (start a new session now, the folders to
    leave to the sweeps until then, the ones newly found so)."""
    if listed and may_reconnect:
        return True, set(), set(listed)
    # no longer listed, or selectable again when tried: no longer unreachable
    keep = (unreachable & live) - (checked - listed)
    return False, keep | listed, listed - unreachable


def special_use(path: str, flags) -> str | None:
    if path == "INBOX":
        return "\\Inbox"
    lowered = {str(f).lower() for f in flags or ()}
    return next((s for s in SPECIAL if s.lower() in lowered), None)


class Ctx:
    """Per-connection sync context kept on the session (dropped on disconnect)."""

    def __init__(self, session):
        settings = getattr(session, "settings", None) or get_settings()
        self.caps = shared(frozenset(c.upper() for c in session.capabilities))   # one copy
        self.watch = notify.Watch(self.caps, settings.status_sweep)
        self.folders: dict[str, dict] = {}     # path -> {specialUse, delimiter}
        self.states: dict = {}                 # path -> decoded FolderState last committed
        self.pending = notify.Pushed(IDLE_FOLDER)   # pushes not handled yet
        self.sweep_at = float("inf")           # an extra sweep requested (after an API op)
        self.stale: set[str] = set()           # folders a SELECT called nonexistent since LIST
        # Listed yet nonexistent, and a new session was tried lately: no immediate re-LIST for
        # them (that spun, a pass every few ms), only the sweeps until a new session may help.
        self.unreachable: set[str] = set()
        # What the last complete pass saw (folders, flags, STATUS values) and when: a sweep whose
        # LIST-STATUS says the same stops there (no Redis reads, no re-SELECT of the idle folder)
        self.seen: bytes | None = None   # its fingerprint()
        self.full_at = 0.0
        self.view: tuple | None = None   # webhook settings read at connect, for its first pass

    def next_tick(self) -> float:
        if self.pending:
            return 0.0   # pushes collected during our own commands: handle them at once
        return self.sweep_due()

    def sweep_due(self) -> float:
        return min(self.watch.next_due(), self.sweep_at)

    def collect(self, client) -> None:
        """Move pushes imaplib kept aside into pending before a SELECT flushes them."""
        self.pending.feed_pushed(notify.pending_pushes(client, IDLE_FOLDER, self.folders))


class SyncEngine(SyncHooks):
    """Implements sidecar.hooks.SyncHooks; every method runs with the main connection held."""

    # -- hooks ---------------------------------------------------------------------------------
    def on_connected(self, session) -> None:
        client, caps = session.client, {c.upper() for c in session.capabilities}
        session.qresync_enabled = False
        for ext in ("QRESYNC", "CONDSTORE"):
            if ext in caps:
                try:
                    enabled = {codec.as_str(x).upper() for x in client.enable(ext)}
                    session.qresync_enabled = "QRESYNC" in enabled
                    break
                except Exception as exc:
                    if is_connection_error(exc):
                        raise
        ctx = session.sync_ctx = Ctx(session)
        # One read of the webhook settings serves the event and the first pass's syncer.
        ctx.view = view = _webhook_view(session.redis, session.account)
        if not probe.quiet_login(session):   # a session replaced by sync.probe is no news
            try:
                ev.emit_account_event(session.redis, session.account, "authenticationSuccess",
                                      {"user": ((session.record or {}).get("imap") or {})
                                       .get("auth", {}).get("user")},
                                      fence=getattr(session, "fence", None),
                                      wanted=_wanted(view, "authenticationSuccess"))
            except Exception:
                log.exception("%s: authenticationSuccess event failed", session.account)
        self._pass(session, ctx)
        ctx.view = None   # unused (the pass stopped early): never kept for a later one
        ctx.collect(session.client)
        session.next_tick = ctx.next_tick()

    def resume(self, session) -> None:
        """After an op (off its latency path): handle what was pushed meanwhile, re-select the
        idle folder, and sweep soon for what the op itself changed in other folders."""
        ctx = self._ctx(session)
        ctx.collect(session.client)
        ctx.pending.selected = True
        self._drain(session, ctx)
        ctx.sweep_at = min(ctx.sweep_at, time.time() + RESUME_SWEEP_DELAY)
        ctx.collect(session.client)
        session.next_tick = ctx.next_tick()

    def on_idle_responses(self, session, responses: list) -> None:
        """Only note the pushes and ask for a tick now: when the runtime hands them over before
        an op borrows the connection, the op does not wait for our sync; on the IDLE path the
        tick follows at once (resume() covers the op path)."""
        ctx = self._ctx(session)
        ctx.pending.feed(responses, ctx.folders)
        if ctx.pending:
            session.next_tick = 0.0

    def on_tick(self, session) -> None:
        ctx = self._ctx(session)
        if ctx.pending:
            self._drain(session, ctx)
        if time.time() >= ctx.sweep_due():
            ctx.sweep_at = float("inf")
            self._pass(session, ctx)
        ctx.collect(session.client)
        session.next_tick = ctx.next_tick()

    def set_population(self, accounts: int) -> None:
        """How many accounts this process holds: the STATUS sweeps share a per-process budget."""
        notify.set_population(accounts)

    def on_disconnected(self, session) -> None:
        session.sync_ctx = None

    # -- work ----------------------------------------------------------------------------------
    def _ctx(self, session) -> Ctx:
        ctx = getattr(session, "sync_ctx", None)
        if ctx is None:
            ctx = session.sync_ctx = Ctx(session)
        return ctx

    def _syncer(self, session, ctx) -> FolderSync:
        # the settings read at connect serve its first pass; every later pass reads them afresh
        view, ctx.view = ctx.view or _webhook_view(session.redis, session.account), None
        stored = view[0]
        fs = FolderSync(session, ctx.caps, lambda e: _wanted(view, e["event"]), stored)
        fs.delimiters = {p: m.get("delimiter") for p, m in ctx.folders.items()}
        fs.cache = ctx.states
        return fs

    def _drain(self, session, ctx) -> None:
        pushed, ctx.pending = ctx.pending, notify.Pushed(IDLE_FOLDER)
        if pushed:
            self._apply(session, ctx, pushed)

    def _apply(self, session, ctx, pushed: notify.Pushed) -> None:
        """React to pushes: a LIST push (or a folder we do not know yet) means a full pass; else
        the named folders, then INBOX."""
        if pushed.listing or not ctx.folders or pushed.folders - set(ctx.folders):
            self._pass(session, ctx)
            return
        fs = self._syncer(session, ctx)
        for path in sorted(pushed.folders):
            if pushed.stale(path, state.load_status(session.redis, session.account, path)):
                continue   # Dovecot pushes ~0.5 s late: often a sync already took this change
            if path in ctx.folders and path != IDLE_FOLDER:
                self._sync_one(fs, ctx, path, silent=False)
        # Always end on the idle folder: it re-selects it for IDLE and catches up on it.
        self._sync_one(fs, ctx, IDLE_FOLDER, silent=False, flags_hint=pushed.flags)
        ctx.sweep_at = min(ctx.sweep_at, time.time() + FOLLOW_UP)

    def _pass(self, session, ctx) -> None:
        """LIST (+STATUS), folder created/deleted events, then sync every folder that moved."""
        client, redis, account = session.client, session.redis, session.account
        live = imapio.list_folders(client, ctx.caps)
        now = time.time()
        seen = fingerprint(snapshot(live, ctx.caps))
        if (seen is not None and seen == ctx.seen and not ctx.stale and now < ctx.full_at + FULL_PASS_EVERY
                and selection.current(client, IDLE_FOLDER) is not None):
            # Nothing moved since the last complete pass (CONDSTORE: HIGHESTMODSEQ covers flag
            # changes) and the idle folder is still selected: an idle account's sweep ends here.
            ctx.watch.swept(now)
            return
        ctx.seen = None
        fs = self._syncer(session, ctx)
        self._check_stale(session, ctx, live)
        baselined, stored = state.load_account(redis, account)
        folders = {p: {"specialUse": special_use(p, m["flags"]), "delimiter": m["delimiter"]}
                   for p, m in live.items()}
        created, deleted = diff.folder_changes(stored, folders)
        if probe.should_probe(deleted, created, baselined):
            probe.check(session, set(live))   # a rename this session's LIST missed: new session
        events, updates = [], []
        known = state.load_statuses(redis, account, sorted(set(folders) | set(deleted)))
        for path in deleted:
            meta = stored[path]
            st = known.get(path)
            events.append(fs.event("mailboxDeleted", path,
                                   {"path": path, "name": codec.leaf_name(path, meta.get("delimiter")),
                                    "specialUse": meta.get("specialUse") or False},
                                   meta.get("specialUse"), (st or {}).get("uidValidity"), "deleted"))
            updates.append(state.delete_for(account, path))
        for path in created:
            meta = folders[path]
            uv = (live[path].get("status") or {}).get("UIDVALIDITY")
            data = {"path": path, "name": codec.leaf_name(path, meta["delimiter"]),
                    "specialUse": meta["specialUse"] or False}
            if uv:
                data["uidValidity"] = str(uv)
            events.append(fs.event("mailboxNew", path, data, meta["specialUse"], uv, "created"))
        if created or deleted or not baselined or folders != stored:
            updates.append(state.account_update(account, folders, baselined=baselined,
                                                stored=stored))
            # a new account's first look: its folders' mailboxNew go out as webhooks (as the
            # original's) but stay out of the feed, so an idle account keeps no stream
            fs.commit(events, updates, feed=None if baselined else (lambda e: False))
        ctx.folders = folders
        ctx.watch.swept(time.time())
        quiet = []   # first look at empty folders: their state straight from LIST-STATUS
        complete = True
        for path in sorted(folders, key=lambda p: (p == IDLE_FOLDER, p)):
            st = live[path].get("status")
            if path != IDLE_FOLDER:
                if st is None:
                    try:
                        st = imapio.status(client, path, ctx.caps)
                    except Exception as exc:
                        if is_connection_error(exc):
                            raise
                        if _nonexistent(exc) and path not in ctx.unreachable:
                            # listed, but STATUS says it does not exist: the session's folder
                            # list is stale (Dovecot after renames): the same cure as a SELECT
                            # saying so (LIST again now; still listed -> a new session)
                            ctx.stale.add(path)
                            ctx.sweep_at = 0.0
                            log.info("%s: STATUS %r: does not exist: listing folders again",
                                     account, path)
                        complete = False
                        continue
                if not notify.status_moved(known.get(path), st):
                    continue
                empty = None if baselined or known.get(path) else empty_state(path, st, ctx.caps)
                if empty is not None:
                    quiet.append(empty)
                    continue
            complete = self._sync_one(fs, ctx, path, silent=not baselined) and complete
        if not baselined:
            # One commit for the empty folders' states and the baseline mark: a new account's
            # first connect skips a SELECT and a commit per empty folder (5 of 6 on a fresh one)
            fs.commit([], [state.update_for(account, st, None) for st in quiet]
                      + [state.account_update(account, folders, baselined=True)])
            ctx.states.update((st.path, st) for st in quiet)
        ctx.watch.start(client)
        if complete and not ctx.stale:
            ctx.seen, ctx.full_at = seen, now

    def _check_stale(self, session, ctx, live: dict) -> None:
        """A folder a SELECT just called nonexistent is listed again: the server's own folder
        list is stale in this session (Dovecot after a corrupted list index): start a new one,
        at most every STALE_RECONNECT_EVERY seconds."""
        now = time.time()
        may_reconnect = now - getattr(session, "stale_reconnect_at", 0.0) >= STALE_RECONNECT_EVERY
        checked = (ctx.stale | (ctx.unreachable if may_reconnect else set())) & set(live)
        ctx.stale = set()
        # Deleted and created again between our SELECT and this LIST is no stale list: ask again.
        listed = {p for p in checked if not _selectable(session.client, p)}
        reconnect, ctx.unreachable, new = stale_verdict(listed, checked, ctx.unreachable,
                                                        set(live), may_reconnect)
        if reconnect:
            session.stale_reconnect_at = now
            raise StaleFolderList(f"folder list stale: {sorted(listed)} listed but nonexistent")
        if new:
            log.warning("%s: server lists %s but says they do not exist", session.account,
                        sorted(new))

    def _sync_one(self, fs: FolderSync, ctx, path: str, *, silent: bool, flags_hint=False) -> bool:
        """-> True when the folder's stored state now matches the server (False: a later pass
        must look again)."""
        ctx.collect(fs.client)
        try:
            fs.sync(path, ctx.folders.get(path, {}).get("specialUse") or special_use(path, ()),
                    silent_baseline=silent, flags_hint=flags_hint)
            ctx.unreachable.discard(path)   # it selects again
            return True
        except ev.StaleState:
            log.info("%s: %s state moved meanwhile; next pass redoes it", fs.account, path)
        except Exception as exc:
            if is_connection_error(exc):
                raise
            if _nonexistent(exc) and path != IDLE_FOLDER:
                if path not in ctx.unreachable:
                    # our folder list is out of date: LIST again now, not at the next sweep
                    ctx.stale.add(path)
                    ctx.sweep_at = 0.0
                    log.info("%s: %r does not exist (anymore): listing folders again",
                             fs.account, path)
                return False
            if path == IDLE_FOLDER:
                raise   # the idle folder must end up selected: let the runtime reconnect
            log.warning("%s: sync of %r failed: %s", fs.account, path, exc)
        return False

