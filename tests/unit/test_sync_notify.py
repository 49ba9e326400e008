"""Pure parts of folder watching: which pushes mean what, when a STATUS means "sync it"."""
import pytest

from sidecar.sync.imapio import notifiable, parse_status_line, parse_uid_set, parse_vanished
from sidecar.sync.notify import Pushed, status_moved

PUSH_CASES = [
    # (responses, selected, flags, folders, listing)
    ([(3, b"EXISTS")], True, False, set(), False),
    ([(2, b"FETCH", (b"UID", 4, b"FLAGS", (b"\\Seen",)))], True, True, set(), False),
    ([(b"VANISHED", 7)], True, False, set(), False),
    ([(b"STATUS", b"Work", (b"MESSAGES", 2))], False, False, {"Work"}, False),
    ([(b"STATUS", b"INBOX", (b"MESSAGES", 2))], True, False, set(), False),
    ([(b"LIST", (), b"/", b"New")], False, False, set(), True),
    ([(b"OK", b"Still here")], False, False, set(), False),
    ([], False, False, set(), False),
]


@pytest.mark.parametrize("responses,selected,flags,folders,listing", PUSH_CASES)
def test_pushed(responses, selected, flags, folders, listing):
    p = Pushed("INBOX").feed(responses)
    assert (p.selected, p.flags, p.folders, p.listing) == (selected, flags, folders, listing)
    assert bool(p) == (selected or listing or bool(folders))


STATUS_CASES = [
    (None, {"MESSAGES": 1}, True),
    ({"uidValidity": 1, "uidNext": 5, "messages": 3, "highestModseq": 9},
     {"UIDVALIDITY": 1, "UIDNEXT": 5, "MESSAGES": 3, "HIGHESTMODSEQ": 9}, False),
    ({"uidValidity": 1, "uidNext": 5, "messages": 3, "highestModseq": 9},
     {"UIDVALIDITY": 1, "UIDNEXT": 5, "MESSAGES": 3, "HIGHESTMODSEQ": 10}, True),   # flags
    ({"uidValidity": 1, "uidNext": 5, "messages": 3, "highestModseq": 0},
     {"UIDVALIDITY": 1, "UIDNEXT": 6, "MESSAGES": 4}, True),                         # no CONDSTORE
    ({"uidValidity": 1, "uidNext": 5, "messages": 3, "highestModseq": 0},
     {"UIDVALIDITY": 2, "UIDNEXT": 5, "MESSAGES": 3}, True),                         # reset
]


@pytest.mark.parametrize("stored,live,moved", STATUS_CASES)
def test_status_moved(stored, live, moved):
    assert status_moved(stored, live) is moved


@pytest.mark.parametrize("raw,uids", [("1:3,7", [1, 2, 3, 7]), ("5", [5]), ("9:8", [8, 9]), ("", [])])
def test_parse_uid_set(raw, uids):
    assert parse_uid_set(raw) == uids


def test_parse_vanished():
    assert parse_vanished([b"(EARLIER) 1:2,5", b"9"]) == [1, 2, 5, 9]


def test_parse_status_line():
    assert parse_status_line(b'"Sent Items" (MESSAGES 3 UIDNEXT 5)') == (
        "Sent Items", {"MESSAGES": 3, "UIDNEXT": 5})


@pytest.mark.parametrize("path,ok", [("Work", True), ("INBOX", False), ("W&APY-rk", False),
                                     ('a"b', False), ("Sent Items", True)])
def test_notifiable(path, ok):
    assert notifiable(path) is ok
