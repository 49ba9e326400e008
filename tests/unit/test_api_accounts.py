"""Accounts CRUD through the Flask test client on real Redis (tasks run eagerly in-process)."""
from __future__ import annotations

import copy

from imapapi import keys
from tests.checks import assert_error

from .api_helpers import SEED, app, client  # noqa: F401  (fixtures)


def test_create_then_update_says_new_then_existing(client, redis):
    assert client.post("/v1/account", json=SEED).get_json() == {"account": "example", "state": "new"}
    assert client.post("/v1/account", json=SEED).get_json() == {"account": "example",
                                                                 "state": "existing"}
    assert redis.sismember(keys.ACCOUNTS, "example")


def test_get_masks_secrets_and_shows_state(client):
    client.post("/v1/account", json=SEED)
    body = client.get("/v1/account/example").get_json()
    assert body["imap"]["auth"] == {"user": "me@example.com", "pass": "******"}
    assert body["smtp"]["auth"]["pass"] == "******"
    assert "verysecret" not in str(body)
    assert body["state"] == "init" and body["lastError"] is None
    assert body["name"] == "My Example Account"


def test_post_publishes_for_the_sidecar(client, redis):
    pubsub = redis.pubsub()
    pubsub.subscribe(keys.ACCOUNTS_CHANNEL)
    pubsub.get_message(timeout=1)
    client.post("/v1/account", json=SEED)
    msg = pubsub.get_message(timeout=2)
    assert msg and msg["data"] == b"example"
    pubsub.close()


def test_put_is_partial(client):
    payload = copy.deepcopy(SEED)
    payload["copy"] = False
    client.post("/v1/account", json=payload)
    resp = client.put("/v1/account/example", json={"name": "Renamed", "imap": {"port": 143,
                                                                                "secure": False}})
    assert resp.status_code == 200 and resp.get_json() == {"account": "example"}
    body = client.get("/v1/account/example").get_json()
    assert body["name"] == "Renamed"
    assert body["copy"] is False                                # not reset (original's quirk)
    assert body["imap"]["host"] == "imap.gmail.com"            # kept
    assert body["imap"]["port"] == 143 and body["imap"]["secure"] is False
    assert body["imap"]["auth"] == {"user": "me@example.com", "pass": "******"}
    assert body["smtp"]["port"] == 465


def test_put_rejects_account_and_unknown_and_404(client):
    client.post("/v1/account", json=SEED)
    body = assert_error(client.put("/v1/account/example", json={"account": "x"}), 400)
    assert body["fields"][0]["key"] == "account"
    assert_error(client.put("/v1/account/missing", json={"name": "x"}), 404, "AccountNotFound")


def test_list_paging_and_state_filter(client, redis):
    for i in range(5):
        client.post("/v1/account", json={**SEED, "account": f"acc{i}", "name": f"N{i}"})
    redis.hset(keys.account("acc3"), mapping={
        "state": "authenticationError",
        "lastErrorState": '{"response": "Invalid credentials", "serverResponseCode": "AUTHENTICATIONFAILED"}'})
    body = client.get("/v1/accounts?page=1&pageSize=2").get_json()
    assert body["total"] == 5 and body["pages"] == 3 and body["page"] == 1
    assert [a["account"] for a in body["accounts"]] == ["acc2", "acc3"]
    failed = client.get("/v1/accounts?state=authenticationError").get_json()
    assert failed["total"] == 1
    assert failed["accounts"][0]["lastError"]["serverResponseCode"] == "AUTHENTICATIONFAILED"
    assert client.get("/v1/accounts?page=9").get_json()["accounts"] == []
    assert_error(client.get("/v1/accounts?state=bogus"), 400)
    assert_error(client.get("/v1/accounts?pageSize=1001"), 400)


def test_empty_list_has_zero_pages(client):
    assert client.get("/v1/accounts").get_json() == {"total": 0, "page": 0, "pages": 0,
                                                     "accounts": []}


def test_delete(client, redis):
    client.post("/v1/account", json=SEED)
    redis.set(keys.account_prefix("example") + "x", "1")
    assert client.delete("/v1/account/example").get_json() == {"account": "example", "deleted": True}
    assert not redis.exists(keys.account("example"), keys.account_prefix("example") + "x")
    assert_error(client.get("/v1/account/example"), 404, "AccountNotFound")
    assert_error(client.delete("/v1/account/example"), 404, "AccountNotFound")


def test_reconnect_in_any_state(client, redis):
    client.post("/v1/account", json=SEED)
    redis.hset(keys.account("example"), "state", "connectError")
    resp = client.put("/v1/account/example/reconnect", json={"reconnect": True})
    assert resp.status_code == 200 and resp.get_json() == {"reconnect": True}
    assert redis.hget(keys.account("example"), "reconnectRequested")
    assert_error(client.put("/v1/account/nope/reconnect", json={"reconnect": True}), 404)


def test_live_routes_answer_503_with_state_when_not_connected(client):
    client.post("/v1/account", json=SEED)
    body = assert_error(client.get("/v1/account/example/mailboxes"), 503, "NotConnected")
    assert body["state"] == "init"
    body = assert_error(client.get("/v1/account/example/messages?path=INBOX"), 503, "NotConnected")
    assert body["state"] == "init"
    assert_error(client.get("/v1/account/nope/messages?path=INBOX"), 404, "AccountNotFound")
