"""GET /v1/account/{account}/mailboxes: task imapapi.mailboxes.list on the live connection."""
from __future__ import annotations

from flask.views import MethodView

from app.accounts.routes import check_account_id
from app.api import Blueprint
from app.tasks import run
from imapapi import tasknames as T

from .schemas import MailboxesQuerySchema, MailboxListSchema, MailboxSchema

blp = Blueprint("mailbox", __name__, description="Folders of an account")
_ = MailboxSchema   # documented entry shape


@blp.route("/v1/account/<account>/mailboxes")
class Mailboxes(MethodView):
    @blp.arguments(MailboxesQuerySchema, location="query")
    @blp.response(200, MailboxListSchema)
    def get(self, query, account):
        """List folders: path, name, delimiter, specialUse, subscribed, messages, unseen

        503 with `state` when the account is not connected; 504 when the server is too slow.
        """
        return run(T.MAILBOXES_LIST, account=check_account_id(account), counters=query["counters"])
