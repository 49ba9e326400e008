"""End to end (issue 2): mailboxes and message listing through API -> Celery -> sidecar -> Dovecot."""
from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import pytest

from imapapi.ids import decode_message_id
from tests.checks import assert_error
from tests.integration.helpers import message

pytestmark = pytest.mark.integration

SUBJECT_2047 = "=?UTF-8?B?w5xiZXIgR3LDvMOfZQ==?="           # "Über Grüße"
FROM_2047 = "=?ISO-8859-1?Q?J=F6rg_M=FCller?= <joerg@example.com>"   # "Jörg Müller"


def plant(acc, count: int, folder: str = "INBOX", seen: set[int] = frozenset()):
    """Append `count` messages with increasing dates over one direct connection."""
    base = datetime(2024, 1, 1, tzinfo=timezone.utc)
    conn = acc.imap()
    try:
        for i in range(count):
            raw = message(f"Message {i}", when=base + timedelta(hours=i),
                          msgid=f"<m{i}.{acc.id}@test.example>")
            conn.append(folder, raw, flags=(b"\\Seen",) if i in seen else ())
    finally:
        conn.logout()


def listing(api, acc, **params):
    resp = api.get(f"/v1/account/{acc.id}/messages", params={"path": "INBOX", **params})
    assert resp.status_code == 200, resp.text
    return resp.json()


# -- mailboxes ----------------------------------------------------------------------------------
def test_mailboxes_list_special_use_and_decoded_names_with_counts(api, new_account):
    acc = new_account()
    conn = acc.imap()
    try:
        conn.create_folder("Ärger")               # imapclient sends modified UTF-7 (&AMQ-rger)
        conn.create_folder("Projects/2024")
    finally:
        conn.logout()
    plant(acc, 3, seen={0})

    # New mail reaches the sidecar's session through IDLE; allow it a moment to be counted.
    deadline = time.monotonic() + 3
    while True:
        resp = api.get(f"/v1/account/{acc.id}/mailboxes", params={"counters": "true"})
        assert resp.status_code == 200, resp.text
        boxes = {m["path"]: m for m in resp.json()["mailboxes"]}
        if boxes.get("INBOX", {}).get("messages") == 3 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    # As the original: `path` is exactly as the server lists it (modified UTF-7), `name` is decoded.
    assert {"INBOX", "Sent", "Trash", "Drafts", "Junk", "Archive", "&AMQ-rger", "Projects/2024"} <= set(boxes)
    for name in ("Sent", "Trash", "Drafts", "Junk", "Archive"):
        assert boxes[name]["specialUse"] == "\\" + name, boxes[name]
        assert boxes[name]["subscribed"] is True
    assert boxes["&AMQ-rger"]["name"] == "Ärger"
    assert boxes["Projects/2024"]["name"] == "2024" and boxes["Projects/2024"]["delimiter"] == "/"
    assert boxes["INBOX"]["messages"] == 3 and boxes["INBOX"]["unseen"] == 2, boxes["INBOX"]
    assert boxes["Sent"]["messages"] == 0


# -- messages -----------------------------------------------------------------------------------
def test_messages_newest_first_with_paging(api, new_account):
    acc = new_account()
    plant(acc, 25, seen={24})
    first = listing(api, acc, pageSize=10)
    assert (first["total"], first["pages"], first["page"]) == (25, 3, 0)
    assert [m["subject"] for m in first["messages"]] == [f"Message {i}" for i in range(24, 14, -1)]
    top = first["messages"][0]
    assert top["unseen"] is False and "\\Seen" in top["flags"]
    assert first["messages"][1]["unseen"] is True
    assert top["messageId"] == f"<m24.{acc.id}@test.example>"
    assert top["from"] == {"name": "Alice", "address": "alice@example.com"}
    assert top["to"] == [{"name": "Bob", "address": "bob@example.com"}]
    assert top["size"] > 0 and top["date"].startswith("2024-01-02")

    last = listing(api, acc, pageSize=10, page=2)
    assert [m["subject"] for m in last["messages"]] == [f"Message {i}" for i in range(4, -1, -1)]
    # As the original: a page past the end is clamped to the last page.
    clamped = listing(api, acc, pageSize=10, page=7)
    assert clamped["page"] == 2 and clamped["messages"] == last["messages"]

    # Ids are opaque but decode to (mailbox number, uid) and are stable between calls.
    again = listing(api, acc, pageSize=10)
    assert [m["id"] for m in again["messages"]] == [m["id"] for m in first["messages"]]
    assert decode_message_id(top["id"])[1] == top["uid"]


