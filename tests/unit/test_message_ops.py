"""Unit tests for the pure parts of the message ops: search criteria, headers, COPYUID, flags,
Content-Disposition."""
from datetime import date

import pytest

from app.messages.streaming import content_disposition
from imapapi import errors
from sidecar.imap.details import parse_headers
from sidecar.ops.modify import _copyuid
from sidecar.ops.msgutil import check_flags, valid_flag
from sidecar.ops.search import build_criteria, page_bounds


def test_search_criteria_mapping():
    assert build_criteria({}) == ["ALL"]
    assert build_criteria({"unseen": True, "flagged": False, "seen": False}) == [
        "UNSEEN", "UNFLAGGED", "UNSEEN"]
    assert build_criteria({"from": "a@b", "subject": "Grüße", "larger": 10, "uid": "1:5,9"}) == [
        "FROM", "a@b", "SUBJECT", "Grüße", "LARGER", 10, "UID", "1:5,9"]
    assert build_criteria({"since": "2024-03-01", "sentBefore": "2024-04-01T10:00:00Z"}) == [
        "SINCE", date(2024, 3, 1), "SENTBEFORE", date(2024, 4, 1)]
    assert build_criteria({"header": {"X-Flag": True, "List-Id": "dev"}}) == [
        "HEADER", "X-Flag", "", "HEADER", "List-Id", "dev"]
    # without OBJECTID the server can not filter on it: dropped, not sent as a bad command
    with pytest.raises(errors.BadRequest) as bad:   # never silently "match everything"
        build_criteria({"threadId": "T1"})
    assert bad.value.extra["fields"] == [{"key": "search.threadId", "message": "Needs OBJECTID on the server"}]
    assert build_criteria({"emailId": "M1"}, {"OBJECTID"}) == ["EMAILID", "M1"]


def test_search_modseq_needs_condstore():
    assert build_criteria({"modseq": 5}, {"CONDSTORE"}) == ["MODSEQ", 5]
    with pytest.raises(errors.BadRequest) as exc:
        build_criteria({"modseq": 5})
    assert exc.value.extra["fields"][0]["key"] == "search.modseq"


@pytest.mark.parametrize("bad", [{"uid": "1:x"}, {"larger": -1}, {"since": "soon"}, {"what": 1},
                                 {"header": "x"}, {"modseq": -1}])
def test_search_criteria_rejects_bad_values(bad):
    with pytest.raises(errors.BadRequest) as exc:
        build_criteria(bad)
    assert exc.value.extra["fields"][0]["key"].startswith("search.")


def test_page_bounds_clamps():
    assert page_bounds(0, 0, 20) == (0, 1)
    assert page_bounds(45, 1, 20) == (1, 3)
    assert page_bounds(45, 99, 20) == (2, 3)


def test_parse_headers_unfolds_and_decodes():
    raw = (b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n =?utf-8?q?_aus_K=C3=B6ln?=\r\n"
           b"Received: a\r\nReceived: b\r\n\tc\r\nX-Empty:\r\n\r\n")
    assert parse_headers(raw) == {"subject": ["Grüße aus Köln"], "received": ["a", "b\tc"],
                                  "x-empty": [""]}


def test_parse_headers_skips_what_is_not_a_header_line():
    raw = (b"From: a@b.example\r\nno colon here\r\n: no name\r\n \r\n"
           b"X-Time:  12:30:01 \r\nX-Bytes: caf\xe9\nX-Name : v\r\nFrom: second")
    assert parse_headers(raw) == {"from": ["a@b.example", "second"], "x-time": ["12:30:01"],
                                  "x-bytes": ["café"], "x-name": ["v"]}


def test_copyuid_from_tagged_text_and_untagged_code():
    assert _copyuid([b"[COPYUID 1700 5 12] Moved UIDs."]) == (1700, 12)
    assert _copyuid([b"1700 5 12"]) == (1700, 12)
    assert _copyuid([b"1700 5:6 12:13"]) is None   # one uid moved at a time: a range is foreign
    assert _copyuid(None) is None


def test_flags_must_be_atoms():
    assert all(valid_flag(f) for f in ("\\Seen", "$Label1", "Junk", "\\*"[:-1] + "Flagged"))
    for bad in ("two words", "(x", "a]", "\\", "", 'q"', "x" * 129, None):
        assert not valid_flag(bad)
    with pytest.raises(errors.BadRequest):
        check_flags(["ok", "not ok"])


def test_content_disposition_rfc6266():
    assert content_disposition(None) == "attachment"
    assert content_disposition("report.pdf") == 'attachment; filename="report.pdf"'
    value = content_disposition("Übersicht 2024 – 日本.pdf")
    assert value.startswith('attachment; filename="Ubersicht 2024 .pdf"')
    assert value.endswith("filename*=UTF-8''%C3%9Cbersicht%202024%20%E2%80%93%20%E6%97%A5%E6%9C%AC.pdf")
    assert content_disposition('a"b\\c.txt') == ('attachment; filename="a_b_c.txt"; '
                                                 "filename*=UTF-8''a%22b%5Cc.txt")
