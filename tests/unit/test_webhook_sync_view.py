"""webhook_settings.sync_view (real Redis): one round trip gives what get_all + target give, for
every combination of a global URL, an account's own (plain, {url}, with a sealed password) and
the event filter; the sync engine's webhook decision from it."""
from __future__ import annotations

import os

import pytest

from imapapi import accounts, keys, webhook_settings
from sidecar.sync.engine import _wanted
from tests.fixtures.sealed import sealed_redis

NAMES = ["webhookEvents", "notifyText", "notifyTextSize", "notifyHeaders"]


@pytest.fixture
def r():
    with sealed_redis(os.urandom(32)) as client:
        yield client


def account(r, name: str, webhooks=None) -> None:
    data = {"account": name, "name": name,
            "imap": {"host": "127.0.0.1", "port": 1, "auth": {"user": "u", "pass": "p"}}}
    if webhooks is not None:
        data["webhooks"] = webhooks
    accounts.upsert(r, data)


GLOBALS = [{}, {"webhooks": "http://127.0.0.1:9/global"},
           {"webhooks": "http://127.0.0.1:9/global", "webhookEvents": ["messageNew"],
            "notifyText": True, "notifyTextSize": 1024, "notifyHeaders": ["x-a"]},
           {"webhookEvents": []}]
OWN = [None, "http://127.0.0.1:9/own", {"url": "http://127.0.0.1:9/own-dict"},
       "http://hook:Secr3t@127.0.0.1:9/own-sealed"]


@pytest.mark.parametrize("settings", GLOBALS)
@pytest.mark.parametrize("own", OWN)
def test_one_read_matches_get_all_and_target(r, settings, own):
    if settings:
        webhook_settings.save(r, settings)
    account(r, "a1", own)
    view = webhook_settings.sync_view(r, "a1", NAMES)
    assert view == (webhook_settings.get_all(r, NAMES), webhook_settings.target(r, "a1"))
    for event in ("messageNew", "authenticationSuccess"):
        assert _wanted(view, event) == webhook_settings.wanted_for(r, "a1", event)


def test_a_sealed_account_url_comes_back_in_clear(r):
    account(r, "a1", "http://hook:Secr3t@127.0.0.1:9/x")
    assert b"Secr3t" not in r.hget(keys.account("a1"), "webhooks")
    assert webhook_settings.sync_view(r, "a1", NAMES)[1] == "http://hook:Secr3t@127.0.0.1:9/x"


def test_a_missing_account_has_the_global_target(r):
    webhook_settings.save(r, {"webhooks": "http://127.0.0.1:9/g"})
    assert webhook_settings.sync_view(r, "nobody", NAMES) == (
        dict.fromkeys(NAMES), "http://127.0.0.1:9/g")
