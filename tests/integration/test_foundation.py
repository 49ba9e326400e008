"""End to end (issue 2): accounts and their connection states, as a user of the API sees them."""
from __future__ import annotations

import json
import math
import re
import time

import pytest

from tests.fixtures.dovecot import free_port
from tests.checks import assert_error

pytestmark = pytest.mark.integration


# -- accounts -----------------------------------------------------------------------------------
def test_create_then_update_reports_new_then_existing(api, dovecot, stack):
    payload = dovecot.account_payload("acc-new-existing", "nobody-user", "pw")
    first = api.post("/v1/account", json=payload)
    assert first.status_code == 200, first.text
    assert first.json() == {"account": "acc-new-existing", "state": "new"}
    again = api.post("/v1/account", json=payload)
    assert again.json() == {"account": "acc-new-existing", "state": "existing"}
    assert api.delete("/v1/account/acc-new-existing").status_code == 200


def test_get_account_masks_secrets_and_shows_connected(api, new_account):
    acc = new_account()
    body = api.get(f"/v1/account/{acc.id}").json()
    assert body["account"] == acc.id
    assert body["state"] == "connected"
    assert body["imap"]["auth"] == {"user": acc.user, "pass": "******"}
    assert acc.password not in json.dumps(body)
    assert body["imap"]["host"] == "127.0.0.1" and body["imap"]["port"] == acc.payload["imap"]["port"]


def test_invalid_account_payload_is_400_naming_the_field(api):
    resp = api.post("/v1/account", json={"account": "bad", "name": "x",
                                          "imap": {"host": "127.0.0.1", "port": 99999}})
    body = assert_error(resp, 400)
    keys = " ".join(str(f.get("key")) for f in body.get("fields", []))
    assert "port" in keys, body


def test_unknown_account_is_404(api, stack):
    assert_error(api.get("/v1/account/no-such-account"), 404, "AccountNotFound")
    assert_error(api.get("/v1/account/no-such-account/messages?path=INBOX"), 404)


def test_list_accounts_pages_and_filters_by_state(api, new_account):
    good = [new_account().id for _ in range(3)]
    bad = new_account(api_password="wrong", wait="authenticationError").id

    seen, page, pages = [], 0, None
    while pages is None or page < pages:
        body = api.get("/v1/accounts", params={"page": page, "pageSize": 2}).json()
        assert len(body["accounts"]) <= 2
        pages = body["pages"]
        assert pages == math.ceil(body["total"] / 2)
        seen += [a["account"] for a in body["accounts"]]
        page += 1
    assert len(seen) == len(set(seen))
    assert set(good) | {bad} <= set(seen)

    errored = api.get("/v1/accounts", params={"state": "authenticationError", "pageSize": 100}).json()
    ids = {a["account"] for a in errored["accounts"]}
    assert bad in ids and not ids & set(good)
    assert all(a["state"] == "authenticationError" and a["lastError"] for a in errored["accounts"])
    connected = api.get("/v1/accounts", params={"state": "connected", "pageSize": 100}).json()
    assert set(good) <= {a["account"] for a in connected["accounts"]}


def test_bad_page_size_for_accounts_is_400(api, stack):
    body = assert_error(api.get("/v1/accounts", params={"pageSize": 0}), 400)
    assert any(f["key"] == "pageSize" for f in body["fields"]), body


# -- connection states ---------------------------------------------------------------------------
def test_wrong_password_is_authentication_error_without_tight_retry(api, new_account, dovecot):
    acc = new_account(api_password="not-the-password", wait="authenticationError")
    body = acc.state
    assert body["lastError"] and body["lastError"].get("response"), body
    # Not retried in a tight loop: over the next 6 s Dovecot sees at most one more attempt.
    time.sleep(6)
    log = (dovecot.root / "dovecot.log").read_text(errors="replace")
    attempts = len(re.findall(rf"auth failed.*user=<{re.escape(acc.user)}>", log))
    assert 1 <= attempts <= 3, attempts
    assert api.get(f"/v1/account/{acc.id}").json()["state"] == "authenticationError"


def test_unreachable_port_is_connect_error(api, new_account):
    acc = new_account(imap={"port": free_port()}, wait="connectError")
    assert acc.state["lastError"], acc.state


def test_not_connected_account_gives_503_with_state(api, new_account):
    acc = new_account(imap={"port": free_port()}, wait="connectError")
    for path in (f"/v1/account/{acc.id}/messages?path=INBOX", f"/v1/account/{acc.id}/mailboxes"):
        body = assert_error(api.get(path), 503)
        assert body["state"] == "connectError", body


def test_implicit_tls_connects(new_account):
    acc = new_account(secure=True)
    assert acc.state["state"] == "connected"


def test_starttls_is_used_on_plain_port(new_account, dovecot):
    acc = new_account(secure=False)
    assert acc.state["state"] == "connected"
    log = (dovecot.root / "dovecot.log").read_text(errors="replace")
    logins = [line for line in log.splitlines() if "Login: " in line and f"user=<{acc.user}>" in line]
    assert logins and all(", TLS" in line for line in logins), logins


def test_self_signed_certificate_refused_by_default(new_account):
    acc = new_account(secure=True, imap={"tls": {}}, wait="connectError")
    assert "certif" in json.dumps(acc.state["lastError"]).lower(), acc.state


def test_password_update_is_picked_up_within_seconds(api, stack, new_account, dovecot):
    acc = new_account()
    wrong = {**acc.payload, "imap": {**acc.payload["imap"],
                                     "auth": {"user": acc.user, "pass": "wrong-now"}}}
    assert api.post("/v1/account", json=wrong).json()["state"] == "existing"
    stack.wait_state(acc.id, "authenticationError", 8)
    dovecot.add_user(acc.user, "new-password")
    fixed = {**acc.payload, "imap": {**acc.payload["imap"],
                                     "auth": {"user": acc.user, "pass": "new-password"}}}
    api.post("/v1/account", json=fixed)
    # Even though auth errors back off from 60 s, a settings change reconnects at once.
    stack.wait_state(acc.id, "connected", 8)


def test_delete_account_then_404(api, new_account):
    acc = new_account()
    assert api.delete(f"/v1/account/{acc.id}").status_code == 200
    assert_error(api.get(f"/v1/account/{acc.id}"), 404, "AccountNotFound")
    assert_error(api.get(f"/v1/account/{acc.id}/mailboxes"), 404)
    assert acc.id not in {a["account"] for a in api.get("/v1/accounts?pageSize=1000").json()["accounts"]}
