"""GET /v1/account/{account}/attachment/{attachment}: one MIME part, decoded, streamed."""
from __future__ import annotations

from flask.views import MethodView

from app.accounts.routes import check_account_id
from app.api import Blueprint
from app.message.streaming import content_disposition, stream_response
from app.tasks import run
from imapapi import errors, ids
from imapapi import tasknames as T

blp = Blueprint("attachments", __name__, description="Attachment downloads")


@blp.route("/v1/account/<account>/attachment/<attachment>")
class Attachment(MethodView):
    @blp.doc(responses={"200": {"description": "The decoded attachment",
                                "content": {"application/octet-stream": {}}}})
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
