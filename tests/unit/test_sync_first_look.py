"""A new account's empty folders: the state their first (silent) look commits, from STATUS alone."""
import pytest

from sidecar.sync.engine import empty_state, fingerprint, snapshot

CONDSTORE = {"CONDSTORE", "LIST-STATUS"}
PLAIN = {"LIST-STATUS"}

CASES = [
    # (status, caps, expected (uidValidity, uidNext, highestModseq) or None)
    ({"MESSAGES": 0, "UIDNEXT": 1, "UIDVALIDITY": 77, "HIGHESTMODSEQ": 1}, CONDSTORE, (77, 1, 1)),
    ({"MESSAGES": 0, "UIDNEXT": 9, "UIDVALIDITY": 77}, PLAIN, (77, 9, 0)),       # all deleted
    ({"MESSAGES": 2, "UIDNEXT": 3, "UIDVALIDITY": 77, "HIGHESTMODSEQ": 4}, CONDSTORE, None),
    ({"MESSAGES": 0, "UIDNEXT": 1, "UIDVALIDITY": 77}, CONDSTORE, None),        # modseq missing
    ({"MESSAGES": 0, "UIDVALIDITY": 77}, PLAIN, None),                          # uidnext missing
    (None, PLAIN, None),
    ({}, PLAIN, None),
]


@pytest.mark.parametrize("status,caps,expected", CASES)
def test_empty_state(status, caps, expected):
    got = empty_state("Sent", status, caps)
    if expected is None:
        assert got is None
        return
    assert (got.uid_validity, got.uid_next, got.highest_modseq) == expected
    # what a SELECT-based silent baseline commits: version 1, no messages, an empty index
    assert (got.path, got.messages, got.version, got.index) == ("Sent", 0, 1, {})


def _live(**status):
    base = {"MESSAGES": 0, "UIDNEXT": 1, "UIDVALIDITY": 7, "HIGHESTMODSEQ": 1}
    return {"INBOX": {"flags": ["\\HasNoChildren"], "delimiter": "/", "status": {**base, **status}},
            "Sent": {"flags": ["\\Sent"], "delimiter": "/", "status": dict(base)}}


SNAPSHOT_CASES = [
    # (before, after, caps, a sweep may stop at "nothing moved")
    (_live(), _live(), CONDSTORE, True),
    (_live(), _live(HIGHESTMODSEQ=2), CONDSTORE, False),       # a flag changed
    (_live(), _live(MESSAGES=1, UIDNEXT=2), CONDSTORE, False),  # a message arrived
    (_live(), {**_live(), "Work": _live()["Sent"]}, CONDSTORE, False),   # a folder created
    (_live(), {"INBOX": _live()["INBOX"]}, CONDSTORE, False),            # a folder deleted
    (_live(), {**_live(), "Sent": {**_live()["Sent"], "flags": ["\\Junk"]}}, CONDSTORE, False),
    # Dovecot adds \UnMarked once a folder has an index; \Marked follows new mail
    (_live(), {**_live(), "Sent": {**_live()["Sent"], "flags": ["\\UnMarked", "\\Sent"]}},
     CONDSTORE, True),
    (_live(), {**_live(), "INBOX": {**_live()["INBOX"], "flags": ["\\HasNoChildren", "\\Marked"]}},
     CONDSTORE, True),
    (_live(), {**_live(), "Sent": {**_live()["Sent"], "flags": ["\\UnMarked", "\\Junk"]}},
     CONDSTORE, False),
    (_live(), _live(), PLAIN, False),     # without CONDSTORE STATUS misses flag changes
    ({"INBOX": {"flags": [], "delimiter": "/", "status": None}},
     {"INBOX": {"flags": [], "delimiter": "/", "status": None}}, CONDSTORE, False),
]


@pytest.mark.parametrize("before,after,caps,same", SNAPSHOT_CASES)
def test_sweep_snapshot(before, after, caps, same):
    a, b = snapshot(before, caps), snapshot(after, caps)
    assert (a is not None and a == b) == same
    # what a connection keeps of it: equal exactly when the snapshots are
    assert (a is not None and fingerprint(a) == fingerprint(b)) == same
    assert fingerprint(a) is None or len(fingerprint(a)) == 16


def test_fingerprint_ignores_listing_order():
    live = _live()
    reordered = dict(reversed(list(live.items())))
    assert fingerprint(snapshot(live, CONDSTORE)) == fingerprint(snapshot(reordered, CONDSTORE))
