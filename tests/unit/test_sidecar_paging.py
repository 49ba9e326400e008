"""Listing paging math (newest first, clamped pages) and the entry builder."""
from datetime import datetime, timezone

import pytest
from imapclient.response_types import Address, Envelope

from imapapi.ids import decode_message_id
from sidecar.imap.listing import build_entry, page_window


@pytest.mark.parametrize("total,page,size,expected", [
    (0, 0, 20, {"page": 0, "pages": 1, "first": None, "last": None}),
    (0, 5, 20, {"page": 0, "pages": 1, "first": None, "last": None}),
    (1, 0, 20, {"page": 0, "pages": 1, "first": 1, "last": 1}),
    (25, 0, 10, {"page": 0, "pages": 3, "first": 16, "last": 25}),
    (25, 1, 10, {"page": 1, "pages": 3, "first": 6, "last": 15}),
    (25, 2, 10, {"page": 2, "pages": 3, "first": 1, "last": 5}),
    (25, 99, 10, {"page": 2, "pages": 3, "first": 1, "last": 5}),   # past the end: last page
    (25, -3, 10, {"page": 0, "pages": 3, "first": 16, "last": 25}),
    (20, 1, 20, {"page": 0, "pages": 1, "first": 1, "last": 20}),
    (1000, 49, 20, {"page": 49, "pages": 50, "first": 1, "last": 20}),
    (1001, 0, 1000, {"page": 0, "pages": 2, "first": 2, "last": 1001}),
])
def test_page_window(total, page, size, expected):
    assert page_window(total, page, size) == expected


def _data(date=None, flags=(b"\\Seen",)):
    env = Envelope(date, b"=?UTF-8?Q?Tere_p=C3=A4ev?=",
                   (Address(b"Peter", None, b"peter", b"example.com"),), None, None,
                   (Address(None, None, b"a", b"example.com"),), None, None, b"<parent@x>",
                   b" <id@x> ")
    return {b"UID": 481, b"FLAGS": flags, b"RFC822.SIZE": 4334, b"ENVELOPE": env,
            b"INTERNALDATE": datetime(2020, 1, 2, 3, 4, 5, tzinfo=timezone.utc)}


def test_entry_fields():
    entry = build_entry(1, _data(datetime(2019, 10, 7, 6, 5, 23, tzinfo=timezone.utc)))
    assert entry["id"] == "AAAAAQAAAeE" and decode_message_id(entry["id"]) == (1, 481)
    assert entry["date"] == "2019-10-07T06:05:23.000Z"
    assert entry["subject"] == "Tere päev"
    assert entry["from"] == {"name": "Peter", "address": "peter@example.com"}
    assert entry["to"] == [{"name": "", "address": "a@example.com"}] and entry["cc"] == []
    assert entry["messageId"] == "<id@x>" and entry["inReplyTo"] == "<parent@x>"
    assert entry["unseen"] is False and entry["flags"] == ["\\Seen"] and entry["size"] == 4334


def test_unparsable_date_falls_back_to_internaldate():
    entry = build_entry(1, _data(None, flags=(b"\\Flagged",)))
    assert entry["date"] == "2020-01-02T03:04:05.000Z"
    assert entry["unseen"] is True and entry["flagged"] is True
