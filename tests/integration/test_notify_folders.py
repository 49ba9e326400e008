"""NOTIFY covers every folder: non-ASCII names (pushed as literals) and folder create/delete/rename.

The sidecar runs with a one-hour STATUS sweep here, and nothing calls the API after the account
is connected (an op would trigger a sweep), so only a push can deliver these events in time.
"""
from __future__ import annotations

import signal
import time

import pytest

from .helpers import message

pytestmark = pytest.mark.integration

PUSH_WAIT = 4.0   # Dovecot delays pushes ~0.5 s; a sweep would take an hour
UMLAUT = "&AMQ-rger/&ANw-ber"   # "Ärger/Über" as LIST (and every path in IMAP API) spells it


def _restart_sidecar(stack, sweep):
    stack.kill("sidecar", signal.SIGTERM)
    if sweep is None:
        stack.env.pop("STATUS_SWEEP", None)
    else:
        stack.env["STATUS_SWEEP"] = sweep
    stack.start("sidecar")


@pytest.fixture(scope="module")
def long_sweep(stack):
    old = stack.env.get("STATUS_SWEEP")
    _restart_sidecar(stack, "1h")
    yield
    _restart_sidecar(stack, old)


@pytest.fixture
def pushed(long_sweep, new_account, webhook_receiver):
    """-> (account, receiver name, direct IMAP client) with the folders of the test in place."""
    def make(*folders):
        name = f"r{time.time_ns()}"
        acc = new_account(webhooks=webhook_receiver.url(name))
        client = acc.imap()
        client.folder_encode = False   # paths exactly as the sidecar reports them
        for folder in folders:
            client.create_folder(folder)
        for folder in folders:   # wait until the sidecar knows them (pushed as well)
            webhook_receiver.wait_for(lambda ev, f=folder: of(ev, "mailboxNew", f), PUSH_WAIT, name)
        return acc, name, client
    return make


def of(events, name, path):
    return [e for e in events if e["event"] == name and e.get("path") == path]


def assert_no_reconnect(receiver, name):
    """A reconnect also re-lists every folder; one login proves the push delivered the events."""
    logins = [e for e in receiver.events(name) if e["event"] == "authenticationSuccess"]
    assert len(logins) == 1, "the sidecar reconnected (a push it could not read?)"


def test_append_to_non_ascii_folder_is_pushed(pushed, webhook_receiver):
    acc, name, client = pushed("&AMQ-rger", UMLAUT)
    client.append(UMLAUT, message("umlaut push"))
    got = webhook_receiver.wait_for(lambda ev: of(ev, "messageNew", UMLAUT), PUSH_WAIT, name)
    assert got[0]["data"]["subject"] == "umlaut push"
    client.select_folder(UMLAUT)
    client.add_flags([got[0]["data"]["uid"]], [b"\\Flagged"])
    upd = webhook_receiver.wait_for(lambda ev: of(ev, "messageUpdated", UMLAUT), PUSH_WAIT, name)
    assert upd[0]["data"]["changes"]["flags"] == {"added": ["\\Flagged"]}
    assert_no_reconnect(webhook_receiver, name)


def test_folder_created_renamed_deleted_by_another_client(pushed, webhook_receiver):
    acc, name, client = pushed()
    client.create_folder("Pushed")
    new = webhook_receiver.wait_for(lambda ev: of(ev, "mailboxNew", "Pushed"), PUSH_WAIT, name)
    assert new[0]["data"]["path"] == "Pushed" and new[0]["data"]["uidValidity"]
    client.rename_folder("Pushed", "&ANw-bersiedelt")
    webhook_receiver.wait_for(lambda ev: of(ev, "mailboxDeleted", "Pushed"), PUSH_WAIT, name)
    moved = webhook_receiver.wait_for(lambda ev: of(ev, "mailboxNew", "&ANw-bersiedelt"),
                                      PUSH_WAIT, name)
    assert moved[0]["data"]["name"] == "Übersiedelt"
    # a folder that appeared by push is watched by push too
    client.append("&ANw-bersiedelt", message("after rename"))
    webhook_receiver.wait_for(lambda ev: of(ev, "messageNew", "&ANw-bersiedelt"), PUSH_WAIT, name)
    client.delete_folder("&ANw-bersiedelt")
    gone = webhook_receiver.wait_for(lambda ev: of(ev, "mailboxDeleted", "&ANw-bersiedelt"),
                                     PUSH_WAIT, name)
    assert gone[0]["data"]["path"] == "&ANw-bersiedelt"
    assert_no_reconnect(webhook_receiver, name)


def test_flag_changes_in_an_unselected_folder_are_pushed(pushed, webhook_receiver):
    """Once CONDSTORE/QRESYNC is enabled (the sidecar does it before NOTIFY), Dovecot pushes a
    STATUS with the new HIGHESTMODSEQ for every flag change in a folder that is not selected;
    without ENABLE it pushes only \\Seen. Each change waits out the follow-up sweep of the
    previous push, so only the flag's own push can report it in time."""
    acc, name, client = pushed("Work")
    client.append("Work", message("flag push"))
    uid = webhook_receiver.wait_for(lambda ev: of(ev, "messageNew", "Work"), PUSH_WAIT,
                                    name)[0]["data"]["uid"]
    client.select_folder("Work")
    for flag in ("\\Flagged", "$Label1", "\\Answered"):
        time.sleep(2.0)   # past the follow-up sweep (~1 s after a push)
        client.add_flags([uid], [flag])
        webhook_receiver.wait_for(
            lambda ev, f=flag: [e for e in of(ev, "messageUpdated", "Work")
                                if f in e["data"]["changes"]["flags"].get("added", [])],
            PUSH_WAIT, name)
    assert_no_reconnect(webhook_receiver, name)
