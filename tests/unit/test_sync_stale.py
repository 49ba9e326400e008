"""The stale-folder-list verdict: a new session, or leave the folder to the sweeps (no spin)."""
import pytest

from sidecar.sync.engine import stale_verdict

LIVE = {"INBOX", "A", "B"}


@pytest.mark.parametrize("listed, checked, unreachable, may_reconnect, expected", [
    # nothing wrong
    (set(), set(), set(), True, (False, set(), set())),
    # a folder SELECT called nonexistent is still listed and unselectable: new session
    ({"A"}, {"A"}, set(), True, (True, set(), {"A"})),
    # ... but a new session was tried lately: leave it to the sweeps, say so once
    ({"A"}, {"A"}, set(), False, (False, {"A"}, {"A"})),
    # already left alone: not reported again, no immediate re-LIST for it
    (set(), set(), {"A"}, False, (False, {"A"}, set())),
    # a second one joins it
    ({"B"}, {"B"}, {"A"}, False, (False, {"A", "B"}, {"B"})),
    # retried once a new session may help: still broken -> new session
    ({"A"}, {"A"}, {"A"}, True, (True, set(), {"A"})),
    # retried: selectable again -> no longer unreachable
    (set(), {"A"}, {"A"}, True, (False, set(), set())),
    # no longer listed (deleted for real) -> forgotten
    (set(), set(), {"Gone"}, False, (False, set(), set())),
])
def test_stale_verdict(listed, checked, unreachable, may_reconnect, expected):
    assert stale_verdict(listed, checked, unreachable, LIVE, may_reconnect) == expected
