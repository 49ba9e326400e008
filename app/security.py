"""Request security for every route: token auth (deny by default), UI session login + CSRF,
security headers, the request body limit.

Auth is enforced in one before_request hook for every endpoint, so a route added later is
closed unless listed in PUBLIC; `requires` only changes the scope a view needs. The web UI logs
in with a `ui`/`*` token once and then holds a session cookie (HttpOnly, SameSite=Strict,
Secure behind TLS) naming the token's hash, so revoking the token ends the session too.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time

from flask import Blueprint, Flask, g, redirect, render_template_string, request, session
from flask.sessions import SecureCookieSessionInterface
from flask_smorest import abort
from werkzeug.datastructures import ImmutableMultiDict

from imapapi import tokens, vault
from imapapi.errors import ApiError
from imapapi.settings import get_redis, get_settings

log = logging.getLogger("imapapi.auth")

# Endpoints anyone may call: liveness/readiness probes, the login page, static UI assets.
PUBLIC = {"health", "ready", "live", "auth.login", "auth.login_post",
          "ui.static", "ui.favicon"}
# Endpoints of the browser side (a session cookie counts there; a token too).
BROWSER_PREFIXES = ("ui.", "auth.")
DOCS = {"api-docs.openapi_json", "api-docs.openapi_swagger_ui", "swagger_assets"}
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
_MODE_CACHE = 2.0                        # seconds an app trusts "tokens exist?" (auto mode)

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
# flask-smorest's Swagger UI page starts itself with an inline script (and may load its bundle
# from the CDN when swagger-ui-bundle is not installed): allowed on /docs only.
CSP_DOCS = ("default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
            "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; img-src 'self' data:; "
            "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")


class Unauthorized(ApiError):
    status = 401
    code = "Unauthorized"
    default_message = "A valid API token is required (Authorization: Bearer <token>)"


class Forbidden(ApiError):
    status = 403
    code = "Forbidden"
    default_message = "This token may not use this route"


def requires(scope: str):
    """Decorator: the view needs `scope` (api by default; metrics, ui, *) instead of api."""
    def mark(view):
        view._imapapi_scope = scope
        return view
    return mark


def _mode() -> dict:
    from flask import current_app

    return current_app.extensions.setdefault("imapapi_auth", {"at": -_MODE_CACHE, "value": True})


def auth_required() -> bool:
    mode, now = _mode(), time.monotonic()
    if now - mode["at"] >= _MODE_CACHE:
        mode["value"] = tokens.auth_mode(get_settings(), get_redis())
        mode["at"] = now
    return mode["value"]


def forget_mode() -> None:
    """A token was created or revoked here: decide afresh on the next request."""
    _mode()["at"] = -_MODE_CACHE


SCOPE_BY_ENDPOINT = {"prometheus_metrics": "metrics"}   # Prometheus: bearer_token_file


def _scope_for(endpoint: str, view) -> str:
    if endpoint in SCOPE_BY_ENDPOINT:
        return SCOPE_BY_ENDPOINT[endpoint]
    explicit = getattr(view, "_imapapi_scope", None) or getattr(
        getattr(view, "view_class", None), "_imapapi_scope", None)
    if explicit:
        return explicit
    if endpoint.startswith(BROWSER_PREFIXES):
        return "ui"
    return "api"


def _presented_token() -> str | None:
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip()
    if request.method == "GET" and "access_token" in request.args:
        # downloads (source, attachment) from a link: the token travels in the query once
        return request.args.get("access_token")
    return None


def _strip_access_token() -> None:
    # query schemas reject unknown keys: the token is not an argument of the route
    if "access_token" in request.args:
        request.args = ImmutableMultiDict(
            [(k, v) for k, v in request.args.items(multi=True) if k != "access_token"])


def _session_record() -> dict | None:
    token_hash = session.get("tok")
    if not token_hash:
        return None
    record = tokens.verify_hash(get_redis(), token_hash)
    if record is None:
        session.pop("tok", None)
    return record


def _fail(status: int, reason: str, browser: bool):
    # never the token: only what was asked and why it failed
    log.warning("auth %s: %s %s from %s (%s)", status, request.method, request.path,
                request.remote_addr, reason)
    if browser and status == 401 and request.method == "GET":
        return _login_page(401)
    raise (Unauthorized() if status == 401 else Forbidden())


def _enforce():
    endpoint = request.endpoint or ""
    _csrf_setup()
    max_body = get_settings().max_body
    if request.content_length is not None and request.content_length > max_body:
        abort(413, message=f"Request body larger than {max_body} bytes (api.maxBody)",
              code="PayloadTooLarge")
    token = _presented_token()
    _strip_access_token()
    if endpoint in PUBLIC or request.method == "OPTIONS":
        return None
    browser = endpoint.startswith(BROWSER_PREFIXES)
    if not auth_required():
        if browser and request.method in UNSAFE:
            _check_csrf()   # open mode too: another site must not drive a local UI's forms
        return None
    view = request.url_rule and _view(endpoint)
    scope = _scope_for(endpoint, view)
    account = (request.view_args or {}).get("account")
    record = tokens.verify(get_redis(), token) if token else None
    if record is None and token is None and (browser or endpoint in DOCS):
        record = _session_record()
        if record is not None and "ui" not in record["scopes"] and "*" not in record["scopes"]:
            record = None
        if record is not None and endpoint in DOCS:
            scope = "ui"
    if record is None:
        return _fail(401, "no token" if token is None else "unknown token", browser)
    if not tokens.allows(record, scope, account):
        return _fail(403, f"token {record['id']} lacks {scope}"
                          + (f" for account {account}" if account else ""), browser)
    if browser and request.method in UNSAFE:
        _check_csrf()
    g.token = record
    return None


def _view(endpoint: str):
    from flask import current_app

    return current_app.view_functions.get(endpoint)


# -- CSRF -----------------------------------------------------------------------------------
def _csrf_setup() -> None:
    if (request.endpoint or "").startswith(BROWSER_PREFIXES):
        if "csrf" not in session:
            session["csrf"] = secrets.token_urlsafe(32)
        g.csrf_token = session["csrf"]


def csrf_protect() -> None:
    """Check the form's csrf_token (or X-CSRF-Token) against the session; 403 when it differs.
    Every unsafe UI request gets this automatically; call it from other form handlers."""
    _check_csrf()


def _check_csrf() -> None:
    expected = session.get("csrf") or ""
    sent = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token") or ""
    if not expected or not hmac.compare_digest(expected, sent):
        log.warning("csrf check failed: %s %s from %s", request.method, request.path,
                    request.remote_addr)
        raise ApiError("The form expired or came from another site; reload the page and retry",
                       status=403, code="CSRFCheckFailed")


# -- session cookie -------------------------------------------------------------------------
class _SessionInterface(SecureCookieSessionInterface):
    def get_cookie_secure(self, app):
        # Secure whenever the browser talks TLS to us or to the proxy in front of us
        return request.is_secure or request.headers.get("X-Forwarded-Proto", "") == "https"

    # API calls carry no session cookie: Flask would still build the signing serializer to
    # open and read every cookie option to save an empty, untouched session (~3 % of a read's
    # API CPU). Both shortcuts give what Flask's own code gives in that case.
    def open_session(self, app, request):
        if app.secret_key and not request.cookies.get(self.get_cookie_name(app)):
            return self.session_class()
        return super().open_session(app, request)

    def save_session(self, app, session, response):
        if not session and not session.modified and not session.accessed:
            return None
        return super().save_session(app, session, response)


def _session_key() -> bytes:
    # Every Gunicorn worker and restart must sign alike: derived from the encryption key.
    return hmac.new(vault.keyring().primary, b"imapapi/ui-session/v1", hashlib.sha256).digest()


# -- login ----------------------------------------------------------------------------------
bp = Blueprint("auth", __name__)

_LOGIN = """{% extends "ui_base.html" %}
{% block content %}
<h1>Log in</h1>
<p>Paste an API token with the <code>ui</code> (or <code>*</code>) scope. Create one with
<code>imap-api tokens create --scope=ui</code>.</p>
<form method="post" action="{{ url_for('auth.login_post') }}">
  <input type="hidden" name="csrf_token" value="{{ csrf }}">
  <input type="hidden" name="next" value="{{ next }}">
  <label>Token <input type="password" name="token" autocomplete="off" required></label>
  <button type="submit">Log in</button>
