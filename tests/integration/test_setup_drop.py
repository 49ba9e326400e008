"""A folder deleted by another client while the sidecar's first sync after login reads it.

Dovecot ends a session whose selected folder is deleted ("IMAP session state is inconsistent",
"Mailbox was deleted under us"). When that happens during the sync that follows a login, the
account must reconnect within seconds and report no connection error: the server is up and the
credentials are good. (It was a connectError with the connect backoff doubling on each such drop
in a row: under folder churn an account went quiet for minutes.)

The feed (/changes) is read rather than webhooks: hundreds of messageNew webhooks delivered one
at a time would hide when the sidecar committed what.
"""
from __future__ import annotations

import signal
import time

import pytest

from .helpers import message

pytestmark = pytest.mark.integration

BIG = ("Big1", "Big2", "Big3")   # the first sync reads them one after the other, in this order
PER_FOLDER = 500                 # 10 commits of 50: the sync is still in the folder when we delete
RECOVER = 6.0                    # deletion -> mailboxDeleted; the old backoff waited 2, 4 then 8 s


class Feed:
    """The account's change feed as a consumer polls it."""

    def __init__(self, api, account):
        self.api, self.account, self.cursor, self.events = api, account, "0", []

    def wait(self, predicate, timeout: float):
        deadline = time.time() + timeout
        while True:
            while True:
                page = self.api.get(f"/v1/account/{self.account}/changes",
                                    params={"cursor": self.cursor, "limit": 1000}).json()
                self.events += page["events"]
                self.cursor = page["cursor"]
                if not page["hasMore"]:
                    break
            if predicate(self.events):
                return
            assert time.time() < deadline, [(e["event"], e.get("path")) for e in self.events[-5:]]
            time.sleep(0.05)

    def of(self, name, path=None):
        return [e for e in self.events if e["event"] == name and (path is None or e.get("path") == path)]


def test_folder_deleted_during_first_sync_reconnects_at_once(api, stack, dovecot, new_account):
    acc = new_account()
    feed = Feed(api, acc.id)
    other = acc.imap()
    for folder in BIG:
        other.create_folder(folder)
    feed.wait(lambda _ev: all(feed.of("mailboxNew", f) for f in BIG), 20)

    # While the sidecar is down the folders fill up: its first sync after login has work there.
    stack.kill("sidecar", signal.SIGTERM)
    for folder in BIG:
        other.multiappend(folder, [message(f"{folder} {i}") for i in range(PER_FOLDER)])
    stack.start("sidecar")

    recovered = []
    for folder in BIG:
        feed.wait(lambda _ev, f=folder: feed.of("messageNew", f), 90)   # the sync is in there
        other.delete_folder(folder)
        deleted_at = time.time()
        feed.wait(lambda _ev, f=folder: feed.of("mailboxDeleted", f), 60)
        recovered.append(round(time.time() - deleted_at, 1))
    probe = f"probe {time.time_ns()}"
    other.append("INBOX", message(probe))
    feed.wait(lambda _ev: [e for e in feed.of("messageNew", "INBOX")
                           if e["data"]["subject"] == probe], 10)
    other.logout()

    ended = [line for line in (dovecot.root / "dovecot.log").read_text().splitlines()
             if f"imap({acc.user})" in line and ("inconsistent" in line or "deleted under us" in line)]
    assert ended, "Dovecot ended no session under the sync: the test did not test"
    assert not feed.of("connectError"), feed.of("connectError")
    assert max(recovered) <= RECOVER, recovered
