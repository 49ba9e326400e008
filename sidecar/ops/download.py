"""Streamed ops messages.source (raw RFC 822) and messages.attachment (decoded part), chunk by chunk."""
from __future__ import annotations

from imapapi import errors, ids
from sidecar.imap import bodystructure
from sidecar.imap.textdecode import TransferDecoder

from . import op
from .msgutil import fetch_one, iter_section, open_message

NOT_FOUND = "Requested file not found"


@op("messages.source")
def source(ctx, message: str):
    """-> stream of the message's bytes exactly as stored; result {size} goes out first."""
    with ctx.client() as client:
        try:
            _no, uid, _path = open_message(ctx, client, message)
            size = fetch_one(client, uid, ["UID", "RFC822.SIZE"]).get(b"RFC822.SIZE", 0)
        except errors.NotFound:
            raise errors.MessageNotFound(NOT_FOUND) from None
        writer = ctx.stream({"size": size, "contentType": "message/rfc822"})
        sent = 0
        for chunk in iter_section(client, uid, ""):
            writer.write(chunk)
            sent += len(chunk)
    return {"size": sent}


@op("messages.attachment")
def attachment(ctx, attachment: str):
    """-> stream of one MIME part with its transfer encoding (base64/QP) decoded on the fly."""
    try:
        _mailbox_no, _uid, number = ids.decode_attachment_id(attachment)
    except errors.NotFound:
        raise errors.NotFound(NOT_FOUND, code="AttachmentNotFound") from None
    with ctx.client() as client:
        try:
            _no, uid, _path = open_message(ctx, client, attachment)
            entry = fetch_one(client, uid, ["UID", "BODYSTRUCTURE"])
        except errors.NotFound:
            raise errors.NotFound(NOT_FOUND, code="AttachmentNotFound") from None
        part = bodystructure.analyze(entry.get(b"BODYSTRUCTURE")).part(number)
        if part is None:
            raise errors.NotFound(NOT_FOUND, code="AttachmentNotFound")
        content_type = part.content_type
        if part.type == "text" and part.charset:
            # bytes are passed through undecoded, so the client needs the original charset
            content_type += f"; charset={part.charset}"
        writer = ctx.stream({"contentType": content_type, "filename": part.filename or None,
                             "encodedSize": part.size, "encoding": part.encoding})
        decoder = TransferDecoder(part.encoding)
        sent = 0
        for chunk in iter_section(client, uid, number):
            data = decoder.feed(chunk)
            if data:
                writer.write(data)
                sent += len(data)
        tail = decoder.finish()
        if tail:
            writer.write(tail)
            sent += len(tail)
    return {"size": sent}