</form>
{% endblock %}"""


def _login_page(status: int = 200, problem: dict | None = None):
    nxt = request.form.get("next") or (request.full_path if request.endpoint != "auth.login"
                                       else request.args.get("next", "/"))
    if not nxt.startswith("/") or nxt.startswith("//"):
        nxt = "/"   # never redirect off-site after login
    html = render_template_string(_LOGIN, title="Log in", nav=[], version="", notice=None,
                                  problem=problem, csrf=session.get("csrf", ""),
                                  next=nxt.rstrip("?"))
    return html, status, {"Cache-Control": "no-store"}


@bp.get("/ui/login")
def login():
    return _login_page()


@bp.post("/ui/login")
def login_post():
    _check_csrf()
    token = (request.form.get("token") or "").strip()
    record = tokens.verify(get_redis(), token) if token else None
    if record is None or not tokens.allows(record, "ui"):
        log.warning("ui login failed from %s", request.remote_addr)
        return _login_page(401, {"message": "That token is unknown or lacks the ui scope.",
                                 "fields": []})
    session.clear()
    session.permanent = True
    session["tok"] = tokens.digest(token)
    session["csrf"] = secrets.token_urlsafe(32)   # a fresh one after login (fixation)
    nxt = request.form.get("next") or "/"
    if not nxt.startswith("/") or nxt.startswith("//"):
        nxt = "/"
    return redirect(nxt, code=303)


@bp.post("/ui/logout")
def logout():
    session.clear()
    return redirect("/ui/login", code=303)


# -- headers --------------------------------------------------------------------------------
_FIXED_HEADERS = (("x-frame-options", "X-Frame-Options", "DENY"),
                  ("referrer-policy", "Referrer-Policy", "no-referrer"),
                  ("x-content-type-options", "X-Content-Type-Options", "nosniff"))


def _headers(response):
    # Each header only where the view set none. Not Headers.setdefault: it looks each name up
    # through a raised and caught BadRequestKeyError when absent (the usual case), two per call:
    # 4 setdefaults were ~15 us of every API response (issue 15).
    headers = response.headers
    present = {name.lower() for name in headers.keys()}
    if "content-security-policy" not in present:
        headers.add("Content-Security-Policy", CSP_DOCS if request.endpoint in DOCS else CSP)
    for lower, name, value in _FIXED_HEADERS:
        if lower not in present:
            headers.add(name, value)
    return response


def init_app(app: Flask) -> None:
    app.config["MAX_CONTENT_LENGTH"] = get_settings().max_body
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Strict",
                      SESSION_COOKIE_NAME="imapapi_session", PERMANENT_SESSION_LIFETIME=12 * 3600)
    app.session_interface = _SessionInterface()
    if not app.secret_key:
        app.secret_key = _session_key()
    app.register_blueprint(bp)
    app.before_request(_enforce)
    app.after_request(_headers)
