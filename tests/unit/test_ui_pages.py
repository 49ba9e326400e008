"""Web UI pages through the Flask test client (tasks run in-process): forms post back, errors in words."""
from __future__ import annotations

import json
import re


from imapapi import delivery, protolog, stats
from tests.unit.api_helpers import app, client  # noqa: F401  (fixtures)

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def ui_post(client, url: str, data: dict | None = None, **kwargs):
    """POST a UI form as a browser does: with the CSRF token the pages embed (when the security
    layer issues one for this session)."""
    page = client.get("/ui/settings", headers=kwargs.get("headers"))
    match = CSRF.search(page.get_data(as_text=True))
    data = dict(data or {})
    if match:
        data["csrf_token"] = match.group(1)
    return client.post(url, data=data, **kwargs)


FORM = {"account": "ui1", "name": "UI One", "imap.host": "127.0.0.1", "imap.port": "1143",
        "imap.user": "me", "imap.pass": "s3cret-pass"}


def test_every_page_renders(client):
    for url in ("/", "/ui/accounts", "/ui/accounts/new", "/ui/settings", "/ui/webhooks",
                "/ui/tokens"):
        resp = client.get(url)
        assert resp.status_code == 200, url
        assert b"<script>" not in resp.data and b"onclick" not in resp.data
        assert b"http://" not in resp.data.replace(b'placeholder="http://', b"")  # no external assets


def test_add_account_form_then_detail_masks_the_password(client, redis):
    resp = ui_post(client, "/ui/accounts/new", data=FORM)
    assert resp.status_code == 303 and "/ui/accounts/ui1" in resp.headers["Location"]
    page = client.get(resp.headers["Location"]).data.decode()
    assert "created" in page and "UI One" in page and "s3cret-pass" not in page
    assert "******" in page
    listing = client.get("/ui/accounts?q=one").data.decode()
    assert "ui1" in listing
    assert "ui1" not in client.get("/ui/accounts?state=connected").data.decode()


def test_bad_form_is_400_naming_the_field(client):
    resp = ui_post(client, "/ui/accounts/new", data={**FORM, "imap.port": "99999"})
    assert resp.status_code == 400
    page = resp.data.decode()
    assert "imap.port" in page and 'value="ui1"' in page


def test_edit_keeps_password_when_blank(client, redis):
    ui_post(client, "/ui/accounts/new", data=FORM)
    resp = ui_post(client, "/ui/accounts/ui1/edit", data={
        "name": "Renamed", "imap.host": "127.0.0.1", "imap.port": "1143", "imap.user": "me2"})
    assert resp.status_code == 303
    body = client.get("/v1/account/ui1").get_json()
    assert body["name"] == "Renamed" and body["imap"]["auth"] == {"user": "me2", "pass": "******"}
    from imapapi import accounts
    assert accounts.get_record(redis, "ui1")["imap"]["auth"]["pass"] == "s3cret-pass"   # kept


def test_delete_goes_through_a_confirmation_page(client):
    ui_post(client, "/ui/accounts/new", data=FORM)
    confirm = client.get("/ui/accounts/ui1/delete")
    assert confirm.status_code == 200 and b"Delete account ui1?" in confirm.data
    resp = ui_post(client, "/ui/accounts/ui1/delete")
    assert resp.status_code == 303
    assert client.get("/v1/account/ui1").status_code == 404
    gone = client.get("/ui/accounts/ui1")
    assert gone.status_code == 404 and b"account may have been deleted" in gone.data


