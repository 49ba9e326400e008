"""Auth on every route (the url_map walk), scopes and account binding, UI login + CSRF, security
headers, the body limit, and the start-up policy. In-process app on real Redis."""
from __future__ import annotations

import re
import types

import pytest

from imapapi import settings as settings_mod
from imapapi import tokens

from .api_helpers import app, client  # noqa: F401  (fixtures)

PUBLIC = {"health", "ready", "live", "auth.login", "auth.login_post", "ui.static", "ui.favicon"}
VALUES = {"account": "other", "message": "AAAAAQAAAAE", "attachment": "AAAAAQAAAAEx",
          "text": "AAAAAQAAAAE", "queue_id": "q1", "event": "e1", "token_id": "t1",
          "filename": "ui.css", "action": "reconnect"}
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def routes(app):
    """(endpoint, method, url) for every rule and method of the app."""
    out = []
    for rule in app.url_map.iter_rules():
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            url = rule.rule
            for name in rule.arguments:
                url = re.sub(rf"<(?:[^:>]+:)?{name}>", VALUES[name], url)
            out.append((rule.endpoint, method, url))
    return out


@pytest.fixture
def star(redis):
    token, _ = tokens.create(redis, ["*"])
    return token


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def test_every_route_but_health_needs_a_token(app, client, star):  # noqa: F811
    walked = routes(app)
    assert len(walked) > 40
    missing = []
    for endpoint, method, url in walked:
        if endpoint in PUBLIC:
            continue
        resp = client.open(url, method=method)
        if resp.status_code != 401:
            missing.append(f"{method} {url}: {resp.status_code}")
        elif not endpoint.startswith(("ui.", "auth.")):
            body = resp.get_json()
            assert body["statusCode"] == 401 and body["code"] == "Unauthorized", (url, body)
    assert not missing, "routes answering without a token:\n" + "\n".join(missing)
    assert client.get("/health").status_code in (200, 503)     # probes stay open


def test_wrong_account_token_gets_403_everywhere(app, client, redis, star):  # noqa: F811
    other, _ = tokens.create(redis, ["api"], account="mine")
    wrong = []
    for endpoint, method, url in routes(app):
        if endpoint in PUBLIC:
            continue
        resp = client.open(url, method=method, headers=bearer(other))
        if resp.status_code != 403:
            wrong.append(f"{method} {url}: {resp.status_code}")
    assert not wrong, "\n".join(wrong)
    # its own account's routes are open to it (404: no such account yet, past the auth check)
    assert client.get("/v1/account/mine", headers=bearer(other)).status_code == 404


def test_scopes(client, redis, star):  # noqa: F811
    metrics, _ = tokens.create(redis, ["metrics"])
    api, _ = tokens.create(redis, ["api"])
    assert client.get("/metrics", headers=bearer(metrics)).status_code == 200
    assert client.get("/v1/accounts", headers=bearer(metrics)).status_code == 403
    assert client.get("/metrics", headers=bearer(api)).status_code == 403
    assert client.get("/v1/accounts", headers=bearer(api)).status_code == 200
    assert client.get("/v1/tokens", headers=bearer(api)).status_code == 403     # needs *
    assert client.get("/v1/tokens", headers=bearer(star)).status_code == 200
    assert client.get("/v1/accounts", headers=bearer(star + "x")).status_code == 401
    # ?access_token= for download links (GET), not consumed as a route argument
    assert client.get(f"/v1/settings?access_token={api}").status_code == 200
    assert client.post(f"/v1/settings?access_token={api}", json={}).status_code == 401


def test_tokens_routes_create_list_revoke(client, redis, star):  # noqa: F811
    resp = client.post("/v1/tokens", json={"scopes": ["api"], "account": "a1",
                                           "description": "ci"}, headers=bearer(star))
    assert resp.status_code == 200
    created = resp.get_json()
    assert created["token"] and created["account"] == "a1" and created["scopes"] == ["api"]
    listed = client.get("/v1/tokens", headers=bearer(star)).get_json()["tokens"]
    assert created["id"] in [t["id"] for t in listed]
    assert created["token"] not in repr(listed)
    assert client.get("/v1/account/a1", headers=bearer(created["token"])).status_code == 404
    assert client.delete(f"/v1/tokens/{created['id']}", headers=bearer(star)).status_code == 200
    assert client.get("/v1/account/a1", headers=bearer(created["token"])).status_code == 401
    assert client.delete(f"/v1/tokens/{created['id']}", headers=bearer(star)).status_code == 404
    bad = client.post("/v1/tokens", json={"scopes": ["root"]}, headers=bearer(star))
    assert bad.status_code == 400


