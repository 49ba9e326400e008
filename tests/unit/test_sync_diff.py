"""Table-driven tests of the pure change-detection diff (no I/O)."""
import pytest

from sidecar.sync.diff import (Changes, ServerStatus, apply, diff_changed, diff_full,
                               flag_delta, folder_changes, norm_flags, plan)
from sidecar.sync.state import FolderState, pack_index, unpack_index

F = frozenset
SEEN, FLAG = "\\Seen", "\\Flagged"


def st(uv=1, nxt=10, msgs=3, ms=5):
    return FolderState(path="INBOX", uid_validity=uv, uid_next=nxt, messages=msgs, highest_modseq=ms)


PLAN_CASES = [
    # (stored, server, condstore, flags_hint, expected)
    (None, ServerStatus(1, 10, 3, 5), True, False, "baseline"),
    (st(uv=1), ServerStatus(2, 10, 3, 5), True, False, "reset"),
    (st(), ServerStatus(1, 10, 3, 5), True, False, "none"),
    (st(), ServerStatus(1, 11, 4, 6), True, False, "changedsince"),
    (st(), ServerStatus(1, 10, 3, 7), True, False, "changedsince"),     # flags only
    (st(ms=0), ServerStatus(1, 10, 3, 0), False, False, "none"),
    (st(ms=0), ServerStatus(1, 11, 4, 0), False, False, "full"),
    (st(ms=0), ServerStatus(1, 10, 2, 0), False, False, "full"),        # expunge
    (st(ms=0), ServerStatus(1, 10, 3, 0), False, True, "full"),         # FETCH seen in IDLE
    (st(uv=1, ms=0), ServerStatus(9, 10, 3, 0), False, False, "reset"),
]


@pytest.mark.parametrize("stored,server,condstore,hint,expected", PLAN_CASES)
def test_plan(stored, server, condstore, hint, expected):
    assert plan(stored, server, condstore=condstore, flags_hint=hint) == expected


FULL_CASES = [
    # (stored, server, new, deleted, updated)
    ({}, {}, [], [], []),
    ({1: F()}, {1: F(), 2: F([SEEN])}, [2], [], []),
    ({1: F(), 2: F()}, {2: F()}, [], [1], []),
    ({1: F()}, {1: F([SEEN])}, [], [], [(1, [SEEN], [], 0)]),
    ({1: F([SEEN, FLAG])}, {1: F([SEEN])}, [], [], [(1, [], [FLAG], 0)]),
    ({1: F(), 2: F(), 3: F([SEEN])}, {2: F([FLAG]), 3: F(), 7: F()}, [7], [1],
     [(2, [FLAG], [], 0), (3, [], [SEEN], 0)]),
]


@pytest.mark.parametrize("stored,server,new,deleted,updated", FULL_CASES)
def test_diff_full(stored, server, new, deleted, updated):
    ch = diff_full(stored, server)
    assert (ch.new, ch.deleted, ch.updated) == (new, deleted, updated)
    assert apply(stored, ch, server) == server


CHANGED_CASES = [
    # (stored, changed, vanished, all_uids, new, deleted, updated)
    ({1: F()}, {2: (F(), 9)}, [], None, [2], [], []),
    ({1: F()}, {1: (F([SEEN]), 9)}, [], None, [], [], [(1, [SEEN], [], 9)]),
    ({1: F(), 2: F()}, {}, [2], None, [], [2], []),
    ({1: F(), 2: F()}, {}, [5], None, [], [], []),                     # vanished unknown uid
    ({1: F(), 2: F()}, {3: (F(), 4)}, [], [1, 3], [3], [2], []),       # no QRESYNC: UID SEARCH
    ({1: F()}, {1: (F(), 4)}, [], None, [], [], []),                    # modseq moved, same flags
    ({1: F()}, {2: (F(), 4)}, [2], None, [], [], []),                   # appended then expunged
]


@pytest.mark.parametrize("stored,changed,vanished,all_uids,new,deleted,updated", CHANGED_CASES)
def test_diff_changed(stored, changed, vanished, all_uids, new, deleted, updated):
    ch = diff_changed(stored, changed, vanished, all_uids=all_uids)
    assert (ch.new, ch.deleted, ch.updated) == (new, deleted, updated)


def test_changes_truthiness():
    assert not Changes()
    assert Changes(new=[1])


@pytest.mark.parametrize("raw,expected", [
    ((b"\\Seen", b"\\Recent"), F([SEEN])),
    (("$Forwarded",), F(["$Forwarded"])),
    (None, F()),
])
def test_norm_flags(raw, expected):
    assert norm_flags(raw) == expected


def test_flag_delta_sorted():
    assert flag_delta(F(["b", "a"]), F(["c", "d", "a"])) == (["c", "d"], ["b"])


@pytest.mark.parametrize("stored,live,created,deleted", [
    ({"INBOX": {}}, {"INBOX": {}, "Work": {}}, ["Work"], []),
    ({"INBOX": {}, "Old": {}}, {"INBOX": {}}, [], ["Old"]),
    ({}, {}, [], []),
])
def test_folder_changes(stored, live, created, deleted):
    assert folder_changes(stored, live) == (created, deleted)


@pytest.mark.parametrize("index", [
    {},
    {1: F(), 5: F([SEEN]), 6: F([SEEN, FLAG, "$Junk"])},
    {i: F([f"k{i % 40}"]) for i in range(1, 200)},    # more than 32 distinct flags -> extras
])
def test_pack_roundtrip(index):
    assert unpack_index(pack_index(index)) == index


def test_pack_is_compact_for_100k():
    index = {uid: F([SEEN]) if uid % 3 else F() for uid in range(1, 100001)}
    assert len(pack_index(index)) < 200 * 1024
