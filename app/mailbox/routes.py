"""POST/PUT/DELETE /v1/account/{account}/mailbox: create, rename and delete folders."""
from __future__ import annotations

from flask.views import MethodView

from app.accounts.routes import check_account_id
from app.api import Blueprint
from app.tasks import run
from imapapi import tasknames as T

from .schemas import CreateSchema, PathQuerySchema, RenameSchema

blp = Blueprint("mailbox_write", __name__, description="Folder changes")


@blp.route("/v1/account/<account>/mailbox")
class Mailbox(MethodView):
    @blp.arguments(CreateSchema)
    @blp.response(200)
    def post(self, data, account):
        """Create a folder (and subscribe it): {path, created}; created=false if it existed"""
        return run(T.MAILBOX_CREATE, account=check_account_id(account), path=data["path"])

    @blp.arguments(RenameSchema)
    @blp.response(200)
    def put(self, data, account):
        """Rename a folder: {path, newPath, renamed}; 404 if `path` does not exist"""
        return run(T.MAILBOX_RENAME, account=check_account_id(account), path=data["path"],
                   newPath=data["newPath"])

    @blp.arguments(PathQuerySchema, location="query")
    @blp.response(200)
    def delete(self, query, account):
        """Delete a folder: {path, deleted}; 404 if it does not exist"""
        return run(T.MAILBOX_DELETE, account=check_account_id(account), path=query["path"])
