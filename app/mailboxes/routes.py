"""The mailboxes (folders) resource: the listing (collection) and create, rename, delete (item)."""
from __future__ import annotations

from flask.views import MethodView

from app.api import Blueprint, check_account_id
from app.tasks import run
from imapapi import tasknames as T

from .schemas import (CreateSchema, MailboxCreatedSchema, MailboxDeletedSchema,
                      MailboxesQuerySchema, MailboxListSchema, MailboxRenamedSchema,
                      PathQuerySchema, RenameSchema)

blp = Blueprint("mailboxes", __name__, description="Folders of an account")


@blp.route("/v1/account/<account>/mailboxes")
class MailboxList(MethodView):
    @blp.arguments(MailboxesQuerySchema, location="query")
    @blp.response(200, MailboxListSchema)
    def get(self, query, account):
        """List folders: path, name, delimiter, specialUse, subscribed, messages, unseen

        503 with `state` when the account is not connected; 504 when the server is too slow.
        """
        return run(T.MAILBOXES_LIST, account=check_account_id(account), counters=query["counters"])


@blp.route("/v1/account/<account>/mailbox")
class MailboxItem(MethodView):
    @blp.arguments(CreateSchema)
    @blp.response(200, MailboxCreatedSchema)
    def post(self, data, account):
        """Create a folder (and subscribe it): {path, created}; created=false if it existed"""
        return run(T.MAILBOX_CREATE, account=check_account_id(account), path=data["path"])

    @blp.arguments(RenameSchema)
    @blp.response(200, MailboxRenamedSchema)
    def put(self, data, account):
        """Rename a folder: {path, newPath, renamed}; 404 if `path` does not exist"""
        return run(T.MAILBOX_RENAME, account=check_account_id(account), path=data["path"],
                   newPath=data["newPath"])

    @blp.arguments(PathQuerySchema, location="query")
    @blp.response(200, MailboxDeletedSchema)
    def delete(self, query, account):
        """Delete a folder: {path, deleted}; 404 if it does not exist"""
        return run(T.MAILBOX_DELETE, account=check_account_id(account), path=query["path"])
