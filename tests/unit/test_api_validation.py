"""Request validation through the Flask test client: 400 JSON naming each bad field."""
from __future__ import annotations

import copy

import pytest

from tests.checks import assert_error

from .api_helpers import SEED, app, client, field_keys  # noqa: F401  (fixtures)


def _with(path: str, value):
    payload = copy.deepcopy(SEED)
    target = payload
    *parents, last = path.split(".")
    for name in parents:
        target = target[name]
    if value is KeyError:
        del target[last]
    else:
        target[last] = value
    return payload


@pytest.mark.parametrize("path, value", [
    ("imap.port", "993"),            # strict integers in JSON bodies
    ("imap.port", 0),
    ("imap.port", 65536),
    ("imap.port", 99.5),
    ("imap.host", "not a host"),
    ("imap.host", "1.2.3"),
    ("imap.host", ""),
    ("imap.host", KeyError),
    ("smtp.host", "-bad-.example"),
    ("name", KeyError),
    ("account", KeyError),
    ("account", "x" * 257),
    ("imap.auth.pass", KeyError),
    ("imap.auth.user", KeyError),
    ("imap.secure", "maybe"),
    ("imap.tls", {"rejectUnauthorized": "perhaps"}),
    ("notifyFrom", "yesterday"),
    ("imap.extra", 1),               # unknown keys are rejected, also nested
    ("bogus", True),
])
def test_bad_field_is_named(client, path, value):
    body = assert_error(client.post("/v1/account", json=_with(path, value)), 400, "InvalidInput")
    assert body["message"] == "Invalid input"
    keys = field_keys(body)
    assert path in keys or any(k.startswith(path.rsplit(".", 1)[0]) for k in keys), keys
    assert all(set(f) == {"key", "message"} for f in body["fields"])


def test_every_bad_field_is_reported(client):
    payload = _with("imap.port", 70000)
    payload["smtp"]["host"] = "bad host"
    del payload["name"]
    body = assert_error(client.post("/v1/account", json=payload), 400)
    assert {"imap.port", "smtp.host", "name"} <= field_keys(body)


@pytest.mark.parametrize("host", ["imap.example.com", "127.0.0.1", "::1", "localhost", "mail-1.x.io."])
def test_good_hosts(client, host):
    assert client.post("/v1/account", json=_with("imap.host", host)).status_code == 200


def test_auth_server_instead_of_auth(client):
    payload = _with("imap.auth", KeyError)
    payload["imap"]["useAuthServer"] = True
    assert client.post("/v1/account", json=payload).status_code == 200
    payload["imap"]["auth"] = {"user": "u", "pass": "p"}
    assert "imap.useAuthServer" in field_keys(assert_error(client.post("/v1/account", json=payload), 400))


def test_false_means_not_configured_and_empty_path(client):
    payload = _with("smtp", False)
    payload["path"] = ""
    assert client.post("/v1/account", json=payload).status_code == 200
    body = client.get("/v1/account/example").get_json()
    assert body["smtp"] is False and "path" not in body


def test_not_json(client):
    assert_error(client.post("/v1/account", data="{nope", content_type="application/json"), 400)
    assert_error(client.post("/v1/account", json=[1, 2]), 400)


@pytest.mark.parametrize("query, key", [
    ("", "path"), ("path=INBOX&pageSize=0", "pageSize"), ("path=INBOX&pageSize=1001", "pageSize"),
    ("path=INBOX&page=-1", "page"), ("path=INBOX&page=x", "page"),
])
def test_message_listing_query(client, query, key):
    body = assert_error(client.get(f"/v1/account/example/messages?{query}"), 400, "InvalidInput")
    assert key in field_keys(body)


def test_long_account_id(client):
    assert_error(client.get("/v1/account/" + "a" * 300), 400, "InvalidAccountId")


@pytest.mark.parametrize("url", [
    "/v1/accounts", "/v1/outbox", "/v1/webhooks/dead", "/v1/account/example/messages?path=INBOX",
])
@pytest.mark.parametrize("query, key", [
    ("page=382243989158217216", "page"),   # page * pageSize once overflowed Redis' LRANGE: a 500
    ("page=-1", "page"), ("pageSize=0", "pageSize"), ("pageSize=1001", "pageSize"),
])
def test_every_paged_listing_bounds_page_and_size(client, url, query, key):
    joined = url + ("&" if "?" in url else "?") + query
    body = assert_error(client.get(joined), 400, "InvalidInput")
    assert field_keys(body) == {key}


@pytest.mark.parametrize("cursor", [
    "5701-402950519074089870324370151673886",      # past 64 bits: XRANGE failed, a 500
    "18446744073709551616-0", "18446744073709551615-18446744073709551615", "1-", "-1", "x",
    "1-2-3", "١-٢", "1" * 42,
])
def test_change_feed_rejects_what_is_not_a_stream_id(client, cursor):
    body = assert_error(client.get("/v1/account/example/changes", query_string={"cursor": cursor}),
                        400, "InvalidInput")
    assert field_keys(body) == {"cursor"}


@pytest.mark.parametrize("cursor", ["0", "1795618390048-0", "18446744073709551615-0"])
def test_change_feed_takes_any_stream_id(client, cursor):
    assert client.post("/v1/account", json=SEED).status_code == 200
    resp = client.get("/v1/account/example/changes", query_string={"cursor": cursor})
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["events"] == [] or cursor == "0"
