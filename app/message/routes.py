"""One message: details, flag/move update, delete, raw source download, upload (APPEND)."""
from __future__ import annotations

from flask.views import MethodView

from app.accounts.routes import check_account_id
from app.api import Blueprint
from app.tasks import run
from imapapi import ids
from imapapi import tasknames as T

from .schemas import (DeleteQuerySchema, MessageQuerySchema, MoveSchema, UpdateSchema,
                      UploadResultSchema, UploadSchema)
from .streaming import stream_response

blp = Blueprint("message", __name__, description="Single messages")


def check_message_id(message: str) -> str:
    """404 JSON for a malformed id without a round trip to the sidecar."""
    if len(message) > 256:
        ids.decode_message_id("")   # raises the same MessageNotFound as any bad id
    ids.decode_message_id(message)
    return message


@blp.route("/v1/account/<account>/message/<message>")
class Message(MethodView):
    @blp.arguments(MessageQuerySchema, location="query")
    @blp.response(200)
    def get(self, query, account, message):
        """Details: envelope, flags, size, decoded headers, attachments, text id (and text)

        Built from BODYSTRUCTURE, ENVELOPE and the header block; the message itself is not
        downloaded. With `textType` the text is included, capped by `maxBytes`; with
        `textType=*` a reply also gets `text.visible` (its plain text without the quote).
        """
        args = {"message": check_message_id(message)}
        if "textType" in query:
            args.update(textType=query["textType"], maxBytes=query["maxBytes"])
        return run(T.MESSAGE_GET, account=check_account_id(account), **args)

    @blp.arguments(UpdateSchema)
    @blp.response(200)
    def put(self, data, account, message):
        """Update flags (`flags.add`, `flags.delete`, `flags.set`) and/or move (`path`)

        Without MOVE the message is copied, flagged \\Deleted and that UID expunged; a server
        without UIDPLUS too can not expunge one UID alone, so the original stays flagged
        \\Deleted and the answer has `expunged: false` (other messages are never expunged).
        """
        return run(T.MESSAGE_UPDATE, account=check_account_id(account),
                   message=check_message_id(message), **data)

    @blp.arguments(DeleteQuerySchema, location="query")
    @blp.response(200)
    def delete(self, query, account, message):
        """Move to Trash; inside Trash or with `force=true` expunge this message only

        `expunged: false` in the answer: the server lacks UIDPLUS, so the message is left
        flagged \\Deleted rather than risk expunging other messages flagged so.
        """
        return run(T.MESSAGE_DELETE, account=check_account_id(account),
                   message=check_message_id(message), force=query["force"])


@blp.route("/v1/account/<account>/message/<message>/move")
class MessageMove(MethodView):
    @blp.arguments(MoveSchema)
    @blp.response(200)
    def put(self, data, account, message):
        """Move to another folder: {path, id?, uid?} (id/uid when the server reports COPYUID)"""
        return run(T.MESSAGE_UPDATE, account=check_account_id(account),
                   message=check_message_id(message), path=data["path"])


@blp.route("/v1/account/<account>/message/<message>/source")
class MessageSource(MethodView):
    @blp.doc(responses={"200": {"description": "The raw message",
                                "content": {"message/rfc822": {}}}})
    def get(self, account, message):
        """Download the raw RFC 822 message, streamed, bytes as stored on the server"""
        result = run(T.MESSAGE_SOURCE, account=check_account_id(account),
                     message=check_message_id(message))
        return stream_response(result, "message/rfc822",
                               {"Content-Disposition": "attachment"})


@blp.route("/v1/account/<account>/message")
class MessageUpload(MethodView):
    @blp.arguments(UploadSchema)
    @blp.response(200, UploadResultSchema)
    def post(self, data, account):
        """Upload (APPEND) a message: `raw` (base64 RFC 822) or the same fields as submit

        With `reference` the threading headers and subject come from the referenced message as
        when sending (404, nothing stored, when it is gone); it is not flagged \\Answered.
        """
        return run(T.MESSAGE_UPLOAD, account=check_account_id(account), data=data)