def test_messages_decode_rfc2047_headers(api, new_account):
    acc = new_account()
    acc.append(message(SUBJECT_2047, sender=FROM_2047,
                       to="=?UTF-8?Q?Ren=C3=A9e?= <renee@example.com>, plain@example.com",
                       cc="Carol <carol@example.com>", in_reply_to="<parent@test.example>"))
    entry = listing(api, acc)["messages"][0]
    assert entry["subject"] == "Über Grüße"
    assert entry["from"] == {"name": "Jörg Müller", "address": "joerg@example.com"}
    assert entry["to"][0] == {"name": "Renée", "address": "renee@example.com"}
    assert entry["to"][1]["address"] == "plain@example.com"
    assert entry["cc"] == [{"name": "Carol", "address": "carol@example.com"}]
    assert entry["inReplyTo"] == "<parent@test.example>"


def test_messages_in_non_ascii_folder(api, new_account):
    acc = new_account()
    conn = acc.imap()
    try:
        conn.create_folder("Ärger")
    finally:
        conn.logout()
    acc.append(message("in folder"), folder="Ärger")
    # The path as listed by GET /mailboxes works for the listing.
    resp = api.get(f"/v1/account/{acc.id}/messages", params={"path": "&AMQ-rger"})
    assert resp.status_code == 200, resp.text
    assert [m["subject"] for m in resp.json()["messages"]] == ["in folder"]


def test_unknown_folder_is_404_naming_path(api, new_account):
    acc = new_account()
    body = assert_error(api.get(f"/v1/account/{acc.id}/messages", params={"path": "NoSuchFolder"}), 404)
    assert "NoSuchFolder" in json.dumps(body), body


@pytest.mark.parametrize("size", [0, 1001, "abc"])
def test_bad_page_size_is_400_naming_page_size(api, new_account, size):
    acc = new_account()
    body = assert_error(api.get(f"/v1/account/{acc.id}/messages",
                                params={"path": "INBOX", "pageSize": size}), 400)
    assert any(f["key"] == "pageSize" for f in body["fields"]), body


def test_page_size_bounds_accepted_and_empty_folder(api, new_account):
    acc = new_account()
    empty = listing(api, acc)
    assert (empty["page"], empty["pages"], empty["messages"]) == (0, 1, [])
    plant(acc, 2)
    assert len(listing(api, acc, pageSize=1)["messages"]) == 1
    assert listing(api, acc, pageSize=1000)["total"] == 2


# -- failures of the path -----------------------------------------------------------------------
def test_sidecar_killed_gives_json_503_or_504_then_recovers(api, stack, new_account):
    acc = new_account()
    plant(acc, 2)
    ids = [m["id"] for m in listing(api, acc)["messages"]]
    stack.kill("sidecar")
    try:
        for _ in range(3):
            started = time.monotonic()
            resp = api.get(f"/v1/account/{acc.id}/messages", params={"path": "INBOX"}, timeout=30)
            elapsed = time.monotonic() - started
            assert resp.status_code in (503, 504), resp.text
            assert_error(resp, resp.status_code)
            # COMMAND_TIMEOUT is 5 s in the test stack; a little slack for the Celery hop.
            assert elapsed < 9, elapsed
    finally:
        stack.start("sidecar")
    stack.wait_state(acc.id, "connected", timeout=30)
    deadline = time.monotonic() + 30
    while True:
        resp = api.get(f"/v1/account/{acc.id}/messages", params={"path": "INBOX"})
        if resp.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert resp.status_code == 200, resp.text
    assert [m["id"] for m in resp.json()["messages"]] == ids     # ids survive the restart


# -- service endpoints --------------------------------------------------------------------------
def test_health_openapi_docs_metrics(api):
    health = api.get("/health")
    assert health.status_code == 200, health.text
    spec = api.get("/openapi.json")
    assert spec.status_code == 200
    paths = spec.json()["paths"]
    assert "/v1/accounts" in paths and "/v1/account" in paths
    assert any(p.endswith("/messages") for p in paths) and any(p.endswith("/mailboxes") for p in paths)
    docs = api.get("/docs")
    assert docs.status_code == 200 and "html" in docs.headers["content-type"]
    metrics = api.get("/metrics")
    assert metrics.status_code == 200 and "# TYPE" in metrics.text
