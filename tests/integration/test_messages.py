"""End to end (issue 3): message details, text, source, attachments, flags, move, delete, search,
upload and folder changes through API -> Celery -> sidecar -> Dovecot, on a generated corpus."""
from __future__ import annotations

import base64
import email
import re
import threading
import time
from email import policy

import pytest

from tests.fixtures import corpus
from tests.checks import assert_error
from tests.integration.helpers import flags_of, message

pytestmark = pytest.mark.integration


def entries(api, acc, path="INBOX", **params) -> list[dict]:
    resp = api.get(f"/v1/account/{acc.id}/messages", params={"path": path, "pageSize": 1000, **params})
    assert resp.status_code == 200, resp.text
    return resp.json()["messages"]


def by_message_id(api, acc, path="INBOX") -> dict[str, dict]:
    return {e.get("messageId"): e for e in entries(api, acc, path)}


def plant(acc, samples, folder="INBOX"):
    conn = acc.imap()
    try:
        for sample in samples:
            conn.append(folder, sample.raw)
    finally:
        conn.logout()


def direct_fetch(acc, folder, uid, item: str):
    conn = acc.imap()
    try:
        conn.select_folder(folder, readonly=True)
        data = conn.fetch([uid], [item])[uid]
        return next(v for k, v in data.items() if k.startswith(item.replace(".PEEK", "").split("<")[0].encode()))
    finally:
        conn.logout()


@pytest.fixture
def corpus_account(api, new_account):
    acc = new_account()
    samples = corpus.small_set()
    plant(acc, samples)
    found = by_message_id(api, acc)
    return acc, {s.name: (s, found[s.message_id]) for s in samples}


# -- details and text ---------------------------------------------------------------------------
def test_details_and_text_of_every_corpus_message(api, corpus_account):
    acc, items = corpus_account
    for name, (sample, entry) in items.items():
        resp = api.get(f"/v1/account/{acc.id}/message/{entry['id']}", params={"textType": "*"})
        assert resp.status_code == 200, (name, resp.text)
        body = resp.json()
        assert body["subject"] == sample.subject, name
        assert body["from"] == {"name": "Jüri Mägi", "address": "juri@example.com"}
        assert body["to"][0] == {"name": "Анна Каренина", "address": "anna@example.com"}
        assert body["messageId"] == sample.message_id
        assert body["headers"]["subject"] == [sample.subject]
        assert body["size"] == len(sample.raw)
        assert body["text"]["plain"] == (sample.plain or ""), name
        if sample.html:
            assert body["text"]["html"] == sample.html, name
        assert body["text"]["hasMore"] is False
        got = [(a["filename"], a["contentType"]) for a in body.get("attachments", [])]
        assert got == [(a.filename, a.content_type) for a in sample.attachments], name
        # the text route gives the same text through the text id
        resp = api.get(f"/v1/account/{acc.id}/text/{body['text']['id']}", params={"textType": "plain"})
        assert resp.status_code == 200 and resp.json() == {"plain": sample.plain or "", "hasMore": False}


def test_forwarded_message_text_is_not_merged_and_it_is_one_attachment(api, corpus_account):
    acc, items = corpus_account
    sample, entry = items["forwarded"]
    assert [a["contentType"] for a in entry["attachments"]] == ["message/rfc822"]
    assert set(entry["text"]["encodedSize"]) == {"plain"}
    resp = api.get(f"/v1/account/{acc.id}/text/{entry['text']['id']}")
    assert resp.json() == {"plain": sample.plain, "hasMore": False}
    # the attached message downloads as the part's bytes, as the server has them
    att = entry["attachments"][0]
    resp = api.get(f"/v1/account/{acc.id}/attachment/{att['id']}")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("message/rfc822")
    assert resp.content == bytes(direct_fetch(acc, "INBOX", entry["uid"], "BODY.PEEK[2]"))


