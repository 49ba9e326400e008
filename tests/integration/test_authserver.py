"""Auth server end to end: a real HTTP credentials server on 127.0.0.1 feeding IMAP logins and sends."""
from __future__ import annotations

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from imapapi import authserver, keys
from tests.fixtures.dovecot import free_port
from tests.fixtures.services import CONNECT_TIMEOUT, unique

pytestmark = pytest.mark.integration

# The seed's "Register managed account" curl body, verbatim.
SEED_MANAGED = json.loads("""{
    "account": "ouath-user",
    "name": "Example",
    "imap": {
        "host": "imap.gmail.com",
        "port": 993,
        "secure": true,
        "useAuthServer": true
    },
    "smtp": {
        "host": "smtp.gmail.com",
        "port": 465,
        "secure": true,
        "useAuthServer": true
    }
}""")


class AuthServer:
    """Answers GET /creds?account=&proto= from `answers[(account, proto)]` = (status, body[, delay]);
    unknown pairs get 404. Records every request (query and Authorization header)."""

    def __init__(self):
        self.answers: dict[tuple[str, str], tuple] = {}
        self.requests: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
                outer.requests.append({"path": urlsplit(self.path).path, "query": query,
                                       "authorization": self.headers.get("Authorization")})
                status, body, *delay = outer.answers.get(
                    (query.get("account"), query.get("proto")), (404, {"error": "unknown"}))
                if delay:
                    time.sleep(delay[0])
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except BrokenPipeError:
                    pass   # the timeout test's client gave up first

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/creds"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def calls(self, account: str, proto: str) -> list[dict]:
        return [r for r in self.requests
                if r["query"].get("account") == account and r["query"].get("proto") == proto]


@pytest.fixture(scope="module")
def auth_server():
    server = AuthServer()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


@pytest.fixture
def configured(auth_server, redis):
    """The authServer setting points at the test server (set directly: the API path is unit-tested)."""
    redis.hset(keys.SETTINGS, "authServer", json.dumps(auth_server.url))
    yield auth_server
    redis.hdel(keys.SETTINGS, "authServer")


# -- fetch() against the real server --------------------------------------------------------------
def test_fetch_sends_params_and_basic_auth(auth_server, redis):
    auth_server.answers[("f1", "imap")] = (200, {"user": "u1", "pass": "p1", "junk": True})
    with_userinfo = auth_server.url.replace("http://", "http://svc:s%40cret@")
    redis.hset(keys.SETTINGS, "authServer", json.dumps(with_userinfo))
    try:
        assert authserver.fetch(redis, "f1", "imap") == {"user": "u1", "pass": "p1"}
    finally:
        redis.hdel(keys.SETTINGS, "authServer")
    [req] = auth_server.calls("f1", "imap")
    assert req["path"] == "/creds"
    assert req["authorization"] == "Basic " + base64.b64encode(b"svc:s@cret").decode()


@pytest.mark.parametrize("answer, message", [
    ((500, {"user": "u", "pass": "p"}), "Auth server answered HTTP 500"),
    ((200, b"<html>not json"), "not valid JSON"),
    ((200, {"user": "u", "pass": "p", "accessToken": "t"}), "exactly one of pass or accessToken"),
    ((200, {"user": "u", "pass": "p"}, 3), "did not answer in time"),
])
def test_fetch_failures_are_clear_text(configured, redis, answer, message):
    account = unique("f")
    configured.answers[(account, "imap")] = answer
    with pytest.raises(authserver.AuthServerError) as info:
        authserver.fetch(redis, account, "imap", timeout=1.0)
    assert message in info.value.message and info.value.code == "HTTPRequestError"


def test_fetch_unreachable_server(redis):
    redis.hset(keys.SETTINGS, "authServer", json.dumps(f"http://127.0.0.1:{free_port()}/x"))
    try:
        with pytest.raises(authserver.AuthServerError, match="Cannot connect"):
            authserver.fetch(redis, "a", "imap", timeout=2.0)
    finally:
        redis.hdel(keys.SETTINGS, "authServer")


# -- IMAP through the sidecar -------------------------------------------------------------------
def _managed(dovecot, api, server, answer=None):
    """Register a Dovecot user with useAuthServer (no auth in the payload), the auth server
    answering `answer` or its password -> (id, user, pw)."""
    user, password = unique("u"), unique("p")
    dovecot.add_user(user, password)
    server.answers[(user, "imap")] = answer or (200, {"user": user, "pass": password})
    payload = dovecot.account_payload(user, user, password)
    del payload["imap"]["auth"]
    payload["imap"]["useAuthServer"] = True
    resp = api.post("/v1/account", json=payload)
    assert resp.status_code == 200, resp.text
    return user, user, password


def test_password_from_auth_server_connects(configured, dovecot, api, stack, redis):
    account, user, password = _managed(dovecot, api, configured)
    try:
        stack.wait_state(account, "connected", timeout=CONNECT_TIMEOUT)
        resp = api.get(f"/v1/account/{account}/mailboxes")
        assert resp.status_code == 200 and any(m["path"] == "INBOX"
                                               for m in resp.json()["mailboxes"])
        assert configured.calls(account, "imap")
        # Fetched credentials are used, never stored or logged.
        shown = api.get(f"/v1/account/{account}").json()
        assert shown["imap"].get("useAuthServer") is True and "auth" not in shown["imap"]
        stored = redis.hgetall(keys.account(account))
        assert not any(password.encode() in v for v in stored.values())
        assert password not in stack.log_tail(lines=2000)
    finally:
        api.delete(f"/v1/account/{account}")


