"""Routes /v1/settings: read (requested keys, or all) and update runtime settings."""
from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import marshmallow as ma
from flask.views import MethodView

from app.api import Blueprint
from imapapi import accounts, authserver, protolog, webhook_settings
from imapapi.events import EVENT_TYPES
from imapapi.settings import get_redis

from .schemas import SettingsQuerySchema, SettingsSchema, SettingsUpdatedSchema, SettingsViewSchema

blp = Blueprint("settings", __name__, description="Webhook, notification and auth server settings")
KEYS = ("eventTypes",) + webhook_settings.KEYS + ("logs",)
URL_KEYS = ("webhooks", "authServer")   # URLs whose userinfo password is a secret
MASK = "******"


def masked_url(url):
    """The URL with its userinfo password replaced by ******: it is shown, never its secret."""
    if not url or "@" not in url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{hostport}"))


def read(redis, wanted) -> dict:
    """The GET body for the keys in `wanted` (the web UI's settings page reads it too)."""
    stored = webhook_settings.get_all(redis, [k for k in wanted if k not in ("eventTypes", "logs")])
    out = {}
    for key in wanted:
        if key == "eventTypes":
            out[key] = list(EVENT_TYPES)
        elif key == "logs":
            out[key] = protolog.get(redis)
        elif key == "webhookSecret":
            out[key] = bool(stored.get(key))
        elif key in URL_KEYS:
            out[key] = masked_url(stored.get(key))
        else:
            out[key] = stored.get(key)
    return out


def update(redis, data: dict) -> list[str]:
    """Apply a validated POST body (the web UI's settings form calls this too)."""
    for key in ("webhookSecret", "authServer"):   # "" means "remove" for these
        if data.get(key) == "":
            data[key] = None
    # A URL posted back as it was shown (password masked, e.g. the UI form re-saved) keeps the
    # stored secret instead of overwriting it with the mask.
    masked = [k for k in URL_KEYS if isinstance(data.get(k), str) and MASK in data[k]]
    if masked:
        stored = webhook_settings.get_all(redis, masked)
        for key in masked:
            if stored.get(key) and masked_url(stored[key]) == data[key]:
                del data[key]
    logs = data.pop("logs", None)
    updated = webhook_settings.save(redis, data)
    if logs is not None:
        if logs.get("resetLoggedAccounts"):
            # a fresh login for each listed account, so its log starts with the connection
            for account in logs.get("accounts") or []:
                accounts.request_reconnect(redis, account)   # no-op for an unknown account
        protolog.save(redis, logs)
        updated.append("logs")
    if data.get("authServer"):
        authserver.retry_waiting(redis)
    return updated


@blp.route("/v1/settings")
class Settings(MethodView):
    @blp.arguments(SettingsQuerySchema, location="query", unknown=ma.RAISE)
    @blp.response(200, SettingsViewSchema)
    def get(self, flags):
        """Settings: the keys flagged true in the query, or every key when none is flagged

        `webhookSecret` is write-only: you get `true`/`false` for whether it is set; a password
        in the `webhooks` / `authServer` URL is shown as `******` (posting that form back keeps it).
        """
        wanted = [k for k in KEYS if flags.get(k)] or list(KEYS)
        return read(get_redis(), wanted)

    @blp.arguments(SettingsSchema)
    @blp.response(200, SettingsUpdatedSchema)
    def post(self, data):
        """Update settings (only the keys sent); null removes a key

        `logs`: per-account IMAP protocol logs (`GET /v1/logs/{account}`); turning an account's
        logging off deletes its log; `resetLoggedAccounts` reconnects the listed accounts.
        """
        return {"updated": update(get_redis(), data)}