def test_nested_parts_embedded_image_and_rfc2231_attachment(api, corpus_account):
    acc, items = corpus_account
    sample, entry = items["nested_mixed"]
    png, pdf = entry["attachments"]
    assert (png["embedded"], png["inline"], png["contentId"]) == (True, True, "<logo@corpus>")
    assert (pdf["embedded"], pdf["inline"]) == (False, False)
    for att, expected in zip((png, pdf), sample.attachments):
        resp = api.get(f"/v1/account/{acc.id}/attachment/{att['id']}")
        assert resp.status_code == 200
        assert resp.content == expected.data
        assert resp.headers["Content-Type"] == expected.content_type
    disposition = api.get(f"/v1/account/{acc.id}/attachment/{pdf['id']}").headers["Content-Disposition"]
    assert "filename*=UTF-8''%C3%9Cbersicht%202024%20%E2%80%93%20%E6%97%A5%E6%9C%AC.pdf" in disposition
    assert disposition.startswith('attachment; filename="')


def test_text_caps_in_utf8_bytes(api, corpus_account):
    acc, items = corpus_account
    sample, entry = items["cyrillic_1251"]
    resp = api.get(f"/v1/account/{acc.id}/text/{entry['text']['id']}",
                   params={"textType": "plain", "maxBytes": 101})
    body = resp.json()
    assert body["hasMore"] is True
    assert len(body["plain"].encode()) <= 101 and len(body["plain"].encode()) >= 99
    assert sample.plain.startswith(body["plain"])
    resp = api.get(f"/v1/account/{acc.id}/message/{entry['id']}",
                   params={"textType": "plain", "maxBytes": 12})
    assert resp.json()["text"]["plain"] == "Привет" and resp.json()["text"]["hasMore"] is True


def test_source_is_byte_identical(api, corpus_account):
    acc, items = corpus_account
    sample, entry = items["shift_jis"]
    resp = api.get(f"/v1/account/{acc.id}/message/{entry['id']}/source")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "message/rfc822"
    assert resp.content == sample.raw


def test_bad_and_stale_ids(api, new_account):
    acc = new_account()
    for bad in ("!!", "AAAA", "AAAAAAAAAAA", "x" * 300):
        assert_error(api.get(f"/v1/account/{acc.id}/message/{bad}"), 404)
        assert_error(api.get(f"/v1/account/{acc.id}/message/{bad}/source"), 404)
    assert_error(api.get(f"/v1/account/{acc.id}/attachment/AAAAAQAAAAE"), 404, "AttachmentNotFound")
    assert_error(api.get(f"/v1/account/{acc.id}/text/AAAAAQAAAAE"), 404)
    # a folder recreated under the same name gets a new UIDVALIDITY: the old id must not resolve
    conn = acc.imap()
    conn.create_folder("Tmp")
    conn.append("Tmp", message("first"))
    old = entries(api, acc, "Tmp")[0]
    conn.delete_folder("Tmp")
    conn.create_folder("Tmp")
    conn.append("Tmp", message("second"))
    conn.logout()
    assert entries(api, acc, "Tmp")[0]["uid"] == old["uid"]
    assert_error(api.get(f"/v1/account/{acc.id}/message/{old['id']}"), 404, "MessageNotFound")
    assert_error(api.put(f"/v1/account/{acc.id}/message/{old['id']}", json={"flags": {"add": ["\\Seen"]}}), 404)


