"""A message whose file vanished under an open session: Dovecot answers X-GUID with nothing.

Seen in the 10,000-change run under folder renames: `RFC822.SIZE 0` and an empty X-GUID, which
imapclient cannot parse ("uneven number of response items"); the folder's sync failed on every
pass and its new messages waited minutes. The details and flag FETCHes fall back to fetching
without the id items (sidecar/sync/details.py, imapio.fetch_flags).
"""
from __future__ import annotations

import os

import pytest
from imapclient.exceptions import ProtocolError

from sidecar.imap import objectid
from sidecar.sync import imapio
from sidecar.sync.details import new_message_entries
from tests.fixtures.services import unique

from .helpers import message

pytestmark = pytest.mark.integration


def _ghost(dovecot):
    """-> (a session with Work selected, uid of a message whose file is gone, a healthy uid)."""
    user = unique("ghost")
    dovecot.add_user(user, "pw12345")
    writer = dovecot.client(user, "pw12345")
    writer.create_folder("Work")
    writer.append("Work", message("ghost"))
    writer.append("Work", message("healthy"))
    writer.logout()
    client = dovecot.client(user, "pw12345")
    client.select_folder("Work")
    ghost, healthy = sorted(client.search(["ALL"]))
    # the message files as this session saw them; remove the first one (by name order)
    folder = dovecot.root / "mail" / user / "Maildir" / ".Work"
    files = sorted(p for sub in ("cur", "new") for p in (folder / sub).iterdir())
    os.remove(files[0])
    return client, ghost, healthy


def test_details_of_a_vanished_message_do_not_stop_the_folder(dovecot):
    client, ghost, healthy = _ghost(dovecot)
    assert list(objectid.items(client)) == [b"X-GUID"]
    entries = new_message_entries(client, 1, [ghost, healthy], {})
    assert entries[healthy]["subject"] == "healthy" and entries[healthy]["emailId"]
    # Dovecot drops the message once it found the file gone: absent, like one expunged
    # before its details were fetched (or, fetched without ids, an entry without emailId)
    assert ghost not in entries or "emailId" not in entries[ghost]
    client.logout()


def test_what_the_sync_used_to_fail_on(dovecot):
    client, ghost, healthy = _ghost(dovecot)
    with pytest.raises(ProtocolError):
        client.fetch([ghost], [b"UID", b"RFC822.SIZE", b"X-GUID", b"ENVELOPE"])
    flags, _gone, _ids = imapio.fetch_flags(client, id_items=objectid.items(client))
    assert healthy in flags   # the flag FETCH with X-GUID still reads
    client.logout()
