"""Routes /v1/settings: read (requested keys, or all) and update runtime settings."""
from __future__ import annotations

import marshmallow as ma
from flask.views import MethodView

from app.api import Blueprint
from imapapi import authserver, webhook_settings
from imapapi.events import EVENT_TYPES
from imapapi.settings import get_redis

from .schemas import SettingsQuerySchema, SettingsSchema, SettingsUpdatedSchema, SettingsViewSchema

blp = Blueprint("settings", __name__, description="Webhook, notification and auth server settings")
KEYS = ("eventTypes",) + webhook_settings.KEYS


@blp.route("/v1/settings")
class Settings(MethodView):
    @blp.arguments(SettingsQuerySchema, location="query", unknown=ma.RAISE)
    @blp.response(200, SettingsViewSchema)
    def get(self, flags):
        """Settings: the keys flagged true in the query, or every key when none is flagged

        `webhookSecret` is write-only: you get `true`/`false` for whether it is set.
        """
        wanted = [k for k in KEYS if flags.get(k)] or list(KEYS)
        stored = webhook_settings.get_all(get_redis(), [k for k in wanted if k != "eventTypes"])
        out = {}
        for key in wanted:
            if key == "eventTypes":
                out[key] = list(EVENT_TYPES)
            elif key == "webhookSecret":
                out[key] = bool(stored.get(key))
            else:
                out[key] = stored.get(key)
        return out

    @blp.arguments(SettingsSchema)
    @blp.response(200, SettingsUpdatedSchema)
    def post(self, data):
        """Update settings (only the keys sent); null removes a key"""
        for key in ("webhookSecret", "authServer"):   # "" means "remove" for these
            if data.get(key) == "":
                data[key] = None
        redis = get_redis()
        updated = webhook_settings.save(redis, data)
        if data.get("authServer"):
            authserver.retry_waiting(redis)
        return {"updated": updated}
