"""Shared pieces of the web UI: the blueprint, page rendering, and errors put into words."""
from __future__ import annotations

from datetime import datetime, timezone
from urllib.parse import urlencode

import marshmallow as ma
import redis.exceptions as redis_exceptions
from flask import Blueprint, g, redirect, render_template, request, url_for

from imapapi import __version__, errors

bp = Blueprint("ui", __name__, template_folder="templates", static_folder="static",
               static_url_path="/static/ui")

NAV = [("ui.overview", "Overview"), ("ui.accounts", "Accounts"), ("ui.settings", "Settings"),
       ("ui.webhooks", "Webhooks"), ("ui.tokens_page", "Tokens")]
STATE_LABELS = {"init": "Starting", "connecting": "Connecting", "connected": "Connected",
                "authenticationError": "Login failed", "connectError": "Cannot connect",
                "disconnected": "Disconnected", "unset": "Not set up"}


@bp.app_template_global()
def state_label(state: str | None) -> str:
    return STATE_LABELS.get(state or "init", state or "")


@bp.app_template_global()
def csrf_token_value() -> str:
    # The security layer sets g.csrf_token (or a `csrf_token` template global of its own).
    return getattr(g, "csrf_token", "") or ""


@bp.app_template_filter("ui_time")
def ui_time(epoch) -> str:
    """Epoch seconds -> an ISO time the page's script shows in local time."""
    from markupsafe import Markup, escape
    try:
        iso = datetime.fromtimestamp(float(epoch), timezone.utc).isoformat(timespec="seconds")
    except (TypeError, ValueError):
        return ""
    iso = iso.replace("+00:00", "Z")
    return Markup(f'<time datetime="{escape(iso)}">{escape(iso)}</time>')


def page(template: str, status: int = 200, **context):
    """Render a page with what every page needs (nav, notices from the redirect, CSRF field)."""
    context.setdefault("title", "IMAP API")
    context.setdefault("notice", request.args.get("ok"))
    context.setdefault("problem", None)
    context.setdefault("csrf_token", csrf_token_value())
    html = render_template(template, version=__version__, nav=NAV, **context)
    return html, status, {"Cache-Control": "no-store"}


def done(endpoint: str, message: str, **values):
    """Post/redirect/get: back to a page with a one-line notice in words."""
    return redirect(url_for(endpoint, **values) + "?" + urlencode({"ok": message}), code=303)


def problem(exc: Exception) -> dict:
    """{message, fields: [{key, message}]} for any error the UI shows (never a traceback)."""
    if isinstance(exc, ma.ValidationError):
        return {"message": "Some fields are not valid.", "fields": flatten(exc.messages)}
    if isinstance(exc, errors.ApiError):
        body = exc.body()
        message = body.get("message") or "The request failed."
        if body.get("state"):
            message += f" (account state: {state_label(body['state'])})"
        return {"message": message, "fields": body.get("fields") or []}
    return {"message": "Something went wrong; the server log has the details.", "fields": []}


def flatten(messages, prefix: str = "") -> list[dict]:
    """marshmallow's nested error dict -> [{key: 'imap.port', message}]."""
    out = []
    if isinstance(messages, dict):
        for key, value in messages.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if key == "_schema":
                name = prefix or "form"
            out += flatten(value, name)
    elif isinstance(messages, list):
        if all(isinstance(m, str) for m in messages):
            out.append({"key": prefix, "message": " ".join(messages)})
        else:
            for m in messages:
                out += flatten(m, prefix)
    else:
        out.append({"key": prefix, "message": str(messages)})
    return out


@bp.errorhandler(404)
def not_found(_exc):
    return page("ui_error.html", 404, title="Not found", heading="Not found",
                text="There is nothing here: the account may have been deleted.")


@bp.errorhandler(redis_exceptions.ConnectionError)
@bp.errorhandler(redis_exceptions.TimeoutError)
def redis_down(_exc):
    return page("ui_error.html", 503, title="Unavailable", heading="Redis is not reachable",
                text="IMAP API keeps everything in Redis; this page works again once it answers.")


def form_bool(name: str) -> bool:
    return request.form.get(name) in ("on", "1", "true", "yes")


def form_int(name: str, default=None):
    raw = (request.form.get(name) or "").strip()
    if raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        return raw   # the schema names the field and says it is not a number


def form_list(name: str) -> list[str]:
    """Comma or newline separated -> list (empty items dropped)."""
    raw = request.form.get(name) or ""
    return [p.strip() for p in raw.replace("\n", ",").split(",") if p.strip()]
