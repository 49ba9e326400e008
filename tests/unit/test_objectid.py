"""emailId/threadId from FETCH answers (RFC 8474 OBJECTID and Dovecot's X-GUID) and their compact storage."""
from __future__ import annotations

import pytest

from sidecar.imap import fetchparse, listing, objectid
from sidecar.sync.state import pack_index, unpack_index

GUID = b"1796531665.M622671P11631.vm,S=36,W=40"   # Dovecot maildir X-GUID (the file name)


def parsed(line: bytes) -> dict:
    """One FETCH answer line as the sidecar parses it (its fast parser, imapclient's types)."""
    return fetchparse.parse_fetch_response([line], False, True)


@pytest.mark.parametrize("line, expected", [
    # RFC 8474 examples: ids verbatim, threadId only when the server threads
    (b"1 (UID 7 EMAILID (M6d99ac3275bb4e) THREADID (T64b478a75b7ea9))",
     {"emailId": "M6d99ac3275bb4e", "threadId": "T64b478a75b7ea9"}),
    (b"1 (UID 7 EMAILID (M6d99ac3275bb4e) THREADID NIL)", {"emailId": "M6d99ac3275bb4e"}),
    (b"1 (UID 7 EMAILID (12345) THREADID (678))", {"emailId": "12345", "threadId": "678"}),
    # X-GUID: 64-bit hash, 16 hex digits, whatever the storage's GUID looks like
    (b"1 (UID 7 X-GUID " + GUID + b")", {"emailId": objectid.guid_email_id(GUID)}),
    (b'1 (UID 7 X-GUID "b8a1c3e3d1f0b6625d0500009d6ab3b2")',
     {"emailId": objectid.guid_email_id(b"b8a1c3e3d1f0b6625d0500009d6ab3b2")}),
    (b"1 (UID 7 FLAGS (\\Seen))", {}),   # ids not asked for (or off): no field at all
])
def test_entry_ids(line, expected):
    row = parsed(line)[7]
    assert objectid.entry_ids(row) == expected


def test_guid_id_is_stable_and_short():
    one = objectid.guid_email_id(GUID)
    assert one == objectid.guid_email_id(GUID.decode()) and len(one) == 16
    assert int(one, 16) >= 0
    assert one != objectid.guid_email_id(GUID + b"x")


def test_listing_entry_carries_the_ids():
    line = (b'3 (UID 9 FLAGS () RFC822.SIZE 10 INTERNALDATE "01-Jan-2026 10:00:00 +0000" '
            b'ENVELOPE (NIL "s" NIL NIL NIL NIL NIL NIL NIL NIL) '
            b"EMAILID (Mabc) THREADID (Tdef))")
    entry = listing.build_entry(1, {**parsed(line)[9], b"UID": 9})
    assert (entry["emailId"], entry["threadId"]) == ("Mabc", "Tdef")


@pytest.mark.parametrize("ids", [
    {},                                                       # ids off: nothing stored
    {1: "0123456789abcdef", 5: "fedcba9876543210"},           # X-GUID hashes
    {1: "0123456789abcdef"},                                  # uid 5 unknown (state from before)
    {1: "Mabc", 5: "M6d99ac3275bb4e"},                        # OBJECTID strings
    {5: "Mabc"},
])
def test_state_keeps_ids(ids):
    index = {1: frozenset({"\\Seen"}), 5: frozenset()}
    got: dict = {}
    assert unpack_index(pack_index(index, ids), got) == index
    assert got == ids


def test_hash_ids_cost_8_bytes_each():
    index = {uid: frozenset() for uid in range(1, 10001)}
    ids = {uid: objectid.guid_email_id(str(uid)) for uid in index}
    extra = len(pack_index(index, ids)) - len(pack_index(index))
    assert 8 * 10000 <= extra < 8.2 * 10000


def test_state_without_ids_still_reads():
    """A state written before emailIds existed (four parts) loads with no ids."""
    index = {3: frozenset({"\\Flagged"})}
    got: dict = {}
    assert unpack_index(pack_index(index), got) == index and got == {}
