"""A client that drops a download half way frees the account's connection at once."""
from __future__ import annotations

import time

import pytest

from tests.checks import wait_until
from tests.integration.helpers import message

pytestmark = pytest.mark.integration

LINE = b"0123456789abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ0123\r\n"


def test_dropped_download_does_not_hold_back_new_mail(api, new_account, webhook_receiver):
    """The download runs on the account's main connection (IDLE paused). The sidecar used to
    notice a reader that left only after its 30 s stall limit, twice over, so new mail went
    unannounced for a minute; now the API says the reader is gone and the sidecar stops."""
    name = f"r{time.time_ns()}"
    acc = new_account(webhooks=webhook_receiver.url(name))
    raw = message("big download") + LINE * (24 * 1024 * 1024 // len(LINE))
    acc.append(raw)
    entry = wait_until(lambda: next(
        (m for m in api.get(f"/v1/account/{acc.id}/messages", params={"path": "INBOX"})
         .json()["messages"] if m["subject"] == "big download"), None), 15, "big message")

    with api.get(f"/v1/account/{acc.id}/message/{entry['id']}/source", stream=True) as resp:
        assert resp.status_code == 200
        first = next(resp.iter_content(256 * 1024))
        assert raw.startswith(first)
    # the client is gone (connection closed with 20+ MB unread)

    dropped = time.monotonic()
    acc.imap().append("INBOX", message("after the dropped download"))
    got = webhook_receiver.wait_for(
        lambda ev: [e for e in ev if e["event"] == "messageNew"
                    and e["data"].get("subject") == "after the dropped download"], 20, name)
    took = time.monotonic() - dropped
    assert got and took < 10, f"messageNew {took:.1f} s after the client dropped the download"
    # and the account serves downloads again
    again = api.get(f"/v1/account/{acc.id}/message/{entry['id']}/source")
    assert again.status_code == 200 and again.content == raw