# -- flags, move, delete ------------------------------------------------------------------------
def test_flags_move_and_delete(api, new_account):
    acc = new_account()
    plant(acc, [corpus.plain_latin1(), corpus.alternative()])
    first, second = entries(api, acc)
    url = f"/v1/account/{acc.id}/message/{first['id']}"
    resp = api.put(url, json={"flags": {"add": ["\\Seen", "\\Flagged", "$Label1"]}})
    assert resp.status_code == 200 and resp.json() == {"flags": {"add": True}}
    assert flags_of(acc, "INBOX", first["uid"]) == {b"\\Seen", b"\\Flagged", b"$Label1"}
    api.put(url, json={"flags": {"delete": ["\\Flagged"]}})
    assert flags_of(acc, "INBOX", first["uid"]) == {b"\\Seen", b"$Label1"}
    api.put(url, json={"flags": {"set": ["\\Answered"], "add": ["\\Draft"]}})
    assert flags_of(acc, "INBOX", first["uid"]) == {b"\\Answered"}
    for bad in (["two words"], ["(x"], ["a]"], ["\\"], [""]):
        assert_error(api.put(url, json={"flags": {"add": bad}}), 400)
    assert_error(api.put(url, json={"path": "No/Such/Folder"}), 404, "MailboxNotFound")

    resp = api.post(f"/v1/account/{acc.id}/mailbox", json={"path": ["Archive", "2024"]})
    assert resp.json() == {"path": "Archive/2024", "created": True}
    resp = api.put(url, json={"path": "Archive/2024", "flags": {"add": ["\\Seen"]}})
    assert resp.status_code == 200, resp.text
    moved = resp.json()
    assert moved["path"] == "Archive/2024" and moved["uid"] == 1
    assert [e["id"] for e in entries(api, acc)] == [second["id"]]
    assert entries(api, acc, "Archive/2024")[0]["id"] == moved["id"]

    # delete: to Trash first, then inside Trash expunge only that message
    resp = api.delete(f"/v1/account/{acc.id}/message/{second['id']}")
    assert resp.status_code == 200, resp.text
    trashed = resp.json()["moved"]
    assert trashed["destination"] == "Trash"
    assert entries(api, acc) == []
    conn = acc.imap()
    conn.select_folder("Trash")
    conn.append("Trash", message("keep me"))
    conn.logout()
    resp = api.delete(f"/v1/account/{acc.id}/message/{trashed['messageId']}")
    assert resp.json() == {"deleted": True}
    assert [e["subject"] for e in entries(api, acc, "Trash")] == ["keep me"]
    resp = api.delete(f"/v1/account/{acc.id}/message/{moved['id']}", params={"force": "true"})
    assert resp.json() == {"deleted": True}
    assert entries(api, acc, "Archive/2024") == []


# -- search -------------------------------------------------------------------------------------
def test_search_criteria_paging_and_bad_input(api, new_account):
    acc = new_account()
    conn = acc.imap()
    for i in range(7):
        conn.append("INBOX", message(f"Report {i}" if i % 2 else f"Note {i}",
                                     sender="Zed <zed@example.com>" if i < 3 else "Amy <amy@example.com>"),
                    flags=(b"\\Seen",) if i == 6 else ())
    conn.logout()
    url = f"/v1/account/{acc.id}/search"
    resp = api.post(url, params={"path": "inbox", "pageSize": 2}, json={"search": {"subject": "Report"}})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["total"], body["pages"], body["page"]) == (3, 2, 0)
    assert [m["subject"] for m in body["messages"]] == ["Report 5", "Report 3"]
    body = api.post(url, params={"path": "INBOX", "pageSize": 2, "page": 9},
                    json={"search": {"subject": "Report"}}).json()
    assert body["page"] == 1 and [m["subject"] for m in body["messages"]] == ["Report 1"]
    body = api.post(url, params={"path": "INBOX"}, json={"search": {"from": "zed", "unseen": True}}).json()
    assert [m["subject"] for m in body["messages"]] == ["Note 2", "Report 1", "Note 0"]
    body = api.post(url, params={"path": "INBOX"}, json={"search": {"seen": True}}).json()
    assert [m["subject"] for m in body["messages"]] == ["Note 6"]
    body = api.post(url, params={"path": "INBOX"}, json={"search": {"uid": "2:3", "header": {"X-Nope": True}}}).json()
    assert body["messages"] == []
    assert_error(api.post(url, params={"path": "INBOX", "pageSize": 0}, json={"search": {}}), 400)
    assert_error(api.post(url, params={"path": "INBOX", "pageSize": 1001}, json={"search": {}}), 400)
    assert_error(api.post(url, params={"path": "INBOX"}, json={"search": {"bogus": 1}}), 400)
    assert_error(api.post(url, params={"path": "INBOX"}, json={}), 400)
    body = assert_error(api.post(url, params={"path": "Nope"}, json={"search": {}}), 404, "MailboxNotFound")
    assert body["path"] == "Nope"


