"""Op messages.upload: APPEND a raw (base64) or composed message (reply/forward too) to a folder."""
from __future__ import annotations

import base64
import binascii
import re

from imapclient.exceptions import IMAPClientError

from imapapi import compose, errors, ids

from .registry import op
from . import submit as submit_ops
from .msgutil import check_flags, folder_exists, server_path

_APPENDUID = re.compile(rb"APPENDUID\s+(\d+)\s+(\d+)", re.I)


def raw_message(data: dict, parent: dict | None = None) -> bytes:
    """The RFC 822 bytes: `raw` (base64) as given, else built from the structured fields
    (with `parent`, the referenced message, giving the reply/forward headers as sending does)."""
    if data.get("raw") is not None:
        try:
            raw = base64.b64decode("".join(str(data["raw"]).split()), validate=True)
        except (binascii.Error, ValueError):
            raise errors.BadRequest("raw is not valid base64", code="InvalidInput",
                                    fields=[{"key": "raw", "message": "Not valid base64"}]) from None
        if not raw.strip():
            raise errors.BadRequest("raw is empty", code="InvalidInput",
                                    fields=[{"key": "raw", "message": "Empty message"}])
        return raw

    fields = {k: v for k, v in data.items() if k not in ("path", "flags", "raw")}
    if parent is not None:
        fields = compose.apply_reference(fields, parent, fields["reference"]["action"])
    raw, _message_id = compose.build(fields)
    return raw


@op("messages.upload")
def upload(ctx, data: dict):
    data = data or {}
    path = server_path(data.get("path"))
    flags = check_flags(data.get("flags"))
    parent = None
    ref = data.get("reference")
    if ref and data.get("raw") is None:
        # Looked up as for sending (404, nothing appended, when it is gone). Unlike the original,
        # the referenced message is not flagged \\Answered: a stored draft is not an answer yet.
        ref = {"action": "reply", **ref}
        data = {**data, "reference": ref}
        parent = submit_ops.reference(
            ctx, message=ref["message"],
            attachments=ref["action"] == "forward" and ref.get("attachments", True))
    raw = raw_message(data, parent)
    with ctx.client() as client:
        if not folder_exists(client, path):
            raise errors.MailboxNotFound(path=data.get("path"))
        try:
            response = client.append(path, raw, flags=flags)
        except IMAPClientError as exc:
            raise errors.UpstreamError(str(exc), code="UploadFail") from None
    out: dict = {"path": path}
    match = _APPENDUID.search(response if isinstance(response, bytes) else str(response).encode())
    if match:
        uid_validity, uid = int(match.group(1)), int(match.group(2))
        out.update(id=ids.encode_message_id(ctx.registry.number(uid_validity, path), uid),
                   uid=uid, uidValidity=str(uid_validity))
    return out