def test_open_on_loopback_until_the_first_token(client, redis):  # noqa: F811
    assert client.get("/v1/accounts").status_code == 200
    assert client.get("/").status_code == 200


def login(client, token):
    page = client.get("/ui/login")
    csrf = CSRF.search(page.get_data(as_text=True)).group(1)
    return client.post("/ui/login", data={"token": token, "csrf_token": csrf, "next": "/ui/accounts"})


def test_ui_login_session_and_csrf(client, redis, star):  # noqa: F811
    page = client.get("/ui/accounts")
    assert page.status_code == 401 and b"Log in" in page.data
    api, _ = tokens.create(redis, ["api"])
    assert login(client, api).status_code == 401                 # api scope is not ui
    resp = login(client, star)
    assert resp.status_code == 303 and resp.headers["Location"].endswith("/ui/accounts")
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" not in cookie
    assert star not in cookie
    assert client.get("/ui/accounts").status_code == 200
    assert client.get("/docs").status_code == 200                # the session opens the docs
    assert client.get("/v1/accounts").status_code == 401         # but not the API
    # every UI form needs the session's CSRF token
    assert client.post("/ui/settings", data={"webhooks": ""}).status_code == 403
    csrf = CSRF.search(client.get("/ui/settings").get_data(as_text=True)).group(1)
    ok = client.post("/ui/settings", data={"webhooks": "", "csrf_token": csrf})
    assert ok.status_code in (200, 303)
    # revoking the token ends the session
    tokens.revoke(redis, tokens.public_id(tokens.digest(star)))
    assert client.get("/ui/accounts").status_code == 401


def test_login_never_redirects_off_site(client, star):  # noqa: F811
    page = client.get("/ui/login")
    csrf = CSRF.search(page.get_data(as_text=True)).group(1)
    resp = client.post("/ui/login", data={"token": star, "csrf_token": csrf,
                                          "next": "//evil.example/"})
    assert resp.headers["Location"] == "/"


def test_secure_cookie_behind_tls(client, star):  # noqa: F811
    page = client.get("/ui/login", headers={"X-Forwarded-Proto": "https"})
    csrf = CSRF.search(page.get_data(as_text=True)).group(1)
    resp = client.post("/ui/login", data={"token": star, "csrf_token": csrf},
                       headers={"X-Forwarded-Proto": "https"})
    assert "Secure" in resp.headers["Set-Cookie"]


def test_security_headers(client):  # noqa: F811
    for url in ("/", "/v1/accounts", "/ui/login"):
        headers = client.get(url).headers
        assert "script-src 'self';" in headers["Content-Security-Policy"]
        assert "unsafe-inline" not in headers["Content-Security-Policy"]
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["Referrer-Policy"] == "no-referrer"



def test_security_headers_once_and_a_views_own_kept(app):  # noqa: F811
    from flask import Response, request

    from app import security
    with app.test_request_context("/v1/accounts"):
        resp = security._headers(Response("x", headers={
            "x-frame-options": "SAMEORIGIN", "Content-Security-Policy": "default-src 'self'"}))
    assert resp.headers.getlist("X-Frame-Options") == ["SAMEORIGIN"]
    assert resp.headers.getlist("Content-Security-Policy") == ["default-src 'self'"]
    assert resp.headers.getlist("Referrer-Policy") == ["no-referrer"]
    assert resp.headers.getlist("X-Content-Type-Options") == ["nosniff"]
    with app.test_request_context("/v1/accounts"):
        request.url_rule = types.SimpleNamespace(endpoint="api-docs.openapi_swagger_ui")
        resp = security._headers(Response("x"))
    assert resp.headers.getlist("Content-Security-Policy") == [security.CSP_DOCS]

def test_body_limit_is_413_json(client):  # noqa: F811
    settings_mod.replace(api_max_body=1000)
    resp = client.post("/v1/account", data=b"{" + b" " * 2000 + b"}",
                       content_type="application/json")
    assert resp.status_code == 413
    body = resp.get_json()
    assert body["statusCode"] == 413 and body["code"] == "PayloadTooLarge"