# -- upload and folders -------------------------------------------------------------------------
def test_upload_raw_and_structured(api, new_account):
    acc = new_account()
    sample = corpus.nested_mixed()
    url = f"/v1/account/{acc.id}/message"
    resp = api.post(url, json={"path": "Drafts", "flags": ["\\Draft", "\\Seen"],
                               "raw": base64.b64encode(sample.raw).decode()})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["path"] == "Drafts" and body["uid"] == 1 and body["uidValidity"]
    assert bytes(direct_fetch(acc, "Drafts", 1, "BODY.PEEK[]")) == sample.raw
    assert flags_of(acc, "Drafts", 1) == {b"\\Draft", b"\\Seen"}
    assert entries(api, acc, "Drafts")[0]["id"] == body["id"]

    resp = api.post(url, json={"path": "Drafts", "from": {"name": "Ülle", "address": "ulle@example.com"},
                               "to": [{"address": "bob@example.com"}], "subject": "Structured ✓",
                               "text": "Hello\n", "attachments": [
                                   {"filename": "a.txt", "content": base64.b64encode(b"abc").decode()}]})
    assert resp.status_code == 200, resp.text
    raw = bytes(direct_fetch(acc, "Drafts", resp.json()["uid"], "BODY.PEEK[]"))
    msg = email.message_from_bytes(raw, policy=policy.default)
    assert msg["Subject"] == "Structured ✓" and msg.get_body(("plain",)).get_content().replace("\r\n", "\n") == "Hello\n"
    assert_error(api.post(url, json={"path": "Nope", "raw": base64.b64encode(sample.raw).decode()}), 404)
    assert_error(api.post(url, json={"path": "INBOX", "raw": "***"}), 400)
    assert_error(api.post(url, json={"path": "INBOX", "raw": "YQ==", "flags": ["a b"]}), 400)


def test_mailbox_create_rename_delete(api, new_account):
    acc = new_account()
    url = f"/v1/account/{acc.id}/mailbox"
    assert api.post(url, json={"path": ["Projekte", "Übersicht"]}).json() == {
        "path": "Projekte/&ANw-bersicht", "created": True}
    assert api.post(url, json={"path": ["Projekte", "Übersicht"]}).json()["created"] is False
    resp = api.put(url, json={"path": "Projekte/Übersicht", "newPath": ["Projekte", "Alt"]})
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"path": "Projekte/&ANw-bersicht", "newPath": "Projekte/Alt", "renamed": True}
    conn = acc.imap()
    names = {n for _f, _d, n in conn.list_folders()}
    assert "Projekte/Alt" in names and "Projekte/Übersicht" not in names
    boxes = {m["path"] for m in api.get(f"/v1/account/{acc.id}/mailboxes").json()["mailboxes"]}
    assert "Projekte/Alt" in boxes
    assert api.delete(url, params={"path": "Projekte/Alt"}).json() == {"path": "Projekte/Alt", "deleted": True}
    assert "Projekte/Alt" not in {n for _f, _d, n in conn.list_folders()}
    conn.logout()
    assert_error(api.delete(url, params={"path": "Projekte/Alt"}), 404, "MailboxNotFound")
    assert_error(api.put(url, json={"path": "Nope", "newPath": ["X"]}), 404)
    assert_error(api.post(url, json={"path": []}), 400)
    assert_error(api.delete(url), 400)


# -- big messages: partial text, streaming, concurrency -----------------------------------------
def dovecot_bytes_out(dovecot, user: str) -> int:
    """Sum of `out=` bytes Dovecot logged at logout for this user's sessions."""
    log = (dovecot.root / "dovecot.log").read_text(errors="replace")
    return sum(int(m) for m in re.findall(rf"imap\({re.escape(user)}\).*?out=(\d+)", log))


def test_text_of_10mb_part_with_max_bytes_fetches_only_the_start(api, new_account, dovecot):
    acc = new_account()
    sample = corpus.big_text()
    plant(acc, [sample])
    entry = entries(api, acc)[0]
    resp = api.get(f"/v1/account/{acc.id}/text/{entry['text']['id']}", params={"maxBytes": 4096})
    body = resp.json()
    assert body["hasMore"] is True
    assert 4000 <= len(body["plain"].encode()) <= 4096 and sample.plain.startswith(body["plain"])
    # every session of this user logs its output bytes at logout: close them all, then add up
    assert api.delete(f"/v1/account/{acc.id}").status_code == 200
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and dovecot_bytes_out(dovecot, acc.user) == 0:
        time.sleep(0.3)
    time.sleep(1.0)
    sent = dovecot_bytes_out(dovecot, acc.user)
    assert 0 < sent < 200_000, f"the server sent {sent} bytes for a {len(sample.raw)} byte message"


