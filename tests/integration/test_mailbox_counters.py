"""End to end: mailbox counters are current right after mail arrives (STATUS on the selected folder)."""
from __future__ import annotations

import pytest

from tests.integration.helpers import message

pytestmark = pytest.mark.integration


def inbox(api, acc) -> dict:
    resp = api.get(f"/v1/account/{acc.id}/mailboxes", params={"counters": "true"})
    assert resp.status_code == 200, resp.text
    return next(m for m in resp.json()["mailboxes"] if m["path"] == "INBOX")


def test_counters_of_the_idle_folder_include_mail_that_just_arrived(api, new_account):
    acc = new_account()
    assert inbox(api, acc)["messages"] == 0
    for n in (1, 2, 3):
        # the sidecar has INBOX selected for IDLE; Dovecot answers STATUS on a selected folder
        # from that session's view, which has not seen this message yet
        acc.append(message(f"new {n}"))
        box = inbox(api, acc)
        assert (box["messages"], box["unseen"], box["uidNext"]) == (n, n, n + 1), box
