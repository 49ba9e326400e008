"""Decoding: RFC 2047 words in many charsets, envelope addresses, modified UTF-7, ISO dates."""
from datetime import datetime, timedelta, timezone

import pytest
from imapclient.response_types import Address

from sidecar.imap import codec


@pytest.mark.parametrize("raw,expected", [
    (b"=?ISO-8859-1?Q?Andr=E9?= Pirard", "André Pirard"),
    (b"=?iso-8859-1?q?p=F6stal?=", "pöstal"),
    (b"=?windows-1251?B?z/Do4uXy?=", "Привет"),
    ("=?windows-1251?B?z/Do4uXy?= =?windows-1251?B?IOzo8A==?=", "Привет мир"),
    (b"=?Shift_JIS?B?g2WDWINn?=", "テスト"),
    (b"=?UTF-8?B?UGV0ZXIgUMO1ZGVy?=", "Peter Põder"),
    (b"=?utf-8?q?a?= =?utf-8?q?b?= c", "ab c"),
    (b"=?UTF-8?Q?Hello_World?=", "Hello World"),
    # a multi-byte character split over two words must be re-joined before decoding
    (b"=?UTF-8?B?w6k=?= =?UTF-8?B?w6k=?=", "éé"),
    (b"=?UTF-8?B?4oKs?=", "€"),
    (b"plain subject", "plain subject"),
    ("caf\u00e9 raw utf-8".encode(), "café raw utf-8"),
    (b"caf\xe9 latin-1 bytes", "café latin-1 bytes"),
    (b"=?x-unknown?Q?abc?=", "abc"),
    (b"=?utf-8?B?broken!!?=", ""),
    (None, ""),
])
def test_decode_words(raw, expected):
    assert codec.decode_words(raw) == expected


def test_address_and_groups():
    addrs = (Address(b"=?UTF-8?B?UGV0ZXIgUMO1ZGVy?=", None, b"Peter.Poder", b"example.com"),
             Address(None, None, b"undisclosed-recipients", None),
             Address(None, None, None, None),
             Address(None, None, b"x", b"example.org"))
    assert codec.addresses(addrs) == [
        {"name": "Peter Põder", "address": "Peter.Poder@example.com"},
        {"name": "", "address": "undisclosed-recipients@"},
        {"name": "", "address": "x@example.org"},
    ]
    assert codec.addresses(None) == []


@pytest.mark.parametrize("utf7,text", [
    ("S&APw-nnip&AOQ-evad", "Sünnipäevad"),
    ("&BB4EQgQ,BEAEMAQyBDsENQQ9BD0ESwQ1-", "Отправленные"),
    ("&ZeVnLIqe-", "日本語"),
    ("Tom &- Jerry", "Tom & Jerry"),
    ("INBOX", "INBOX"),
])
def test_modified_utf7_round_trip(utf7, text):
    assert codec.decode_mailbox(utf7) == text
    assert codec.decode_mailbox(utf7.encode()) == text
    if not text.isascii():
        assert codec.encode_mailbox(text) == utf7


def test_leaf_and_inbox():
    assert codec.leaf_name("Kalender/S&APw-nnip&AOQ-evad", "/") == "Sünnipäevad"
    assert codec.leaf_name("Top", None) == "Top"
    assert codec.normalize_path("inbox") == codec.normalize_path("InBoX") == "INBOX"
    assert codec.normalize_path("Inbox/Sub") == "Inbox/Sub"


def test_iso_dates():
    tz = timezone(timedelta(hours=3))
    assert codec.iso(datetime(2019, 10, 7, 9, 5, 23, 120000, tzinfo=tz)) == "2019-10-07T06:05:23.120Z"
    assert codec.iso(datetime(2019, 10, 7, 6, 5, 23)) == "2019-10-07T06:05:23.000Z"
    assert codec.iso(None) is None


def test_message_id_trimmed():
    assert codec.message_id(b"  <a@b>  ") == "<a@b>"
    assert codec.message_id(None) is None


@pytest.mark.parametrize("header", [b"Mon, 1 Jan 2020 10:00:00 +9999",
                                    b"Tue, 31 Dec 9999 23:59:59 -1200"])
def test_dates_that_cannot_be_converted_give_none_not_an_error(header):
    from imapclient.datetime_util import parse_to_datetime

    assert codec.iso(parse_to_datetime(header, normalise=False)) is None
