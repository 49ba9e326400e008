"""Sidecar runtime end to end: drops and reconnects, forced reconnect, ownership, clean shutdown."""
from __future__ import annotations

import re
import signal
import subprocess
import time

import pytest

from imapapi import keys
from tests.checks import wait_until

pytestmark = pytest.mark.integration


def logins(dovecot, user: str) -> int:
    log = (dovecot.root / "dovecot.log").read_text(errors="replace")
    return len(re.findall(rf"imap-login: (?:Info: )?Login: user=<{re.escape(user)}>", log))


def test_server_side_disconnect_reconnects_and_serves_again(api, stack, new_account, dovecot):
    acc = new_account()
    before = logins(dovecot, acc.user)
    subprocess.run(["doveadm", "-c", str(dovecot.root / "dovecot.conf"), "kick", acc.user],
                   check=True, capture_output=True)
    wait_until(lambda: logins(dovecot, acc.user) > before, 20, "the sidecar logs in again", 0.1)
    body = stack.wait_state(acc.id, "connected", timeout=20)
    assert body["lastError"] is None
    resp = api.get(f"/v1/account/{acc.id}/messages", params={"path": "INBOX"})
    assert resp.status_code == 200, resp.text


def test_reconnect_request_forces_a_fresh_login(api, stack, new_account, dovecot):
    acc = new_account()
    before = logins(dovecot, acc.user)
    resp = api.put(f"/v1/account/{acc.id}/reconnect", json={"reconnect": True})
    assert resp.status_code == 200, resp.text
    wait_until(lambda: logins(dovecot, acc.user) > before, 5, "a new login", 0.1)
    stack.wait_state(acc.id, "connected", timeout=20)


def test_new_mail_during_idle_is_visible_and_connection_is_reused(api, new_account, dovecot):
    acc = new_account()
    direct = acc.imap()          # one direct connection for planting, opened before counting
    try:
        before = logins(dovecot, acc.user)
        for i in range(3):
            direct.append("INBOX", f"Subject: idle {i}\r\n\r\nbody\r\n".encode())
            resp = api.get(f"/v1/account/{acc.id}/messages", params={"path": "INBOX"})
            assert resp.status_code == 200 and resp.json()["total"] == i + 1, resp.text
    finally:
        direct.logout()
    # Listings ran on the persistent connection (at most one extra connection was needed
    # when a listing met the main connection busy with the new-mail wake-up).
    assert logins(dovecot, acc.user) - before <= 1


def test_owner_entry_points_at_a_live_sidecar(redis, new_account):
    acc = new_account()
    sid = redis.hget(keys.OWNERS, acc.id)
    assert sid, "no owner recorded"
    beat = redis.zscore(keys.SIDECARS, sid)
    assert beat is not None and beat > time.time() - 10


def test_sigterm_logs_out_releases_ownership_and_restart_reconnects(api, redis, stack, new_account):
    acc = new_account()
    sid = redis.hget(keys.OWNERS, acc.id)
    started = time.monotonic()
    stack.kill("sidecar", signal.SIGTERM)
    assert time.monotonic() - started < 8
    assert redis.hget(keys.OWNERS, acc.id) is None
    assert redis.zscore(keys.SIDECARS, sid) is None
    body = api.get(f"/v1/account/{acc.id}").json()
    assert body["state"] == "disconnected", body
    resp = api.get(f"/v1/account/{acc.id}/messages", params={"path": "INBOX"})
    assert resp.status_code == 503 and resp.json()["state"] == "disconnected", resp.text
    stack.start("sidecar")
    stack.wait_state(acc.id, "connected", timeout=30)
    resp = api.get(f"/v1/account/{acc.id}/messages", params={"path": "INBOX"})
    assert resp.status_code == 200, resp.text


def test_empty_folder_listing_keeps_total_and_lowercase_inbox_works(api, new_account):
    acc = new_account()
    resp = api.get(f"/v1/account/{acc.id}/messages", params={"path": "Sent"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["total"], body["page"], body["pages"], body["messages"]) == (0, 0, 1, [])
    acc.append(b"Subject: lower\r\n\r\nx\r\n")
    resp = api.get(f"/v1/account/{acc.id}/messages", params={"path": "inbox"})
    assert resp.status_code == 200 and resp.json()["total"] == 1, resp.text


def test_mailbox_listing_is_stored_for_other_readers(api, redis, new_account):
    import json

    acc = new_account()
    resp = api.get(f"/v1/account/{acc.id}/mailboxes")
    assert resp.status_code == 200, resp.text
    stored = {k.decode(): json.loads(v) for k, v in
              redis.hgetall(keys.mailbox_listing(acc.id)).items()}
    assert stored["INBOX"]["specialUse"] == "\\Inbox"
    assert {m["path"] for m in resp.json()["mailboxes"]} == set(stored)


def test_second_sidecar_takes_a_share_and_hands_it_back(stack, redis, new_account):
    import sys
    import uuid

    accs = [new_account() for _ in range(8)]
    extra_sid = f"extra-{uuid.uuid4().hex[:8]}"
    proc = subprocess.Popen([sys.executable, "-m", "sidecar"], env={**stack.env, "SIDECAR_ID":
                            extra_sid}, cwd=str(stack.log_dir), stdout=open(stack.log_dir / "extra-sidecar.log", "ab"),
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def owners():
        return [(redis.hget(keys.OWNERS, a.id) or b"").decode() for a in accs]

    def all_connected():
        return all(stack.get_account(a.id).json()["state"] == "connected" for a in accs)

    try:
        wait_until(lambda: extra_sid in owners() and all_connected(), 30, owners, 0.1)
        moved = owners().count(extra_sid)
        assert 0 < moved < len(accs)   # rendezvous hashing: a share, not everything
        time.sleep(3)   # let it log in to its share
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
    assert proc.returncode == 0
    # The remaining sidecar picks the released accounts up again (pub/sub-free: periodic pass).
    wait_until(lambda: extra_sid not in owners() and all(owners()) and all_connected(), 30,
               owners, 0.1)
