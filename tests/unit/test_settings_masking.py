"""GET /v1/settings never shows a URL's password; posting the masked URL back keeps the stored one."""
from __future__ import annotations

from imapapi import webhook_settings
from imapapi.settings import get_redis

from .api_helpers import app, client  # noqa: F401  (fixtures)

AUTH = "http://creds:pw-s3cret@127.0.0.1:9/auth"
HOOK = "http://hook:hook-s3cret@127.0.0.1:9/hook"


def test_url_passwords_are_masked_and_a_masked_repost_keeps_them(client):
    r = client.post("/v1/settings", json={"authServer": AUTH, "webhooks": HOOK})
    assert r.status_code == 200, r.get_json()
    body = client.get("/v1/settings").get_json()
    assert body["authServer"] == "http://creds:******@127.0.0.1:9/auth"
    assert body["webhooks"] == "http://hook:******@127.0.0.1:9/hook"
    assert "s3cret" not in client.get("/v1/settings").get_data(as_text=True)

    # the UI form re-saves what it was shown: the stored secrets stay
    r = client.post("/v1/settings", json={"authServer": body["authServer"], "webhooks": body["webhooks"]})
    assert r.status_code == 200, r.get_json()
    stored = webhook_settings.get_all(get_redis(), ["authServer", "webhooks"])
    assert stored == {"authServer": AUTH, "webhooks": HOOK}


def test_a_new_url_replaces_the_stored_one(client):
    client.post("/v1/settings", json={"authServer": AUTH})
    r = client.post("/v1/settings", json={"authServer": "http://other:******@127.0.0.1:9/x"})
    assert r.status_code == 200
    assert webhook_settings.get_all(get_redis(), ["authServer"])["authServer"] == "http://other:******@127.0.0.1:9/x"
    client.post("/v1/settings", json={"authServer": "http://127.0.0.1:9/plain"})
    assert client.get("/v1/settings").get_json()["authServer"] == "http://127.0.0.1:9/plain"
