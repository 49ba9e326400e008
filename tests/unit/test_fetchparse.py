"""sidecar.imap.fetchparse gives exactly imapclient's parse_fetch_response result, or its error."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from imapclient import response_parser

from sidecar.imap import fetchparse

STOCK = response_parser.parse_fetch_response


def outcome(fn, data, normalise, uid_is_key):
    """A comparable result: the parsed dict (with zone details of datetimes) or the error type."""
    try:
        parsed = fn(list(data), normalise, uid_is_key)
    except Exception as exc:   # noqa: BLE001 - the point is to compare which one
        return ("error", type(exc))
    return ("ok", {k: {f: _cmp(v) for f, v in fields.items()} for k, fields in parsed.items()})


def _cmp(value):
    if hasattr(value, "tzinfo"):
        return (value, value.tzinfo is None, value.utcoffset(), value.tzname())
    if hasattr(value, "date") and hasattr(value, "message_id"):   # Envelope
        return (value, _cmp(value.date) if value.date else None)
    return value


def same(data):
    for normalise in (False, True):
        for uid_is_key in (False, True):
            mine = outcome(fetchparse.parse_fetch_response, data, normalise, uid_is_key)
            theirs = outcome(STOCK, data, normalise, uid_is_key)
            assert mine == theirs, (data, normalise, uid_is_key)
    return outcome(fetchparse.parse_fetch_response, data, False, False)


ENV = (b'ENVELOPE ("Mon, 01 Jan 2024 00:20:00 +0000" "=?UTF-8?B?QmVuY2g=?= 20" '
       b'(("Sender 20" NIL "sender20" "example.com")) (("Sender 20" NIL "sender20" "example.com")) '
       b'(("Sender 20" NIL "sender20" "example.com")) (("Bench" NIL "bench" "example.com")) NIL NIL '
       b'NIL "<bench20@example.com>")')
LISTING = (b'21 (UID 21 FLAGS (\\Seen $Forwarded) RFC822.SIZE 2541 '
           b'INTERNALDATE "25-Nov-2026 14:19:11 +0000" ' + ENV +
           b' BODYSTRUCTURE ("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 2284 2 NIL NIL NIL NIL))')
MULTIPART = (b'3 (UID 7 BODYSTRUCTURE ((("text" "plain" ("charset" "utf-8") NIL NIL "quoted-printable" '
             b'12 1 NIL NIL NIL NIL)("text" "html" ("charset" "utf-8") NIL NIL "base64" 40 1 NIL NIL NIL '
             b'NIL) "alternative" ("boundary" "b2") NIL NIL NIL)("application" "pdf" ("name" "a b.pdf") '
             b'"<cid@x>" NIL "base64" 1000 NIL ("attachment" ("filename" "a b.pdf")) NIL NIL) "mixed" '
             b'("boundary" "b1") NIL NIL NIL))')


@pytest.mark.parametrize("data", [
    pytest.param([LISTING], id="listing entry"),
    pytest.param([LISTING, LISTING.replace(b"21 (UID 21", b"22 (UID 22")], id="two messages"),
    pytest.param([MULTIPART], id="multipart bodystructure"),
    pytest.param([b"5 (FLAGS (\\Deleted))"], id="unsolicited flags without UID"),
    pytest.param([b"1 (UID 3 MODSEQ (12345) FLAGS ())"], id="modseq"),
    pytest.param([(b'1 (UID 9 BODY[HEADER.FIELDS (FROM TO)] {22}', b"From: a@b\r\nTo: c@d\r\n\r\n"),
                  b" FLAGS (\\Seen))"], id="literal after bracketed section"),
    pytest.param([(b'2 (UID 4 ENVELOPE (NIL {8}', "Grüße!".encode()),
                  b' NIL NIL NIL NIL NIL NIL NIL NIL))'], id="8-bit literal subject"),
    pytest.param([(b"1 (UID 1 BODY[]<0> {5}", b"hello"), b")"], id="partial body"),
    pytest.param([b'1 (UID 1 X-GM-LABELS ("\\\\Inbox" "a \\"b\\" c" "\\x"))'], id="escapes"),
    pytest.param([b'1 (UID 0123 RFC822.SIZE 0 FLAGS ("" NIL))'], id="leading zero stays bytes"),
    pytest.param([b"1 (UID 2)  \r\n"], id="trailing whitespace"),
    pytest.param([b""], id="empty"),
    pytest.param([None], id="no data"),
])
def test_known_shapes_match_imapclient(data):
    assert same(data)[0] == "ok" or data == [None]


@pytest.mark.parametrize("date", [
    b"Mon, 01 Jan 2024 00:20:00 +0000", b"1 Jan 2024 00:20:00 +0530", b"Tue, 9 jul 2024 23:59:59 -0800",
    b"Mon, 01 Jan 2024 00:20:00 -0000", b"Mon, 01 Jan 2024 00:20 +0000",
    b"Mon, 01 Jan 2024 00:20:00 +0000 (UTC)", b"Fri, 31 Feb 2024 10:00:00 +0000",
    b"Mon, 01 Jan 24 00:20:00 GMT", b"garbage",
])
def test_envelope_and_internal_dates_match_imapclient(date):
    quoted = b'"' + date + b'"'
    same([b"1 (UID 1 ENVELOPE (" + quoted + b' "s" NIL NIL NIL NIL NIL NIL NIL "<m@x>") '
          b"INTERNALDATE " + quoted + b")"])
    same([b'1 (UID 1 INTERNALDATE "' + date.replace(b" ", b"-", 2) + b'")'])


@pytest.mark.parametrize("data", [
    [b"1 (UID 1 FLAGS (a%b))"],            # '%' is its own token for imapclient
    [b'1 (UID 1 X ab"cd")'],               # quote glued to an atom: imapclient rejects it
    [b"1 (UID 1 FLAGS (\\Seen)"],          # unclosed list
    [b"1 (UID 1))"],                       # stray ')'
    [b"1 (UID 1 X a[b)"],                  # unclosed bracket
    [b'1 (UID 1 X "abc)'],                 # unclosed quote
    [b"1 (UID x)"], [b"x (UID 1)"], [b"1 (UID)"], [b"1 UID 1"],
    [(b"1 (UID 1 X {4}", b"abc"), b")"],    # literal of the wrong size
    [(b"1 (UID 1 X {3} Y", b"abc"), b")"],  # literal marker not at the end
])
def test_odd_input_goes_to_imapclient_and_ends_the_same(data):
    same(data)


def test_install_makes_imapclient_fetch_use_it(monkeypatch):
    import imapclient.imapclient as module

    monkeypatch.setattr(module, "parse_fetch_response", STOCK)
    assert fetchparse.install() is True
    assert module.parse_fetch_response is fetchparse.parse_fetch_response


def test_install_leaves_imapclient_alone_when_its_internals_moved(monkeypatch):
    import imapclient.imapclient as module

    monkeypatch.setattr(module, "parse_fetch_response", STOCK)
    monkeypatch.delattr(response_parser, "_convert_ENVELOPE")
    assert fetchparse.install() is False
    assert module.parse_fetch_response is STOCK


# Random token soup from IMAP's own alphabet: whatever comes out, both parsers must agree.
_PIECES = st.sampled_from([
    b"(", b")", b" ", b"NIL", b"UID", b"FLAGS", b"ENVELOPE", b"BODYSTRUCTURE", b"INTERNALDATE",
    b"1", b"0", b"07", b"42", b'"a b"', b'""', b'"x\\"y"', b'"\\\\"', b"\\Seen", b"BODY[]",
    b"BODY[HEADER.FIELDS (A B)]", b"<0>", b"%", b"[", b"]", b'"', b"\t", b"\r\n", b"\x01",
    b'"25-Nov-2026 14:19:11 +0000"', b'"Mon, 01 Jan 2024 00:20:00 +0000"', b"\xc3\xa9",
])


@settings(max_examples=400, deadline=None)
@given(st.lists(st.lists(_PIECES, max_size=30).map(b"".join), min_size=1, max_size=3))
def test_random_token_streams_agree(chunks):
    same(chunks)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 99), st.integers(1, 999), st.sampled_from(
    [b"(\\Seen)", b"()", b"(\\Answered $Label)"]), st.binary(max_size=20)), max_size=4))
def test_random_well_formed_replies_agree(messages):
    data = []
    for seq, uid, flags, literal in messages:
        data.append((b"%d (UID %d FLAGS %s BODY[TEXT] {%d}" % (seq, uid, flags, len(literal)),
                     literal))
        data.append(b")")
    if data:
        assert same(data)[0] == "ok"
