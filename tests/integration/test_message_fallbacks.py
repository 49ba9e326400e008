"""End to end: message ops on Dovecots advertising no MOVE, no UIDPLUS or no CONDSTORE."""
from __future__ import annotations

import re
import shutil
import tempfile

import pytest

from tests.fixtures.dovecot import Dovecot, capabilities_without
from tests.fixtures.services import CONNECT_TIMEOUT, Account, unique
from tests.checks import assert_error
from tests.integration.helpers import message

pytestmark = pytest.mark.integration


# -- accounts on a Dovecot advertising fewer capabilities --------------------------------------
@pytest.fixture(scope="module", params=[("MOVE",), ("MOVE", "UIDPLUS"),
                                        ("MOVE", "UIDPLUS", "CONDSTORE", "QRESYNC")],
                ids=["no-MOVE", "no-MOVE-UIDPLUS", "no-MOVE-UIDPLUS-CONDSTORE"])
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


def test_condstore_features_only_where_advertised(api, limited, limited_account):
    acc = limited_account
    acc.append(message("one"))
    url = f"/v1/account/{acc.id}/search"
    resp = api.post(url, params={"path": "INBOX"}, json={"search": {"modseq": 1}})
    if "CONDSTORE" in limited.omitted:
        body = assert_error(resp, 400, "NotSupported")
        assert body["fields"][0]["key"] == "search.modseq"
    else:
        assert resp.status_code == 200, resp.text
        assert [m["subject"] for m in resp.json()["messages"]] == ["one"]
    resp = api.get(f"/v1/account/{acc.id}/mailboxes", params={"counters": "true"})
    assert resp.status_code == 200, resp.text
    inbox = next(m for m in resp.json()["mailboxes"] if m["path"] == "INBOX")
    assert {"uidNext", "uidValidity"} <= set(inbox), inbox
    assert ("highestModseq" in inbox) == ("CONDSTORE" not in limited.omitted), inbox
    # nothing (search, counters, change detection) may ask a server for what it did not offer
    sent = " ".join(commands(limited))
    assert ("MODSEQ" in sent) == ("CONDSTORE" not in limited.omitted), sent
