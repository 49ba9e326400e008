"""The folder probe's pure decisions: when a second session lists, and when ours is replaced."""
import pytest

from sidecar.sync.probe import RECYCLE_EVERY, decide, should_probe

MAIN = {"INBOX", "Sent", "Work"}


@pytest.mark.parametrize("deleted, created, baselined, expected", [
    # folders gone and none new: what a rename looks like when our LIST missed the new name
    (["Alpha"], [], True, True),
    # gone and new together: a rename seen whole (or unrelated changes): nothing to check
    (["Alpha"], ["Beta"], True, False),
    # only new folders, or nothing moved
    ([], ["Beta"], True, False),
    ([], [], True, False),
    # a new account's first look compares with nothing stored: never probe
    (["Alpha"], [], False, False),
])
def test_should_probe(deleted, created, baselined, expected):
    assert should_probe(deleted, created, baselined) is expected


@pytest.mark.parametrize("other, since, expected", [
    # the second session names a folder ours misses: replace ours
    (MAIN | {"Beta"}, RECYCLE_EVERY, ("recycle", {"Beta"})),
    (MAIN | {"Beta"}, 10 * RECYCLE_EVERY, ("recycle", {"Beta"})),
    # ... but ours was replaced within the last minute: commit, never a login loop
    (MAIN | {"Beta"}, RECYCLE_EVERY - 1, ("commit", {"Beta"})),
    # same view (a plain delete): commit as before, no new session
    (set(MAIN), RECYCLE_EVERY, ("commit", set())),
    # the second session lists fewer (deleted meanwhile): ours is not behind
    ({"INBOX", "Sent"}, RECYCLE_EVERY, ("commit", set())),
    # the probe failed (login refused, paced, timed out): commit as before
    (None, RECYCLE_EVERY, ("commit", set())),
])
def test_decide(other, since, expected):
    assert decide(MAIN, other, since) == expected
