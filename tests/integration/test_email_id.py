"""emailId: the same id in listings, details and every message event, so a consumer sees a MOVE.

Dovecot 2.3 has no OBJECTID (RFC 8474): the id comes from X-GUID (sidecar/imap/objectid.py).
With `sidecar.emailId = false` (the last test) the field is absent and everything else works.
"""
from __future__ import annotations

import re
import signal

import pytest

from .helpers import message
from tests.fixtures.services import unique

pytestmark = pytest.mark.integration

WAIT = 20.0
HEX16 = re.compile(r"^[0-9a-f]{16}$")


def of(events, name, path=None, subject=None, uid=None):
    return [e for e in events if e["event"] == name and (path is None or e.get("path") == path)
            and (subject is None or e["data"].get("subject") == subject)
            and (uid is None or e["data"].get("uid") == uid)]


def listing(api, account, path):
    resp = api.get(f"/v1/account/{account}/messages", params={"path": path})
    assert resp.status_code == 200, resp.text
    return {m["subject"]: m for m in resp.json()["messages"]}


def registered_with_mail(dovecot, new_account, receiver_url):
    """An account whose INBOX held a message before it was added (the silent first look)."""
    user, password = unique("u"), unique("p")
    dovecot.add_user(user, password)
    dovecot.append(user, password, "INBOX", message("old one"))
    acc = new_account(imap={"auth": {"user": user, "pass": password}}, webhooks=receiver_url)
    acc.user, acc.password = user, password
    return acc


def move_by_other_client(acc, subjects, target="Archive"):
    other = acc.imap()
    try:
        other.select_folder("INBOX")
        uids = [u for s in subjects for u in other.search(["SUBJECT", s])]
        other.move(uids, target)
    finally:
        other.logout()


def test_moved_message_keeps_its_email_id(api, dovecot, new_account, webhook_receiver):
    name = unique("r")
    acc = registered_with_mail(dovecot, new_account, webhook_receiver.url(name))
    before = listing(api, acc.id, "INBOX")["old one"]
    old_id = before["emailId"]
    assert HEX16.match(old_id)
    details = api.get(f"/v1/account/{acc.id}/message/{before['id']}").json()
    assert details["emailId"] == old_id and "threadId" not in details   # X-GUID gives no thread

    acc.append(message("new one"))
    new = webhook_receiver.wait_for(lambda ev: of(ev, "messageNew", "INBOX", "new one"), WAIT, name)
    new_id = new[0]["data"]["emailId"]
    assert HEX16.match(new_id) and new_id != old_id
    assert listing(api, acc.id, "INBOX")["new one"]["emailId"] == new_id

    # Another IMAP client moves both: one known from the first look, one announced since.
    move_by_other_client(acc, ["old one", "new one"])
    arrived = webhook_receiver.wait_for(
        lambda ev: len(of(ev, "messageNew", "Archive")) == 2 and
        len(of(ev, "messageDeleted", "INBOX")) == 2 and ev, WAIT, name)
    deleted = {e["data"]["uid"]: e["data"].get("emailId") for e in of(arrived, "messageDeleted")}
    assert deleted == {before["uid"]: old_id, new[0]["data"]["uid"]: new_id}
    moved = {e["data"]["subject"]: e["data"].get("emailId") for e in of(arrived, "messageNew", "Archive")}
    assert moved == {"old one": old_id, "new one": new_id}
    archive = listing(api, acc.id, "Archive")
    assert {s: m["emailId"] for s, m in archive.items()} == moved

    # A flag change in the new folder names the same message too.
    other = acc.imap()
    other.select_folder("Archive")
    other.add_flags([archive["old one"]["uid"]], [b"\\Flagged"])
    other.logout()
    upd = webhook_receiver.wait_for(lambda ev: of(ev, "messageUpdated", "Archive"), WAIT, name)
    assert upd[0]["data"]["emailId"] == old_id
    assert upd[0]["data"]["changes"]["flags"] == {"added": ["\\Flagged"]}


@pytest.fixture
def email_ids_off(stack):
    """The sidecar with sidecar.emailId = false, restored afterwards."""
    def restart(value):
        stack.kill("sidecar", signal.SIGTERM)
        if value is None:
            stack.env.pop("SIDECAR_EMAIL_ID", None)
        else:
            stack.env["SIDECAR_EMAIL_ID"] = value
        stack.start("sidecar")

    old = stack.env.get("SIDECAR_EMAIL_ID")
    restart("false")
    yield
    restart(old)


def test_without_email_ids_nothing_breaks(email_ids_off, api, dovecot, new_account,
                                          webhook_receiver):
    name = unique("r")
    acc = registered_with_mail(dovecot, new_account, webhook_receiver.url(name))
    before = listing(api, acc.id, "INBOX")["old one"]
    details = api.get(f"/v1/account/{acc.id}/message/{before['id']}").json()
    assert "emailId" not in before and "emailId" not in details
    assert details["subject"] == "old one"
    acc.append(message("new one"))
    new = webhook_receiver.wait_for(lambda ev: of(ev, "messageNew", "INBOX", "new one"), WAIT, name)
    move_by_other_client(acc, ["old one", "new one"])
    arrived = webhook_receiver.wait_for(
        lambda ev: len(of(ev, "messageNew", "Archive")) == 2 and
        len(of(ev, "messageDeleted", "INBOX")) == 2 and ev, WAIT, name)
    message_events = of(arrived, "messageNew") + of(arrived, "messageDeleted")
    assert {e["data"]["uid"] for e in of(arrived, "messageDeleted")} == {
        before["uid"], new[0]["data"]["uid"]}
    assert not [e for e in message_events if "emailId" in e["data"]]
    assert "emailId" not in listing(api, acc.id, "Archive")["old one"]