def test_big_attachment_source_and_listing_meanwhile(api, new_account):
    acc = new_account()
    sample = corpus.big_attachment()
    plant(acc, [sample, corpus.plain_latin1()])
    big = next(e for e in entries(api, acc) if e["messageId"] == sample.message_id)
    att = big["attachments"][0]
    assert att["filename"] == "big.bin" and att["encodedSize"] > 20 * 1024 * 1024
    resp = api.get(f"/v1/account/{acc.id}/attachment/{att['id']}", stream=True)
    assert resp.status_code == 200
    assert resp.headers["Content-Disposition"] == 'attachment; filename="big.bin"'
    assert b"".join(resp.iter_content(1 << 20)) == sample.attachments[0].data

    # a slow source download holds one connection; a listing must not wait for it
    resp = api.get(f"/v1/account/{acc.id}/message/{big['id']}/source", stream=True)
    chunks = resp.iter_content(256 * 1024)
    received = [next(chunks)]
    timings = []

    def listing():
        start = time.monotonic()
        entries(api, acc)
        timings.append(time.monotonic() - start)

    worker = threading.Thread(target=listing)
    worker.start()
    worker.join(10)
    assert timings and timings[0] < 3.0, timings
    received.extend(chunks)
    assert b"".join(received) == sample.raw


def rss_mb(pid: int) -> float:
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(p) for p in fh.read().split()]
    except OSError:
        return []


def test_50mb_source_streams_with_flat_memory(api, new_account, stack):
    acc = new_account()
    sample = corpus.big_attachment(size=38 * 1024 * 1024, seed=50)   # ~50 MB once base64'd
    plant(acc, [sample])
    entry = entries(api, acc)[0]
    pids = [stack.procs["sidecar"].pid] + children(stack.procs["api"].pid)
    baseline = {pid: rss_mb(pid) for pid in pids}
    peak = dict(baseline)
    resp = api.get(f"/v1/account/{acc.id}/message/{entry['id']}/source", stream=True)
    assert resp.status_code == 200
    received, offset = 0, 0
    for chunk in resp.iter_content(1024 * 1024):
        assert chunk == sample.raw[offset:offset + len(chunk)]
        offset += len(chunk)
        received += len(chunk)
        for pid in pids:
            peak[pid] = max(peak[pid], rss_mb(pid))
    assert received == len(sample.raw) > 50_000_000
    growth = {pid: peak[pid] - baseline[pid] for pid in pids}
    # a buffered download would grow one process by >= 50 MB; streaming stays at a few chunks
    assert max(growth.values()) < 30, growth


def test_search_non_ascii_in_decoded_headers_and_bodies(api, corpus_account):
    acc, items = corpus_account
    url = f"/v1/account/{acc.id}/search"

    def found(criteria):
        resp = api.post(url, params={"path": "INBOX"}, json={"search": criteria})
        assert resp.status_code == 200, resp.text
        return {m["messageId"] for m in resp.json()["messages"]}

    assert found({"subject": "Grüße"}) == {items["plain_latin1"][0].message_id}
    assert found({"body": "Жёлтый"}) == {items["alternative"][0].message_id}
    # text search reaches the windows-1251 quoted-printable body through the server's decoding
    assert items["cyrillic_1251"][0].message_id in found({"text": "кодировке"})
    entry = items["nested_mixed"][1]
    assert found({"header": {"Message-ID": entry["messageId"]}}) == {entry["messageId"]}


def test_search_by_email_id_without_objectid_is_a_400_not_every_message(api, corpus_account):
    # Dovecot 2.3 has no OBJECTID: the original drops the key and matches the whole folder
    acc, _items = corpus_account
    resp = api.post(f"/v1/account/{acc.id}/search", params={"path": "INBOX"},
                    json={"search": {"emailId": "0123456789abcdef"}})
    assert resp.status_code == 400, resp.text
    body = resp.json()
    assert body["code"] == "NotSupported"
    assert [f["key"] for f in body["fields"]] == ["search.emailId"]
