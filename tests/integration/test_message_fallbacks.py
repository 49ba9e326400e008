"""End to end: move/delete on servers without MOVE (and UIDPLUS), and upload as a reply/forward."""
from __future__ import annotations

import base64
import email
import re
import shutil
import tempfile
from email import policy

import pytest

from tests.fixtures.dovecot import Dovecot, capabilities_without
from tests.fixtures.services import CONNECT_TIMEOUT, Account, unique
from tests.integration.helpers import assert_error, message

pytestmark = pytest.mark.integration


# -- accounts on a Dovecot advertising fewer capabilities --------------------------------------
@pytest.fixture(scope="module", params=[("MOVE",), ("MOVE", "UIDPLUS")],
                ids=["no-MOVE", "no-MOVE-no-UIDPLUS"])
def limited(request):
    """A second Dovecot without the given capabilities, recording the commands it receives."""
    root = tempfile.mkdtemp(prefix="imapapi-dovecot-")
    server = Dovecot(root, capabilities=capabilities_without(*request.param), rawlog=True).start()
    server.omitted = set(request.param)
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def limited_account(api, stack, limited):
    user, password = unique("u"), unique("p")
    limited.add_user(user, password)
    payload = limited.account_payload(user, user, password)
    resp = api.post("/v1/account", json=payload)
    assert resp.status_code == 200, resp.text
    acc = Account(user, user, password, payload, limited)
    acc.state = stack.wait_state(user, "connected", timeout=CONNECT_TIMEOUT)
    yield acc
    api.delete(f"/v1/account/{user}", timeout=10)


def listing(api, acc, path="INBOX") -> dict[str, dict]:
    resp = api.get(f"/v1/account/{acc.id}/messages", params={"path": path, "pageSize": 1000})
    assert resp.status_code == 200, resp.text
    return {e["subject"]: e for e in resp.json()["messages"]}


def mailbox(acc, folder="INBOX") -> dict[str, set]:
    """What the server has, read directly: subject -> flags (without \\Recent)."""
    conn = acc.imap()
    try:
        conn.select_folder(folder, readonly=True)
        uids = conn.search(["ALL"])
        data = conn.fetch(uids, ["FLAGS", "BODY.PEEK[HEADER.FIELDS (SUBJECT)]"]) if uids else {}
    finally:
        conn.logout()
    out = {}
    for entry in data.values():
        header = entry[b"BODY[HEADER.FIELDS (SUBJECT)]"].decode().strip()
        out[header.partition(": ")[2]] = set(entry[b"FLAGS"]) - {b"\\Recent"}
    return out


def commands(server) -> list[str]:
    """Commands of every session on the server (only this test's account uses it), upper case."""
    return [line.upper() for line in server.commands_sent()]


def test_move_and_delete_without_move(api, limited, limited_account):
    acc = limited_account
    uidplus = "UIDPLUS" not in limited.omitted
    conn = acc.imap()
    for subject in ("mover", "soft-deleted", "keeper", "doomed", "trashed"):
        conn.append("INBOX", message(subject))
    # another client's soft delete: flagged \Deleted, waiting for ITS expunge, never ours
    conn.select_folder("INBOX")
    conn.add_flags(conn.search(["SUBJECT", "soft-deleted"]), [b"\\Deleted"])
    conn.logout()
    found = listing(api, acc)
    assert set(found) == {"mover", "soft-deleted", "keeper", "doomed", "trashed"}

    resp = api.put(f"/v1/account/{acc.id}/message/{found['mover']['id']}", json={"path": "Archive"})
    assert resp.status_code == 200, resp.text
    moved = resp.json()
    assert moved["path"] == "Archive" and moved["uid"] == 1
    assert mailbox(acc, "Archive") == {"mover": set()}
    assert api.get(f"/v1/account/{acc.id}/message/{moved['id']}").json()["subject"] == "mover"
    inbox = mailbox(acc)
    assert inbox["soft-deleted"] == {b"\\Deleted"}      # the other client's message is untouched
    assert inbox["keeper"] == set()
    if uidplus:
        assert "expunged" not in moved and "mover" not in inbox
    else:
        # no exact expunge without UIDPLUS: the original stays, flagged, and the answer says so
        assert moved["expunged"] is False and inbox["mover"] == {b"\\Deleted"}

    resp = api.delete(f"/v1/account/{acc.id}/message/{found['doomed']['id']}",
                      params={"force": "true"})
    assert resp.status_code == 200, resp.text
    resp_trash = api.delete(f"/v1/account/{acc.id}/message/{found['trashed']['id']}")
    assert resp_trash.status_code == 200, resp_trash.text
    trashed = resp_trash.json()
    assert trashed["moved"]["destination"] == "Trash"
    assert mailbox(acc, "Trash") == {"trashed": set()}
    inbox = mailbox(acc)
    assert inbox["soft-deleted"] == {b"\\Deleted"} and inbox["keeper"] == set()
    if uidplus:
        assert resp.json() == {"deleted": True} and "expunged" not in trashed
        assert set(inbox) == {"soft-deleted", "keeper"}
    else:
        assert resp.json() == {"deleted": True, "expunged": False}
        assert trashed["expunged"] is False
        assert inbox == {"soft-deleted": {b"\\Deleted"}, "keeper": set(), "mover": {b"\\Deleted"},
                         "doomed": {b"\\Deleted"}, "trashed": {b"\\Deleted"}}

    # the fallback really ran: the capability list decided, not the server's leniency
    sent = commands(limited)

    def count(pattern):   # whole command words: APPENDed literals ("mover") are lines too
        return sum(bool(re.fullmatch(pattern, c)) for c in sent)

    assert count(r"(UID )?MOVE .*") == 0, sent
    assert count(r"UID COPY .*") == 2, sent
    assert count(r"EXPUNGE") == 0, sent      # a plain EXPUNGE would take the soft-deleted one
    assert count(r"UID EXPUNGE .*") == (3 if uidplus else 0), sent


