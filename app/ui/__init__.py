"""The small web UI at `/`: account list with states and an add-account form (public API only)."""
from __future__ import annotations

from flask import Blueprint, Flask, render_template

from imapapi import __version__

bp = Blueprint("ui", __name__, template_folder="templates", static_folder="static",
               static_url_path="/static/ui")


@bp.get("/")
def index():
    return render_template("imapapi_index.html", version=__version__)


@bp.get("/favicon.ico")
def favicon():
    return "", 204


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
