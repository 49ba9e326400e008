"""When the sidecar freezes its long-lived objects out of the GC's full collections, and when it thaws them."""
import gc

import pytest

from sidecar import gcfreeze
from sidecar.gcfreeze import FULL_EVERY, REFREEZE_EVERY, SETTLE, Freezer, due

T = 100_000.0

CASES = [
    # (now - frozen_at, now - full_at, settled for (None: setups running), busy since freeze, expected)
    (5, 5, None, True, None),                       # the ramp is still connecting
    (5, 5, SETTLE - 1, True, None),                 # drained, not for long yet
    (5, 5, SETTLE, True, "freeze"),                 # drained: freeze what it built
    (5, 5, SETTLE, False, None),                    # nothing new since the last freeze
    (REFREEZE_EVERY, 5, SETTLE, False, "freeze"),   # reconnects and the like join, now and then
    (5, FULL_EVERY, SETTLE, False, "full"),         # thaw and collect what died frozen
    (5, FULL_EVERY, None, True, None),              # ...but never in the middle of a ramp
]


@pytest.mark.parametrize("since_freeze,since_full,settled,busy,expected", CASES)
def test_due(since_freeze, since_full, settled, busy, expected):
    settled_since = None if settled is None else T - settled
    assert due(T, T - since_freeze, T - since_full, settled_since, busy) == expected


@pytest.fixture
def thawed():
    yield
    gc.unfreeze()   # other tests' garbage must stay collectable


class Clock:
    def __init__(self):
        self.now = T

    def __call__(self):
        return self.now


def test_freezer_freezes_once_the_ramp_drained_and_thaws_hourly(thawed):
    clock = Clock()
    freezer = Freezer(clock)
    assert freezer.tick(0) is None                 # started with nothing to connect
    clock.now += 1
    assert freezer.tick(5) is None                 # connecting
    clock.now += 1
    assert freezer.tick(0) is None                 # drained just now
    clock.now += SETTLE
    assert freezer.tick(0) == "freeze"
    assert gc.get_freeze_count() > 0
    clock.now += 1
    assert freezer.tick(0) is None
    clock.now += REFREEZE_EVERY
    assert freezer.tick(0) == "freeze"
    clock.now = T + FULL_EVERY
    assert freezer.tick(0) == "full"
    assert freezer.tick(0) is None


def test_cycles_made_after_a_freeze_are_still_collected(thawed):
    gc.collect()
    gc.freeze()

    class Node:
        pass
    a, b = Node(), Node()
    a.peer, b.peer = b, a
    del a, b
    assert gc.collect() >= 2
    assert gcfreeze.REFREEZE_EVERY < gcfreeze.FULL_EVERY