# -- upload as a reply / forward ---------------------------------------------------------------
def stored(acc, folder: str, uid: int):
    conn = acc.imap()
    try:
        conn.select_folder(folder, readonly=True)
        data = conn.fetch([uid], ["BODY.PEEK[]", "FLAGS"])[uid]
    finally:
        conn.logout()
    return email.message_from_bytes(data[b"BODY[]"], policy=policy.default), set(data[b"FLAGS"])


def flags_of(acc, folder, uid) -> set:
    conn = acc.imap()
    try:
        conn.select_folder(folder, readonly=True)
        return set(conn.get_flags([uid]).get(uid, ())) - {b"\\Recent"}
    finally:
        conn.logout()


PARENT = (b"From: Carol <carol@example.com>\r\nReply-To: Desk <desk@example.com>\r\n"
          b"To: Bob <bob@example.com>\r\nSubject: Quarterly numbers\r\n"
          b"Date: Mon, 04 Mar 2024 10:00:00 +0000\r\nMessage-ID: <parent@example.com>\r\n"
          b"In-Reply-To: <root@example.com>\r\nReferences: <root@example.com>\r\n"
          b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n"
          b"--b\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n"
          b"--b\r\nContent-Type: text/csv\r\nContent-Disposition: attachment; filename=q.csv\r\n"
          b"\r\na,b\r\n1,2\r\n--b--\r\n")


def test_upload_reply_and_forward_derive_headers_without_flagging(api, new_account):
    acc = new_account()
    acc.append(PARENT)
    parent = next(iter(listing(api, acc).values()))
    url = f"/v1/account/{acc.id}/message"
    base = {"path": "Drafts", "from": {"address": "bob@example.com"}, "text": "Sounds good\n"}

    resp = api.post(url, json={**base, "flags": ["\\Draft"],
                               "reference": {"message": parent["id"], "action": "reply"}})
    assert resp.status_code == 200, resp.text
    reply, flags = stored(acc, "Drafts", resp.json()["uid"])
    assert reply["In-Reply-To"] == "<parent@example.com>"
    assert reply["References"] == "<root@example.com> <parent@example.com>"
    assert reply["Subject"] == "Re: Quarterly numbers"
    assert reply["To"] == "Desk <desk@example.com>"       # Reply-To wins, as when sending
    assert flags - {b"\\Recent"} == {b"\\Draft"}

    resp = api.post(url, json={**base, "to": [{"address": "eve@example.com"}],
                               "subject": "FYI", "headers": {"References": "<spoof@x>"},
                               "reference": {"message": parent["id"], "action": "forward"}})
    assert resp.status_code == 200, resp.text
    fwd, _flags = stored(acc, "Drafts", resp.json()["uid"])
    assert fwd["Subject"] == "FYI" and fwd["In-Reply-To"] is None
    assert fwd["References"] == "<root@example.com> <parent@example.com>"
    assert [(p.get_filename(), p.get_payload(decode=True)) for p in fwd.iter_attachments()] == [
        ("q.csv", b"a,b\r\n1,2")]
    resp = api.post(url, json={**base, "to": [{"address": "eve@example.com"}], "reference": {
        "message": parent["id"], "action": "forward", "attachments": False}})
    fwd, _flags = stored(acc, "Drafts", resp.json()["uid"])
    assert fwd["Subject"] == "Fwd: Quarterly numbers" and list(fwd.iter_attachments()) == []

    # unlike the original, storing a reply does not mark the message answered
    assert flags_of(acc, "INBOX", parent["uid"]) == set()


def test_upload_with_missing_reference_is_404_and_stores_nothing(api, new_account):
    acc = new_account()
    acc.append(message("short-lived"))
    gone = next(iter(listing(api, acc).values()))
    conn = acc.imap()
    conn.select_folder("INBOX")
    conn.delete_messages([gone["uid"]])
    conn.expunge()
    conn.logout()
    url = f"/v1/account/{acc.id}/message"
    base = {"path": "Drafts", "from": {"address": "bob@example.com"}, "text": "hi"}
    for ref in ({"message": gone["id"]}, {"message": "AAAAAQAAAAE", "action": "forward"}):
        body = assert_error(api.post(url, json={**base, "reference": ref}), 404, "MessageNotFound")
        assert re.search("referenced", body["message"], re.I), body
    assert mailbox(acc, "Drafts") == {}
    raw = base64.b64encode(message("raw")).decode()
    assert_error(api.post(url, json={"path": "Drafts", "raw": raw,
                                     "reference": {"message": gone["id"]}}), 400)
    assert_error(api.post(url, json={**base, "reference": {"message": gone["id"],
                                                           "action": "answer"}}), 400)
