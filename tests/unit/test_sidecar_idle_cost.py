"""The supervisor's record checks: a rotating slice per round that covers every account in turn."""
import pytest

from sidecar.supervisor import record_slice

NAMES = [f"acct{i:05d}" for i in range(10)]


@pytest.mark.parametrize("size,rounds", [(3, 4), (4, 3), (1, 10), (7, 2)])
def test_slices_cover_every_account(size, rounds):
    seen, start = [], 0
    for _ in range(rounds):
        part, start = record_slice(NAMES, start, size)
        assert len(part) == size and len(set(part)) == size
        seen += part
    assert set(seen) == set(NAMES)


def test_small_share_is_checked_whole_every_round():
    assert record_slice(NAMES, 7, 10) == (NAMES, 0)
    assert record_slice(NAMES, 7, 50) == (NAMES, 0)
    assert record_slice([], 3, 5) == ([], 0)


def test_slice_survives_a_shrinking_share():
    part, start = record_slice(NAMES, 9, 4)
    assert part == NAMES[9:] + NAMES[:3] and start == 3
    part, _ = record_slice(NAMES[:5], 8, 4)   # the cursor is past the end now: it wraps
    assert part == ["acct00003", "acct00004", "acct00000", "acct00001"]
