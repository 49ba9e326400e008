"""GET /v1/account/{account}/text/{text}: a message's text parts, decoded, optionally capped."""
from __future__ import annotations

from flask.views import MethodView

from app.accounts.routes import check_account_id
from app.api import Blueprint
from app.tasks import run
from imapapi import ids
from imapapi import tasknames as T

from .schemas import TextQuerySchema

blp = Blueprint("text", __name__, description="Message text")


@blp.route("/v1/account/<account>/text/<text>")
class Text(MethodView):
    @blp.arguments(TextQuerySchema, location="query")
    @blp.response(200)
    def get(self, query, account, text):
        """{plain?, html?, hasMore}: only the needed parts are fetched, only their first bytes
        when `maxBytes` is set; transfer encoding and charset are decoded to UTF-8"""
        if len(text) > 256:
            ids.decode_text_id("")
        ids.decode_text_id(text)   # 404 JSON for a malformed id, before any task
        return run(T.MESSAGE_TEXT, account=check_account_id(account), text=text,
                   textType=query["textType"], maxBytes=query["maxBytes"])