def test_default_body_limit_fits_the_largest_submission():
    s = settings_mod.Settings()
    assert s.max_body > s.submit_max_size * 4 // 3


def test_startup_policy(redis):
    def cfg(host, auth="auto"):
        return types.SimpleNamespace(api_host=host, api_auth=auth)

    assert tokens.startup_problem(cfg("127.0.0.1"), redis) is None
    problem = tokens.startup_problem(cfg("0.0.0.0"), redis)
    assert "imap-api tokens create" in problem and "api.auth=off" in problem
    assert tokens.startup_problem(cfg("0.0.0.0", "off"), redis) is None
    assert not tokens.auth_mode(cfg("0.0.0.0", "off"), redis)
    assert tokens.auth_mode(cfg("::1", "on"), redis)
    tokens.create(redis, ["*"])
    assert tokens.startup_problem(cfg("0.0.0.0"), redis) is None
    assert tokens.auth_mode(cfg("127.0.0.1"), redis)          # a token exists: closed


def test_metadata_targets_refused_when_saved(client):  # noqa: F811
    for url in ("http://169.254.169.254/latest/meta-data/", "http://[fd00:ec2::254]/"):
        resp = client.post("/v1/settings", json={"webhooks": url})
        assert resp.status_code == 400, resp.get_json()
        assert resp.get_json()["fields"][0]["key"] == "webhooks"
    resp = client.post("/v1/settings", json={"authServer": "http://u:p@169.254.169.254/"})
    assert resp.status_code == 400 and "u:p" not in resp.get_data(as_text=True)
    assert client.post("/v1/settings", json={"webhooks": "http://127.0.0.1:9/h"}).status_code == 200


def test_bootstrap_token_is_stored_hash_only_and_opens_a_public_api(redis):
    redis.delete(tokens.TOKENS)
    token = "b" * 40
    cfg = types.SimpleNamespace(api_host="0.0.0.0", api_auth="auto")
    assert tokens.startup_problem(cfg, redis) is not None
    assert tokens.bootstrap(redis, token) is True
    assert tokens.bootstrap(redis, token) is False          # second pod / restart: kept as is
    assert tokens.startup_problem(cfg, redis) is None
    record = tokens.verify(redis, token)
    assert record["scopes"] == ["*"] and "bootstrap" in record["description"]
    stored = b"".join(k + v for k, v in redis.hgetall(tokens.TOKENS).items())
    assert token.encode() not in stored
    assert tokens.bootstrap(redis, None) is False and len(tokens.list_tokens(redis)) == 1


def test_bootstrap_token_option_is_checked_and_never_echoed():
    env = {"IMAPAPI_DOTENV": "0"}
    s = settings_mod.load_settings([], env={**env, "API_BOOTSTRAP_TOKEN": "t" * 32})
    assert s.api_bootstrap_token == "t" * 32 and "t" * 32 not in repr(s)
    with pytest.raises(settings_mod.ConfigError) as info:
        settings_mod.load_settings(["--api.bootstrapToken=short-secret"], env=env)
    assert "api.bootstrapToken" in str(info.value) and "short-secret" not in str(info.value)


def test_api_start_adds_the_bootstrap_token(redis, tmp_path):
    import subprocess
    import sys
    import time

    import requests

    from tests.fixtures.dovecot import free_port

    redis.delete(tokens.TOKENS)
    token = "c" * 43
    port = free_port()
    db = redis.connection_pool.connection_kwargs["db"]
    env = {"PATH": "/usr/bin:/bin", "IMAPAPI_DOTENV": "0", "API_HOST": "0.0.0.0",
           "API_PORT": str(port), "API_WORKERS": "1", "REDIS_URL": f"redis://127.0.0.1:6379/{db}",
           "API_BOOTSTRAP_TOKEN": token, "ENCRYPTION_KEY": "k" * 32, "STATE_DIR": str(tmp_path)}
    log = tmp_path / "api.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "launcher.cli", "api"], env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline, status = time.monotonic() + 60, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                status = requests.get(f"http://127.0.0.1:{port}/v1/settings", timeout=2,
                                      headers=bearer(token)).status_code
                break
            except requests.RequestException:
                time.sleep(0.3)
        assert status == 200, log.read_text()      # started beyond loopback, token accepted
    finally:
        proc.terminate()
        proc.wait(20)
    text = log.read_text()
    assert token not in text and tokens.public_id(tokens.digest(token)) in text
