"""Pure parts of folder watching: which pushes mean what, when a STATUS means "sync it"."""
import pytest

from sidecar.sync.imapio import (list_rows, parse_status_line, parse_uid_set, parse_vanished,
                                  push_path)
from sidecar.sync import notify
from sidecar.sync.notify import Pushed, status_moved

PUSH_CASES = [
    # (responses, selected, flags, folders, listing)
    ([(3, b"EXISTS")], True, False, set(), False),
    ([(2, b"FETCH", (b"UID", 4, b"FLAGS", (b"\\Seen",)))], True, True, set(), False),
    ([(b"VANISHED", 7)], True, False, set(), False),
    ([(b"STATUS", b"Work", (b"MESSAGES", 2))], False, False, {"Work"}, False),
    ([(b"STATUS", b"INBOX", (b"MESSAGES", 2))], True, False, set(), False),
    ([(b"LIST", (), b"/", b"New")], False, False, set(), True),
    ([(b"LIST", (b"\\NonExistent",), b"/", b"Gone")], False, False, set(), True),
    # Dovecot: a non-ASCII name arrives decoded (a literal); our path is modified UTF-7
    ([(b"STATUS", "Ärger/Über".encode(), (b"MESSAGES", 1))], False, False,
     {"&AMQ-rger/&ANw-ber"}, False),
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


def test_parse_status_line_with_literal():
    # imaplib's shape of a STATUS whose name came as a literal
    parts = [(b"{12}", "Ärger/Über".encode()), b" (MESSAGES 1 HIGHESTMODSEQ 7)"]
    assert parse_status_line(parts) == ("&AMQ-rger/&ANw-ber", {"MESSAGES": 1, "HIGHESTMODSEQ": 7})


KNOWN = {"Work", "A&-B", "&AMQ-x", "&-AMQ-x"}


@pytest.mark.parametrize("raw,known,path", [
    (b"Work", KNOWN, "Work"),
    (b"inbox", KNOWN, "INBOX"),
    ("Äx".encode(), KNOWN, "&AMQ-x"),             # decoded form (Dovecot)
    (b"&AMQ-x", {"&AMQ-x"}, "&AMQ-x"),            # modified UTF-7 (other servers)
    (b"&AMQ-x", {"&-AMQ-x"}, "&-AMQ-x"),          # Dovecot: a folder literally named "&AMQ-x"
    (b"A&B", KNOWN, "A&-B"),                      # Dovecot decodes "&-" too
    (b"New", set(), "New"),                       # unknown: as sent (the engine does a pass)
    ("Über".encode(), set(), "&ANw-ber"),
])
def test_push_path(raw, known, path):
    assert push_path(raw, known) == path


@pytest.mark.parametrize("pushed,stored,stale", [
    ({"MESSAGES": 1, "UIDNEXT": 2, "HIGHESTMODSEQ": 5},
     {"uidValidity": 0, "uidNext": 2, "messages": 1, "highestModseq": 5}, True),
    ({"MESSAGES": 1, "UIDNEXT": 2, "HIGHESTMODSEQ": 6},
     {"uidValidity": 0, "uidNext": 2, "messages": 1, "highestModseq": 5}, False),
    ({"MESSAGES": 1, "UIDNEXT": 2},                     # no MODSEQ: a flag change looks the same
     {"uidValidity": 0, "uidNext": 2, "messages": 1, "highestModseq": 5}, False),
    ({"MESSAGES": 1, "HIGHESTMODSEQ": 5}, None, False),
])
def test_stale_push(pushed, stored, stale):
    p = Pushed("INBOX")
    p.folders.add("Work")
    p.statuses["Work"] = pushed
    assert p.stale("Work", stored) is stale


@pytest.mark.parametrize("lines,rows", [
    ([b'(\\HasNoChildren) "/" INBOX', b'() "/" "Sent Items"'],
     [((b"\\HasNoChildren",), b"/", b"INBOX"), ((), b"/", b"Sent Items")]),
    ([(b'() "/" {9}', b"&AMQ-rger"), b"", b'() "/" 2024'],
     [((), b"/", b"&AMQ-rger"), ((), b"/", b"2024")]),
    # NOTIFY pushes mixed in: a decoded literal name and a rename with OLDNAME data
    ([(b'() "/" {3}', "Äx".encode()), b"", b'() "/" New2 ("OLDNAME" (New1))', b'() "/" Work'],
     [((), b"/", b"Work")]),
    ([None], []),
])
def test_list_rows(lines, rows):
    assert list_rows(lines) == rows


@pytest.mark.parametrize("caps,every,accounts,interval", [
    ({"LIST-STATUS"}, 3.0, 1, 3.0),
    ({"LIST-STATUS"}, 3.0, 45, 3.0),             # within the budget: the setting
    ({"LIST-STATUS"}, 3.0, 40, 3.0),
    ({"LIST-STATUS"}, 3.0, 1000, 1000 / 15),
    ({"LIST-STATUS"}, 3.0, 10000, 10000 / 15),   # 10,000 accounts share 15 sweeps a second
    (set(), 3.0, 100, notify.SLOW_SWEEP),
    (set(), 3.0, 10000, 10000 / 15),
])
def test_sweep_interval_shares_a_per_process_budget(caps, every, accounts, interval):
    try:
        notify.set_population(accounts)
        assert notify.Watch(caps, every).interval() == pytest.approx(interval)
    finally:
        notify.set_population(1)


def test_connected_sessions_share_the_budget_before_the_supervisor_counts_them():
    watches = [notify.Watch({"LIST-STATUS"}, 3.0) for _ in range(1000)]   # still population 1
    assert watches[0].interval() == pytest.approx(1000 / notify.SWEEP_BUDGET)
    del watches   # disconnected: their watches are gone, the interval is the setting again
    assert notify.Watch({"LIST-STATUS"}, 3.0).interval() == pytest.approx(3.0)


@pytest.mark.parametrize("draws,dues", [
    ([0.0, 0.5], [1000.0 + 40.0, 1100.0 + 40.0]),    # first at the interval, then from each sweep
    ([0.25, 0.9], [1000.0 - 10.0 + 40.0, 1100.0 + 40.0]),
    ([0.999, 0.0], [1000.0 - 39.96 + 40.0, 1100.0 + 40.0]),
])
def test_first_sweep_of_a_session_gets_a_random_phase(draws, dues):
    """Sessions connected together sweep spread over the interval, not all one interval later."""
    try:
        notify.set_population(600)      # interval 40 s
        watch = notify.Watch({"LIST-STATUS"}, 3.0)
        it = iter(draws)
        got = []
        for now in (1000.0, 1100.0):
            watch.swept(now, draw=lambda: next(it))
            got.append(watch.next_due())
        assert got == pytest.approx(dues)
    finally:
        notify.set_population(1)
