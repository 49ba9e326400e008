"""GET /v1/account/{account}/messages: task imapapi.messages.list on the live connection."""
from __future__ import annotations

from flask.views import MethodView

from app.accounts.routes import check_account_id
from app.api import Blueprint
from app.tasks import run
from imapapi import tasknames as T

from .schemas import MessageEntrySchema, MessageListSchema, MessagesQuerySchema

blp = Blueprint("messages", __name__, description="Message listings")
_ = MessageEntrySchema   # documented entry shape


@blp.route("/v1/account/<account>/messages")
class Messages(MethodView):
    @blp.arguments(MessagesQuerySchema, location="query")
    @blp.response(200, MessageListSchema)
    def get(self, query, account):
        """Paged listing of a folder, newest first: {total, page, pages, messages}"""
        return run(T.MESSAGES_LIST, account=check_account_id(account), path=query["path"],
                   page=query["page"], pageSize=query["pageSize"])
