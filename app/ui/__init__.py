"""The web UI (server-rendered pages; JS only enhances): overview, accounts, settings, webhooks,
tokens.

Pages call the same functions and tasks the API routes do (never HTTP to the API itself), read
without JavaScript, and change things through plain POST forms (post/redirect/get).
"""
from __future__ import annotations

from flask import Flask

from . import accounts, overview, settings, tokens, webhooks  # noqa: F401  (register their routes)
from .common import bp


@bp.get("/favicon.ico")
def favicon():
    return "", 204


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
