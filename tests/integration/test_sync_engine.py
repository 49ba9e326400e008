"""SyncEngine against real Dovecot and Redis with reduced capability sets (the fallback paths).

Dovecot offers everything, so the engine is driven directly (no sidecar) with a session that
hides CONDSTORE/QRESYNC/LIST-STATUS/NOTIFY: the UID+FLAGS diff, UID SEARCH and STATUS sweep
paths must report the same changes as the QRESYNC path.
"""
from __future__ import annotations

import dataclasses
import json
import time
import uuid

import pytest

from imapapi import events, keys
from imapapi.ids import MailboxRegistry
from imapapi.settings import get_settings
from sidecar.sync.engine import SyncEngine

from .helpers import message

pytestmark = pytest.mark.integration

FULL = {"IMAP4REV1", "IDLE", "CONDSTORE", "QRESYNC", "LIST-STATUS", "NOTIFY", "SPECIAL-USE"}
CAPS = {
    "qresync": FULL,
    "condstore-only": FULL - {"QRESYNC", "NOTIFY"},
    "plain": {"IMAP4REV1", "IDLE", "SPECIAL-USE"},
}


class Session:
    """The attributes sidecar.hooks documents, nothing more."""

    def __init__(self, account, client, caps, redis):
        self.account, self.client, self.capabilities, self.redis = account, client, caps, redis
        self.registry = MailboxRegistry(redis, account)
        self.record = {}
        self.next_tick = 0.0


def feed(redis, account):
    evs, _ = events.read_events(redis, account, None, 1000)
    return [(e["event"], e.get("path"), e["data"].get("uid"), e["data"].get("subject"),
             (e["data"].get("changes") or {}).get("flags")) for e in evs]


@pytest.mark.parametrize("mode", sorted(CAPS))
def test_fallback_paths_report_the_same_changes(mode, dovecot, redis):
    user, pw = f"eng{uuid.uuid4().hex[:10]}", "pw12345"
    dovecot.add_user(user, pw)
    other = dovecot.client(user, pw)
    other.create_folder("Work")
    other.append("INBOX", message("old"))
    other.append("INBOX", message("gone"))
    # a receiver that is never called (no worker here): the commit registers webhook jobs
    redis.hset(keys.account(user), mapping={"account": user, "webhooks": '"http://127.0.0.1:9/"'})
    client = dovecot.client(user, pw)
    client.folder_encode, client.normalise_times = False, False
    session = Session(user, client, set(CAPS[mode]), redis)
    # sweeps only where the test asks for one (the default comes every few seconds)
    session.settings = dataclasses.replace(get_settings(), status_sweep=3600.0)
    engine = SyncEngine()
    engine.on_connected(session)
    first = feed(redis, user)
    assert not [e for e in first if e[0] == "messageNew"], "existing mail is not new"
    # the first look's mailboxNew are webhooks (as the original's), not feed entries
    assert not [e for e in first if e[0] == "mailboxNew"], first
    jobs = [json.loads(v)["event"] for v in redis.hvals(events.JOBS)]
    assert ("mailboxNew", "Work") in [(j["event"], j.get("path")) for j in jobs
                                      if j["account"] == user]
    redis.delete(keys.events(user))

    other.select_folder("INBOX")
    old_uid, gone_uid = sorted(other.search(["ALL"]))
    other.append("INBOX", message("fresh"))
    other.append("Work", message("work mail"))
    other.add_flags([old_uid], [b"\\Flagged"])
    other.select_folder("Work")
    other.add_flags(other.search(["ALL"]), [b"\\Seen"])
    other.select_folder("INBOX")
    other.delete_messages([gone_uid])
    other.expunge()
    other.create_folder("Later")
    time.sleep(0.2)
    session.sync_ctx.sweep_at = 0   # as if the sweep were due
    engine.on_tick(session)         # the sweep: every mode must catch all of it
    got = feed(redis, user)
    assert ("messageUpdated", "INBOX", old_uid, None, {"added": ["\\Flagged"]}) in got
    assert ("messageDeleted", "INBOX", gone_uid, None, None) in got
    assert ("mailboxNew", "Later", None, None, None) in got
    work_new = [e for e in got if e[0] == "messageNew" and e[1] == "Work"]
    assert [e[3] for e in work_new] == ["work mail"]
    assert [e[3] for e in got if e[0] == "messageNew" and e[1] == "INBOX"] == ["fresh"]
    # idle folder selected again for IDLE
    assert client.folder_status("INBOX", ["MESSAGES"])
    redis.delete(keys.events(user))
    session.sync_ctx.sweep_at = 0
    engine.on_tick(session)
    assert feed(redis, user) == [], "nothing changed: nothing reported"
    # a push noted while idling is handled by the tick the engine asks for at once
    other.append("Work", message("pushed"))
    engine.on_idle_responses(session, [(b"STATUS", b"Work", (b"MESSAGES", 2))])
    assert session.next_tick == 0.0
    engine.on_tick(session)
    assert [e[3] for e in feed(redis, user) if e[0] == "messageNew"] == ["pushed"]
    assert session.next_tick > time.time()
