"""The Flask application factory: flask-smorest Api, resource blueprints, health, metrics, web UI."""
from __future__ import annotations

import importlib
import logging

import redis.exceptions
from flask import Flask, send_from_directory

from imapapi import __version__
from imapapi import settings as settings_mod
from imapapi.errors import ApiError, Unavailable

from . import health, metrics, security, ui
from .api import Api

# One resource package per line (app/<name>/routes.py exposing `blp`); append yours.
RESOURCES = [
    "accounts",
    "mailboxes",
    "messages",
    "submit",
    "outbox",
    "settings",
    "changes",
    "webhooks",
    "stats",
    "logs",
    "tokens",
    "sidecars",
]

log = logging.getLogger("imapapi.api")


def _swagger_assets() -> str | None:
    try:   # lazy and optional: without the package /docs loads Swagger UI from the CDN
        import swagger_ui_bundle
    except ImportError:
        return None
    return swagger_ui_bundle.swagger_ui_path


def create_app(test_config: dict | None = None) -> Flask:
    """Build the app. test_config may set TESTING, REDIS_URL (installed process-wide) and
    TASKS_EAGER (run task functions in-process instead of through a worker)."""
    app = Flask(__name__, static_folder=None)
    assets = _swagger_assets()
    app.config.update(
        API_TITLE="IMAP API",
        API_VERSION=__version__,
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="docs",
        OPENAPI_SWAGGER_UI_URL="/docs/assets/" if assets else "https://cdn.jsdelivr.net/npm/swagger-ui-dist/",
        API_SPEC_OPTIONS={"info": {"description": "IMAP and SMTP accounts behind a REST API."}},
        JSON_SORT_KEYS=False,
        MAX_CONTENT_LENGTH=50 * 1024 * 1024,
        TASKS_EAGER=False,
    )
    if test_config:
        app.config.update(test_config)
    if app.config.get("REDIS_URL"):
        settings_mod.replace(redis_url=app.config["REDIS_URL"])
    app.json.sort_keys = False

    api = Api(app)
    for name in RESOURCES:
        module = importlib.import_module(f"app.{name}.routes")
        api.register_blueprint(module.blp)

    if assets:
        @app.get("/docs/assets/<path:filename>")
        def swagger_assets(filename):
            return send_from_directory(assets, filename, max_age=86400)

    security.init_app(app)
    health.init_app(app)
    ui.init_app(app)
    metrics.init_app(app)
    _register_fallbacks(app)
    return app


def _register_fallbacks(app: Flask) -> None:
    """Outcomes nothing else handled: Redis down -> 503 JSON, anything else -> generic 500 JSON."""
    @app.errorhandler(redis.exceptions.ConnectionError)
    @app.errorhandler(redis.exceptions.TimeoutError)
    def redis_down(exc):
        log.error("Redis unavailable: %s", exc)
        error = Unavailable("Redis is not reachable", code="ServiceUnavailable")
        return error.body(), error.status

    @app.errorhandler(Exception)
    def unexpected(exc):
        # HTTPExceptions never get here: flask-smorest's more specific handler answers them
        log.exception("unhandled error")
        error = ApiError()
        return error.body(), error.status
