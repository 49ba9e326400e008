"""Unit tests for the BODYSTRUCTURE walker: attachments, text groups, RFC 2231/2047 filenames."""
from imapclient.response_parser import parse_fetch_response

from imapapi import ids
from sidecar.imap.bodystructure import analyze, decode_params, summary


def bs(text: str):
    """Parse a BODYSTRUCTURE exactly as imapclient returns it from a FETCH response."""
    return parse_fetch_response([b"1 (UID 7 BODYSTRUCTURE " + text.encode() + b")"])[7][b"BODYSTRUCTURE"]


PLAIN = '("text" "plain" ("charset" "iso-8859-1") NIL NIL "quoted-printable" 120 4 NIL NIL NIL NIL)'
HTML = '("text" "html" ("charset" "utf-8") NIL NIL "base64" 300 5 NIL NIL NIL NIL)'
PNG = ('("image" "png" ("name" "logo.png") "<logo@x>" NIL "base64" 4504 NIL '
       '("inline" ("filename" "logo.png")) NIL NIL)')
PDF = ('("application" "pdf" NIL NIL NIL "base64" 9000 NIL '
       '("attachment" ("filename*0*" "utf-8\'\'%C3%9Cbersicht%20" "filename*1" "2024.pdf")) NIL NIL)')
FWD = ('("message" "rfc822" NIL NIL NIL "7bit" 500 '
       '("Mon, 1 Jan 2024 00:00:00 +0000" "inner" NIL NIL NIL NIL NIL NIL NIL NIL) '
       '(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 5 1 NIL NIL NIL NIL)'
       '("application" "zip" NIL NIL NIL "base64" 50 NIL ("attachment" ("filename" "in.zip")) NIL NIL) '
       '"mixed" ("boundary" "b2") NIL NIL NIL) 12 NIL ("attachment" ("filename" "fwd.eml")) NIL NIL)')


def test_single_part_is_part_1():
    s = analyze(bs(PLAIN))
    assert s.groups == [["1"], [], []]
    assert s.attachments == []
    assert s.encoded_size == {"plain": 120}
    part = s.part("1")
    assert (part.encoding, part.charset) == ("quoted-printable", "iso-8859-1")


def test_nested_mixed_alternative_related():
    structure = (f'((({PLAIN}{HTML} "alternative" ("boundary" "a") NIL NIL NIL){PNG} "related" '
                 f'("boundary" "r") NIL NIL NIL){PDF} "mixed" ("boundary" "m") NIL NIL NIL)')
    s = analyze(bs(structure))
    assert s.groups == [["1.1.1"], ["1.1.2"], []]
    assert s.encoded_size == {"plain": 120, "html": 300}
    assert [a.number for a in s.attachments] == ["1.2", "2"]
    out = summary(bs(structure), 3, 7)
    png, pdf = out["attachments"]
    assert png == {"id": ids.encode_attachment_id(3, 7, "1.2"), "contentType": "image/png",
                   "encodedSize": 4504, "filename": "logo.png", "embedded": True, "inline": True,
                   "contentId": "<logo@x>"}
    assert pdf["filename"] == "Übersicht 2024.pdf"
    assert (pdf["embedded"], pdf["inline"]) == (False, False)
    assert "contentId" not in pdf
    assert ids.decode_text_id(out["text"]["id"]) == (3, 7, [["1.1.1"], ["1.1.2"], []])
    assert out["text"]["encodedSize"] == {"plain": 120, "html": 300}


def test_attached_message_is_one_attachment_and_its_text_is_not_merged():
    s = analyze(bs(f'({PLAIN}{FWD} "mixed" ("boundary" "m") NIL NIL NIL)'))
    assert s.groups == [["1"], [], []]
    assert [(a.number, a.content_type, a.filename) for a in s.attachments] == [
        ("2", "message/rfc822", "fwd.eml")]


def test_text_with_attachment_disposition_is_an_attachment_and_calendar_is_group_2():
    cal = '("text" "calendar" ("charset" "utf-8" "method" "REQUEST") NIL NIL "7bit" 40 2 NIL NIL NIL NIL)'
    csv = ('("text" "csv" ("charset" "utf-8") NIL NIL "7bit" 10 1 NIL '
           '("attachment" ("filename" "data.csv")) NIL NIL)')
    s = analyze(bs(f'({PLAIN}{cal}{csv} "mixed" ("boundary" "m") NIL NIL NIL)'))
    assert s.groups == [["1"], [], ["2"]]
    assert s.encoded_size == {"plain": 120, "calendar": 40}
    assert [a.number for a in s.attachments] == ["3"]


def test_rfc2047_and_rfc2231_filenames():
    assert decode_params((b"name", b"=?UTF-8?B?w5xiZXJzaWNodC5wZGY=?="))["name"] == "Übersicht.pdf"
    assert decode_params((b"filename*", b"iso-8859-1'de'%DCbersicht.pdf"))["filename"] == "Übersicht.pdf"
    # the RFC 2231 form wins over a plain fallback of the same name
    assert decode_params((b"filename", b"fallback.pdf", b"filename*", b"utf-8''%E6%97%A5.pdf")) == {
        "filename": "日.pdf"}
    # continuations are ordered by index, not by position
    assert decode_params((b"name*1", b"b.txt", b"name*0", b"a"))["name"] == "ab.txt"
    assert decode_params(None) == {}


def test_no_filename_and_name_fallback():
    att = '("application" "octet-stream" NIL NIL NIL "base64" 10 NIL NIL NIL NIL)'
    named = '("application" "zip" ("name" "z.zip") NIL NIL "base64" 10 NIL NIL NIL NIL)'
    out = summary(bs(f'({PLAIN}{att}{named} "mixed" ("boundary" "m") NIL NIL NIL)'), 1, 1)
    assert [a["filename"] for a in out["attachments"]] == [False, "z.zip"]


def test_message_without_text_still_gets_a_text_id():
    out = summary(bs('("application" "pdf" NIL NIL NIL "base64" 10 NIL NIL NIL NIL)'), 1, 2)
    assert ids.decode_text_id(out["text"]["id"])[2] == [[], [], []]
    assert out["text"]["encodedSize"] == {}
    assert len(out["attachments"]) == 1