def test_settings_form_saves_what_the_api_shows(client):
    resp = ui_post(client, "/ui/settings", data={
        "webhooks": "http://127.0.0.1:9/hook", "event.messageNew": "on", "notifyText": "on",
        "notifyTextSize": "1024", "notifyHeaders": "List-ID, X-Foo", "webhookSecret": "sekrit",
        "logs.accounts": "a\nb", "logs.maxLogLines": "500"})
    assert resp.status_code == 303, resp.data
    got = client.get("/v1/settings").get_json()
    assert got["webhooks"] == "http://127.0.0.1:9/hook"
    assert got["webhookEvents"] == ["messageNew"]
    assert got["notifyText"] is True and got["notifyTextSize"] == 1024
    assert got["notifyHeaders"] == ["List-ID", "X-Foo"]
    assert got["webhookSecret"] is True
    assert got["logs"] == {"all": False, "accounts": ["a", "b"], "maxLogLines": 500}
    bad = ui_post(client, "/ui/settings", data={"webhooks": "not a url"})
    assert bad.status_code == 400 and b"webhooks" in bad.data


def test_logs_setting_through_the_api_and_download(client, redis):
    ui_post(client, "/ui/accounts/new", data=FORM)
    resp = client.post("/v1/settings", json={"logs": {"accounts": ["ui1"], "maxLogLines": 100}})
    assert resp.get_json() == {"updated": ["logs"]}
    protolog.append(redis, "ui1", [protolog.entry("c", "c1", "A1 LOGIN [redacted]")], 100)
    dl = client.get("/v1/logs/ui1")
    assert dl.status_code == 200 and "attachment" in dl.headers["Content-Disposition"]
    assert json.loads(dl.data.splitlines()[0])["msg"] == "A1 LOGIN [redacted]"
    assert b"1 line stored" in client.get("/ui/accounts/ui1").data
    ui_post(client, "/ui/accounts/ui1/log", data={"enable": "0"})
    assert client.get("/v1/logs/ui1").data == b"No logs found for ui1\n"
    assert client.post("/v1/settings", json={"logs": {"maxLogLines": -1}}).status_code == 400


def test_stats_route_and_webhooks_page(client, redis):
    stats.incr(redis, {"events:messageNew": 3, "webhooks:fail": 1})
    delivery.record(redis, {"id": "e1", "account": "a", "event": "messageNew", "url": "u",
                            "ok": True, "status": 200, "ms": 12.5, "error": None, "at": 1e9})
    body = client.get("/v1/stats?seconds=3600").get_json()
    assert body["counters"]["events:messageNew"] == 3
    assert body["counters"]["webhooks:success"] == 1 and body["counters"]["webhooks:fail"] == 1
    assert set(body) == {"version", "license", "accounts", "counters", "connections"}
    assert client.get("/v1/stats?seconds=700000").status_code == 400
    page = client.get("/ui/webhooks").data.decode()
    assert "HTTP 200" in page and "12.5 ms" in page
    assert ">3<" in client.get("/").data.decode()


def test_test_webhook_without_url_says_so(client):
    page = ui_post(client, "/ui/settings/test-webhook").data.decode()
    assert "No webhook URL is set" in page


def test_tokens_page_creates_shows_once_and_revokes(client, redis):
    from imapapi import tokens

    assert b"No tokens" in client.get("/ui/tokens").data
    resp = ui_post(client, "/ui/tokens", data={"scope.api": "on", "description": "ci"})
    assert resp.status_code == 200
    page = resp.data.decode()
    [record] = tokens.list_tokens(redis)
    token = page.split('<pre id="token-value">')[1].split("</pre>")[0]
    assert tokens.verify(redis, token)["id"] == record["id"]
    auth = {"Authorization": f"Bearer {token}"}    # once a token exists the UI may need one
    listing = client.get("/ui/tokens", headers=auth).data.decode()
    assert record["id"] in listing and token not in listing          # shown once only
    resp = ui_post(client, f"/ui/tokens/{record['id']}/revoke", headers=auth)
    assert resp.status_code == 303 and tokens.list_tokens(redis) == []
    bad = ui_post(client, "/ui/tokens", data={"description": "no scope"})
    assert bad.status_code == 400 and b"scopes must be" in bad.data


def test_stats_window_defaults(client):
    for query in ("", "?seconds=", "?seconds=0"):
        assert client.get("/v1/stats" + query).status_code == 200, query
    assert client.get("/v1/stats?seconds=-1").status_code == 400
