"""Paced handover (sidecar.handover): which accounts move to whom, and how many at once."""
import pytest

from sidecar.handover import HANDOVER_WINDOW, allowance, by_target, window

ASSIGN = {"a1": "r2", "a2": "r3", "a3": "r2", "a4": None, "a5": False}


@pytest.mark.parametrize("moving, held, groups, forget", [
    # grouped by next holder, sorted; ours again (False) forgotten
    ({"a1", "a2", "a3", "a5"}, {"a1", "a2", "a3", "a5"},
     {"r2": ["a1", "a3"], "r3": ["a2"]}, {"a5"}),
    # no longer held here (handed over, lost): forgotten, not released twice
    ({"a1", "a2"}, {"a2"}, {"r3": ["a2"]}, {"a1"}),
    # nobody can take it (every other replica is leaving): it stays, neither moved nor forgotten
    ({"a4"}, {"a4"}, {}, set()),
    (set(), {"a1"}, {}, set()),
])
def test_by_target(moving, held, groups, forget):
    assert by_target(moving, held, ASSIGN.get) == (groups, forget)


@pytest.mark.parametrize("busy, expect", [
    ({}, {"r2": ["a", "b", "c"], "r3": ["d"]}),            # idle targets: all at once
    ({"r2": HANDOVER_WINDOW - 2}, {"r2": ["a", "b"], "r3": ["d"]}),   # room for two
    ({"r2": HANDOVER_WINDOW, "r3": HANDOVER_WINDOW + 5}, {"r2": [], "r3": []}),   # full: none
])
def test_allowance_fills_each_targets_window(busy, expect):
    assert allowance({"r2": ["a", "b", "c"], "r3": ["d"]}, busy) == expect


def test_allowance_never_more_than_the_window():
    names = [f"x{i}" for i in range(3 * HANDOVER_WINDOW)]
    assert len(allowance({"r": names}, {})["r"]) == HANDOVER_WINDOW


@pytest.mark.parametrize("live, draining, share", [
    (4, True, HANDOVER_WINDOW),    # draining: the only sender to its targets
    (2, False, HANDOVER_WINDOW),   # rebalancing with one other replica: all of it
    (4, False, 3),                 # three replicas feed one newcomer: a third each (rounded up)
    (9, False, 1),
    (1, False, HANDOVER_WINDOW),
])
def test_window_is_shared_by_the_replicas_sending_to_one_target(live, draining, share):
    assert window(live, draining) == share