def test_auth_server_500_is_authentication_error_then_recovers(configured, dovecot, api, stack):
    account, user, password = _managed(dovecot, api, configured, (500, {"error": "boom"}))
    try:
        body = stack.wait_state(account, "authenticationError", timeout=CONNECT_TIMEOUT)
        assert body["lastError"]["response"] == "Auth server answered HTTP 500"
        assert body["lastError"]["serverResponseCode"] == "HTTPRequestError"
        assert api.get(f"/v1/account/{account}/mailboxes").status_code == 503
        # Auth errors back off for a minute; a reconnect request retries at once.
        configured.answers[(account, "imap")] = (200, {"user": user, "pass": password})
        assert api.put(f"/v1/account/{account}/reconnect", json={"reconnect": True}).ok
        stack.wait_state(account, "connected", timeout=CONNECT_TIMEOUT)
    finally:
        api.delete(f"/v1/account/{account}")


def test_setting_auth_server_retries_waiting_accounts(auth_server, dovecot, api, stack, redis):
    """Registered before authServer is set: parked in authenticationError, then connected right
    after POST /v1/settings sets it (not after the auth-error backoff of a minute or more)."""
    redis.hdel(keys.SETTINGS, "authServer")
    account, _, _ = _managed(dovecot, api, auth_server)
    try:
        body = stack.wait_state(account, "authenticationError", timeout=CONNECT_TIMEOUT)
        assert "not configured" in body["lastError"]["response"]
        resp = api.post("/v1/settings", json={"authServer": auth_server.url})
        assert resp.status_code == 200, resp.text
        stack.wait_state(account, "connected", timeout=20)
    finally:
        api.post("/v1/settings", json={"authServer": ""})
        api.delete(f"/v1/account/{account}")


def test_access_token_is_sent_as_xoauth2(configured, dovecot, api, stack):
    """Dovecot here has no OAuth2 passdb, so the token login is refused: the answer must still be
    used (AUTHENTICATE XOAUTH2) and end as an authenticationError from the server, not a crash."""
    user = unique("u")
    account, _, _ = _managed(dovecot, api, configured, (200, {"user": user, "accessToken": "tok"}))
    try:
        body = stack.wait_state(account, "authenticationError", timeout=CONNECT_TIMEOUT)
        # Dovecot got AUTHENTICATE XOAUTH2 (it answers for the mechanism, not the fetch).
        assert "Unsupported authentication mechanism" in body["lastError"]["response"], body
        assert configured.calls(account, "imap")
    finally:
        api.delete(f"/v1/account/{account}")


def test_seed_managed_account_curl(api, stack, configured, redis):
    """The seed's body is accepted; the server has no answer for it (404), so the account ends in
    authenticationError before any connection to imap.gmail.com is attempted."""
    resp = api.post("/v1/account", json=SEED_MANAGED)
    assert resp.status_code == 200, resp.text
    try:
        body = stack.wait_state("ouath-user", "authenticationError", timeout=CONNECT_TIMEOUT)
        assert body["lastError"]["response"] == "Auth server answered HTTP 404"
        assert body["lastError"]["serverResponseCode"] == "HTTPRequestError"
        assert configured.calls("ouath-user", "imap")
    finally:
        api.delete("/v1/account/ouath-user")


# -- SMTP through the submit task ---------------------------------------------------------------
def _send(api, account: str) -> object:
    return api.post(f"/v1/account/{account}/submit", json={
        "from": {"address": "me@example.com"}, "to": [{"address": "to@example.com"}],
        "subject": "via auth server", "text": "hello"})


def test_send_with_credentials_from_auth_server(configured, new_account, smtp, api):
    config = {k: v for k, v in smtp.account_config().items() if k != "auth"}
    acc = new_account(smtp={**config, "useAuthServer": True})
    configured.answers[(acc.id, "smtp")] = (200, {"user": smtp.user, "pass": smtp.password})
    resp = _send(api, acc.id)
    assert resp.status_code == 200, resp.text
    [got] = smtp.wait_for(1)
    assert got.login == smtp.user and got.rcpt_tos == ["to@example.com"]
    assert configured.calls(acc.id, "smtp")


def test_send_with_failing_auth_server_is_deferred(configured, new_account, smtp, api):
    config = {k: v for k, v in smtp.account_config().items() if k != "auth"}
    acc = new_account(smtp={**config, "useAuthServer": True})
    configured.answers[(acc.id, "smtp")] = (500, {})
    resp = _send(api, acc.id)
    assert resp.status_code == 202, resp.text
    item = api.get(f"/v1/outbox/{resp.json()['queueId']}").json()
    assert item["state"] == "deferred", item
    assert item["lastError"] == {"message": "Auth server answered HTTP 500", "transient": True,
                                 "code": "HTTPRequestError"}
    assert smtp.attempts == 0
    api.delete(f"/v1/outbox/{item['queueId']}")
