"""POST /v1/account/{account}/search: IMAP SEARCH in one folder, paged newest (highest UID) first."""
from __future__ import annotations

from flask.views import MethodView

from app.accounts.routes import check_account_id
from app.api import Blueprint
from app.messages.schemas import MessageListSchema
from app.tasks import run
from imapapi import tasknames as T

from .schemas import SearchQuerySchema, SearchSchema

blp = Blueprint("search", __name__, description="Server-side search")


@blp.route("/v1/account/<account>/search")
class Search(MethodView):
    @blp.arguments(SearchQuerySchema, location="query")
    @blp.arguments(SearchSchema)
    @blp.response(200, MessageListSchema)
    def post(self, query, body, account):
        """Search a folder: criteria map to IMAP SEARCH keys; same entries as the listing"""
        return run(T.MESSAGES_SEARCH, account=check_account_id(account), path=query["path"],
                   search=body["search"], page=query["page"], pageSize=query["pageSize"])
