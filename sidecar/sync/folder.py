"""Sync one folder: SELECT, fetch what changed, diff, and commit events + state in one Lua step."""
from __future__ import annotations

import dataclasses
import logging

from imapapi import events as ev
from imapapi import ids, keys, leases
from imapapi.delivery import enqueue

from sidecar.imap import codec, objectid

from . import diff, imapio, state
from .details import new_message_entries

log = logging.getLogger(__name__)

NEW_CHUNK = 50   # messageNew events per commit: bounded work lost on a crash, early delivery


def _stored_id(stored_ids: dict, uid: int) -> dict:
    return {"emailId": stored_ids[uid]} if stored_ids.get(uid) else {}


class FolderSync:
    """Everything a folder sync needs from the session, without owning the connection."""

    def __init__(self, session, caps: set[str], wanted, notify_settings: dict):
        self.session = session
        self.client = session.client
        self.redis = session.redis
        self.account = session.account
        self.condstore = bool({"CONDSTORE", "QRESYNC"} & caps)
        self.qresync = "QRESYNC" in caps and getattr(session, "qresync_enabled", False)
        self.wanted = wanted
        self.notify_settings = notify_settings
        self.delimiters: dict[str, str | None] = {}   # filled by the engine from LIST
        self.cache: dict = {}   # path -> committed FolderState (the engine keeps it per connection)
        self.id_items: tuple = ()   # objectid.items of this connection, set at each SELECT

    # -- commit --------------------------------------------------------------------------------
    def commit(self, events: list[dict], updates: list, *, retry_stale: bool = False,
               feed=None) -> None:
        """feed: predicate(event) -> kept in /changes (default all; see events.append_events)."""
        wanted = {id(e) for e in events if self.wanted(e)}
        # fence: the lease token; refused (leases.Fenced) once another replica holds the account
        fence = getattr(self.session, "fence", None)
        # occurrence ids: the state version check lets a change commit once, and the same
        # content seen again later (a folder renamed back) is news again
        ev.append_events(self.redis, self.account, events, updates,
                         deliver=lambda e: id(e) in wanted, fence=fence, occurrence=True,
                         feed=feed)
        ids_wanted = [e["id"] for e in events if id(e) in wanted][:1]   # one wake-up per account
        if events and fence is not None:
            leases.hset_existing(self.redis, keys.account(self.account), "sync", ev.now_iso(),
                                 self.account, fence)
        elif events:
            # syncTime in the account listing; never recreate a record deleted meanwhile
            self.redis.eval("if redis.call('EXISTS', KEYS[1]) == 1 then "
                            "redis.call('HSET', KEYS[1], 'sync', ARGV[1]) end",
                            1, keys.account(self.account), ev.now_iso())
        if ids_wanted:
            try:
                enqueue(ids_wanted)
            except Exception as exc:   # broker hiccup: the sweeper re-enqueues after the lease
                log.warning("%s: enqueue failed (%s); sweeper will pick it up", self.account, exc)

    def event(self, name: str, path: str, data: dict, special_use, *id_parts) -> dict:
        return ev.make_event(self.account, name, data, path=path, special_use=special_use,
                             id_parts=id_parts)

    # -- one folder ----------------------------------------------------------------------------
    def sync(self, path: str, special_use: str | None, *, silent_baseline: bool,
             flags_hint: bool = False) -> bool:
        """Bring one folder's stored state up to the server; -> True if anything changed."""
        server = imapio.select(self.client, path)
        self.id_items = objectid.items(self.client)   # decided once per connection
        stored = state.load_cached(self.redis, self.account, path, self.cache)
        plan = diff.plan(stored, server, condstore=self.condstore, flags_hint=flags_hint)
        if plan == "none":
            return False
        # the folder's number only when an event names a message: a silent first look (an idle
        # account) writes no registry entry (imapapi.ids.MailboxRegistry caches it)
        def mailbox_no() -> int:
            return self.session.registry.number(server.uid_validity, path)
        first_events: list[dict] = []
        expected = stored.version if stored else None
        base = stored
        fetched: dict = {}   # uid -> {"emailId"?, "threadId"?} of the messages fetched below
        if plan in ("baseline", "reset"):
            full, fetched = self._fetch_all(server)
            flags = {uid: f for uid, (f, _ms) in full.items()}
            if plan == "reset":
                first_events.append(self.event(
                    "mailboxReset", path, {"path": path, "name": codec.leaf_name(path, self.delimiters.get(path)),
                                           "specialUse": special_use or False,
                                           "uidValidity": str(server.uid_validity),
                                           "prevUidValidity": str(stored.uid_validity)},
                    special_use, stored.uid_validity, server.uid_validity))
            # After a reset the folder's messages are announced again (a consumer drops what it
            # had under the old UIDVALIDITY); only an account's first look stays silent.
            changes = diff.Changes(new=[] if silent_baseline else sorted(flags))
            # A reset or silent baseline records everything now; a non-silent one adds the new
            # messages chunk by chunk below, exactly like a regular sync.
            index = {} if changes.new else dict(flags)
            base = state.FolderState(path=path, uid_validity=server.uid_validity,
                                     version=(stored.version if stored else 0), index=index)
            stored_ids = {}
        else:
            stored_ids = stored.ids
            if plan == "changedsince":
                changed, gone, fetched = imapio.fetch_flags(
                    self.client, changed_since=stored.highest_modseq, vanished=self.qresync,
                    id_items=self.id_items)
                changes = diff.diff_changed(stored.index, changed, gone)
                after = len(stored.index) + len(changes.new) - len(changes.deleted)
                if after != server.messages:
                    # No VANISHED (or a lost one): the UID list settles which messages are gone.
                    changes = diff.diff_changed(stored.index, changed, gone,
                                                all_uids=imapio.uid_search_all(self.client))
                flags = {uid: f for uid, (f, _ms) in changed.items()}
            else:
                full, fetched = self._fetch_all(server)
                flags = {uid: f for uid, (f, _ms) in full.items()}
                changes = diff.diff_full(stored.index, flags)
            for uid in changes.deleted:
                data = {"id": ids.encode_message_id(mailbox_no(), uid), "uid": uid}
                if stored_ids.get(uid):   # the server cannot tell any more: from the state
                    data["emailId"] = stored_ids[uid]
                first_events.append(self.event(
                    "messageDeleted", path, data, special_use, server.uid_validity, uid))
            for uid, added, deleted, modseq in changes.updated:
                delta = {}
                if added:
                    delta["added"] = added
                if deleted:
                    delta["deleted"] = deleted
                data = {"id": ids.encode_message_id(mailbox_no(), uid), "uid": uid}
                data.update(fetched.get(uid) or _stored_id(stored_ids, uid))
                data["changes"] = {"flags": delta}
                first_events.append(self.event(
                    "messageUpdated", path, data,
                    special_use, server.uid_validity, uid, modseq or f"v{stored.version}",
                    ",".join(added), ",".join(deleted)))
        # The first commit: deletions/updates/reset with their index changes; status stays old
        # until the last chunk, so a crash in between makes the next run redo the rest.
        # New messages join the index chunk by chunk below, with their events.
        index = diff.apply(base.index, dataclasses.replace(changes, new=[]), flags)
        known_ids = {**stored_ids, **{u: f["emailId"] for u, f in fetched.items() if "emailId" in f}}
        work = state.FolderState(path=path, uid_validity=base.uid_validity,
                                 uid_next=base.uid_next, messages=base.messages,
                                 highest_modseq=base.highest_modseq,
                                 version=base.version + 1, index=index,
                                 ids={u: known_ids[u] for u in index if u in known_ids})
        chunks = [changes.new[i:i + NEW_CHUNK] for i in range(0, len(changes.new), NEW_CHUNK)]
        if not chunks:
            self._finish(work, server)
            self._commit_state(first_events, work, expected)
            return bool(first_events)
        if first_events:
            self._commit_state(first_events, work, expected)
            expected, work.version = work.version, work.version + 1
        for n, chunk in enumerate(chunks):
            entries = new_message_entries(self.client, mailbox_no(), chunk, self.notify_settings)
            batch = []
            for uid in chunk:
                # gone between the two fetches: no event and not in the index either (its later
                # expunge must not be a messageDeleted for a message nobody was told about)
                if uid in entries:
                    # the flags this messageNew announces (its details FETCH came after the flag
                    # FETCH): a flag set in between is in the event, and must not come again
                    # as a messageUpdated against the older flags
                    shown = entries[uid].get("flags")
                    work.index[uid] = (diff.norm_flags(shown) if isinstance(shown, list)
                                       else flags.get(uid, frozenset()))
                    if entries[uid].get("emailId"):
                        work.ids[uid] = entries[uid]["emailId"]
                    batch.append(self.event("messageNew", path, entries[uid], special_use,
                                            server.uid_validity, uid))
            if n == len(chunks) - 1:
                self._finish(work, server)
            self._commit_state(batch, work, expected)
            expected, work.version = work.version, work.version + 1
        return True

    def _commit_state(self, events: list[dict], work: state.FolderState, expected) -> None:
        try:
            self.commit(events, [state.update_for(self.account, work, expected)])
        except Exception:
            self.cache.pop(work.path, None)
            raise
        # What Redis now holds, kept decoded: the next sync skips fetching and unpacking it.
        self.cache[work.path] = state.FolderState(
            path=work.path, uid_validity=work.uid_validity, uid_next=work.uid_next,
            messages=work.messages, highest_modseq=work.highest_modseq, version=work.version,
            index=dict(work.index), ids=dict(work.ids))

    @staticmethod
    def _finish(work: state.FolderState, server: diff.ServerStatus) -> None:
        work.uid_next, work.messages = server.uid_next, server.messages
        work.highest_modseq = server.highest_modseq

    def _fetch_all(self, server: diff.ServerStatus) -> tuple[dict, dict]:
        """-> ({uid: (flags, modseq)}, {uid: {"emailId"?, "threadId"?}}) of every message."""
        if not server.messages:
            return {}, {}
        out, _gone, fetched = imapio.fetch_flags(self.client, id_items=self.id_items)
        return out, fetched

