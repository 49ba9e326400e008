"""The messages resource: listing, search and upload (collection); details, update, move, delete,
source, text and attachments of one message (item), each served by the account's sidecar."""
from __future__ import annotations

from flask.views import MethodView

from app.api import Blueprint, check_account_id, check_message_id
from app.tasks import run
from imapapi import errors, ids
from imapapi import tasknames as T

from .schemas import (DeleteQuerySchema, MessageDeletedSchema, MessageDetailsSchema,
                      MessageListSchema, MessageQuerySchema, MessagesQuerySchema,
                      MessageUpdatedSchema, MoveSchema, SearchQuerySchema, SearchSchema,
                      TextQuerySchema, TextSchema, UpdateSchema, UploadResultSchema, UploadSchema)
from .streaming import content_disposition, stream_response

blp = Blueprint("messages", __name__, description="Messages of an account's folders")


# -- collection ----------------------------------------------------------------------------------

@blp.route("/v1/account/<account>/messages")
class MessageList(MethodView):
    @blp.arguments(MessagesQuerySchema, location="query")
    @blp.response(200, MessageListSchema)
    def get(self, query, account):
        """Paged listing of a folder, newest first: {total, page, pages, messages}"""
        return run(T.MESSAGES_LIST, account=check_account_id(account), path=query["path"],
                   page=query["page"], pageSize=query["pageSize"])


@blp.route("/v1/account/<account>/search")
class MessageSearch(MethodView):
    @blp.arguments(SearchQuerySchema, location="query")
    @blp.arguments(SearchSchema)
    @blp.response(200, MessageListSchema)
    def post(self, query, body, account):
        """Search a folder: criteria map to IMAP SEARCH keys; same entries as the listing"""
        return run(T.MESSAGES_SEARCH, account=check_account_id(account), path=query["path"],
                   search=body["search"], page=query["page"], pageSize=query["pageSize"])


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


# -- item ----------------------------------------------------------------------------------------

@blp.route("/v1/account/<account>/message/<message>")
class MessageItem(MethodView):
    @blp.arguments(MessageQuerySchema, location="query")
    @blp.response(200, MessageDetailsSchema)
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
    @blp.response(200, MessageUpdatedSchema)
    def put(self, data, account, message):
        """Update flags (`flags.add`, `flags.delete`, `flags.set`) and/or move (`path`)

        Without MOVE the message is copied, flagged \\Deleted and that UID expunged; a server
        without UIDPLUS too can not expunge one UID alone, so the original stays flagged
        \\Deleted and the answer has `expunged: false` (other messages are never expunged).
        """
        return run(T.MESSAGE_UPDATE, account=check_account_id(account),
                   message=check_message_id(message), **data)

    @blp.arguments(DeleteQuerySchema, location="query")
    @blp.response(200, MessageDeletedSchema)
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
    @blp.response(200, MessageUpdatedSchema)
    def put(self, data, account, message):
        """Move to another folder: {path, id?, uid?} (id/uid when the server reports COPYUID)"""
        return run(T.MESSAGE_UPDATE, account=check_account_id(account),
                   message=check_message_id(message), path=data["path"])


@blp.route("/v1/account/<account>/message/<message>/source")
class MessageSource(MethodView):
    @blp.doc(responses={"200": {"description": "The raw message", "content": {
        "message/rfc822": {"schema": {"type": "string", "format": "binary"}}}}})
    def get(self, account, message):
        """Download the raw RFC 822 message, streamed, bytes as stored on the server"""
        result = run(T.MESSAGE_SOURCE, account=check_account_id(account),
                     message=check_message_id(message))
        return stream_response(result, "message/rfc822",
                               {"Content-Disposition": "attachment"})


@blp.route("/v1/account/<account>/text/<text>")
class MessageText(MethodView):
    @blp.arguments(TextQuerySchema, location="query")
    @blp.response(200, TextSchema)
    def get(self, query, account, text):
        """{plain?, html?, hasMore}: only the needed parts are fetched, only their first bytes
        when `maxBytes` is set; transfer encoding and charset are decoded to UTF-8"""
        if len(text) > 256:
            ids.decode_text_id("")
        ids.decode_text_id(text)   # 404 JSON for a malformed id, before any task
        return run(T.MESSAGE_TEXT, account=check_account_id(account), text=text,
                   textType=query["textType"], maxBytes=query["maxBytes"])


@blp.route("/v1/account/<account>/attachment/<attachment>")
class MessageAttachment(MethodView):
    @blp.doc(responses={"200": {"description": "The decoded attachment", "content": {
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}})
    def get(self, account, attachment):
        """Download an attachment: transfer encoding decoded, the part's content type, and
        Content-Disposition with the filename (RFC 6266 filename* for non-ASCII names)"""
        try:
            if len(attachment) > 256:
                raise errors.NotFound()
            ids.decode_attachment_id(attachment)
        except errors.NotFound:
            raise errors.NotFound("Requested file not found", code="AttachmentNotFound") from None
        result = run(T.MESSAGE_ATTACHMENT, account=check_account_id(account),
                     attachment=attachment)
        return stream_response(
            result, result.get("contentType") or "application/octet-stream",
            {"Content-Disposition": content_disposition(result.get("filename"))})
