"""Paced handover (sidecar.handover): which accounts move to whom, and how many at once."""
import os
import uuid

import pytest
import redis as redis_lib

from imapapi import keys
from sidecar.handover import (DRAIN_WINDOW_MIN, FLIGHT_MAX, HANDOVER_WINDOW, Pacer, allowance,
                              by_target, drain_window, window)

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


@pytest.mark.parametrize("remaining, left, cycle, expect", [
    (233, 100.0, 1.0, 4),                  # ~700 accounts over 3 targets, 100 s: 4 at once
    (233, 100.0, 2.0, 7),                  # slower logins: more at once to finish in time
    (233, 10.0, 1.0, HANDOVER_WINDOW),     # running out of time: never more than the window
    (3, 100.0, 1.0, DRAIN_WINDOW_MIN),     # plenty of time: few at once, short gaps
    (0, 100.0, 1.0, DRAIN_WINDOW_MIN),
    (50, -3.0, 1.0, HANDOVER_WINDOW),      # past the deadline
])
def test_drain_window_moves_the_share_in_time_with_as_few_in_flight_as_that_needs(
        remaining, left, cycle, expect):
    assert drain_window(remaining, left, cycle) == expect


@pytest.fixture()
def r():
    client = redis_lib.Redis(host="127.0.0.1", port=6379,
                             db=int(os.environ.get("IMAPAPI_TEST_REDIS_DB", "13")))
    made = [f"pace-test-{uuid.uuid4().hex[:8]}-{i}" for i in range(4)]
    for acct in made:   # held here ("r1") and connected here, as before a drain
        client.hset(keys.account(acct), mapping={"account": acct, "state": "connected"})
        client.hset(keys.LEASES, acct, "7:99999999999999:r1")
    client.made = made
    yield client
    for acct in made:
        client.hdel(keys.LEASES, acct)
        client.delete(keys.account(acct))
    client.close()


def test_drain_counts_a_handover_in_flight_until_the_target_has_it_connected(r):
    a, b, c, d = r.made
    pacer = Pacer()
    far = 1000.0
    assert pacer.drain_allowance(r, {"r2": [a, b, c, d]}, 0.0, far) == {"r2": [a, b]}
    # released, not yet taken: no room (our own `connected` state before the release counts not)
    assert pacer.drain_allowance(r, {"r2": [c, d]}, 0.5, far) == {"r2": []}
    r.hdel(keys.LEASES, a)
    r.hset(keys.account(a), "state", "disconnected")
    assert pacer.in_flight(r, 0.6) == {"r2": 2}
    r.hset(keys.LEASES, a, "8:99999999999999:r2")     # taken, connecting there
    r.hset(keys.account(a), "state", "connecting")
    assert pacer.in_flight(r, 0.7) == {"r2": 2}
    r.hset(keys.account(a), "state", "connected")     # connected there: its slot is free
    assert pacer.drain_allowance(r, {"r2": [c, d]}, 1.0, far) == {"r2": [c]}
    r.delete(keys.account(b))                          # deleted meanwhile: done too
    assert pacer.in_flight(r, 1.1) == {"r2": 1}
    r.hset(keys.LEASES, c, "9:99999999999999:r2")     # a bad password there: its attempt is over
    r.hset(keys.account(c), "state", "authenticationError")
    assert pacer.in_flight(r, 1.2) == {"r2": 0}
    pacer.drain_allowance(r, {"r2": [d]}, 1.3, far)
    assert pacer.in_flight(r, 1.3 + FLIGHT_MAX + 0.1) == {"r2": 0}   # never settled: given up
