"""Settings page: webhook target, event filter, notify options, secret, auth server, IMAP logs,
and "send test webhook" (shows what the receiver answered)."""
from __future__ import annotations

import marshmallow as ma
from flask import request

from app.settings.routes import KEYS, read, update
from app.settings.schemas import SettingsSchema
from imapapi import delivery, errors
from imapapi.events import EVENT_TYPES
from imapapi.settings import get_redis

from .common import bp, done, form_bool, form_int, form_list, page, problem


def _page(status: int = 200, **extra):
    current = read(get_redis(), list(KEYS))
    events = current.get("webhookEvents")
    return page("ui_settings.html", status, title="Settings", s=current, event_types=EVENT_TYPES,
                all_events=events is None or "*" in (events or []),
                chosen=set(events or []), **extra)


@bp.get("/ui/settings")
def settings():
    return _page()


def _form_settings() -> dict:
    f = request.form
    events = ["*"] if form_bool("events.all") else [e for e in EVENT_TYPES if form_bool(f"event.{e}")]
    data = {
        "webhooks": (f.get("webhooks") or "").strip() or None,
        "webhookEvents": events,
        "notifyText": form_bool("notifyText"),
        "notifyTextSize": form_int("notifyTextSize", 0),
        "notifyHeaders": form_list("notifyHeaders"),
        "authServer": (f.get("authServer") or "").strip(),
        "logs": {"all": form_bool("logs.all"), "accounts": form_list("logs.accounts"),
                 "maxLogLines": form_int("logs.maxLogLines", 10000),
                 "resetLoggedAccounts": form_bool("logs.resetLoggedAccounts")},
    }
    if form_bool("webhookSecret.remove"):
        data["webhookSecret"] = None
    elif f.get("webhookSecret"):
        data["webhookSecret"] = f.get("webhookSecret")   # blank: keep the stored secret
    return data


@bp.post("/ui/settings")
def settings_save():
    try:
        data = SettingsSchema().load(_form_settings())
        update(get_redis(), data)
    except (ma.ValidationError, errors.ApiError) as exc:
        return _page(400, problem=problem(exc), form=request.form)
    return done("ui.settings", "Settings saved.")


@bp.post("/ui/settings/test-webhook")
def settings_test_webhook():
    result = delivery.send_test(get_redis())
    return _page(200, test=result)
