"""Account state machine: the transition table, table-driven."""
import pytest

from sidecar.fsm import PERSISTED, InvalidTransition, imap_signature, transition
from imapapi.accounts import STATES

ALLOWED = [
    ("init", "start", "connecting"),
    ("connecting", "ok", "connected"),
    ("connecting", "auth_failed", "authenticationError"),
    ("connecting", "connect_failed", "connectError"),
    ("connected", "dropped", "disconnected"),
    # logged in, then the server ended the session during the first sync (folder deleted under us)
    ("connecting", "dropped", "disconnected"),
    ("disconnected", "start", "connecting"),
    ("connectError", "start", "connecting"),
    ("authenticationError", "start", "connecting"),
    ("connected", "start", "connecting"),
    ("connecting", "start", "connecting"),
    ("connected", "stop", "stopped"),
    ("init", "stop", "stopped"),
    ("connectError", "stop", "stopped"),
]
REFUSED = [
    ("init", "ok"), ("init", "dropped"), ("connected", "ok"), ("connected", "auth_failed"),
    ("disconnected", "ok"), ("authenticationError", "dropped"), ("connectError", "ok"),
    ("stopped", "start"),
]


@pytest.mark.parametrize("state,event,expected", ALLOWED)
def test_allowed(state, event, expected):
    assert transition(state, event) == expected


@pytest.mark.parametrize("state,event", REFUSED)
def test_refused(state, event):
    with pytest.raises(InvalidTransition):
        transition(state, event)


def test_persisted_states_are_account_states():
    assert PERSISTED <= set(STATES)


def test_signature_changes_only_with_connection_settings():
    base = {"account": "a", "name": "x", "imap": {"host": "h", "port": 1}, "path": "*"}
    assert imap_signature(base) == imap_signature({**base, "name": "other"})
    assert imap_signature(base) != imap_signature({**base, "imap": {"host": "h", "port": 2}})
    assert imap_signature(base) != imap_signature({**base, "path": "INBOX"})
