"""Schemas of POST /v1/account/{account}/submit (fields as in the original IMAP API, plus copy/sendAt)."""
from __future__ import annotations

import base64
import binascii
import re
from datetime import timezone

import marshmallow as ma
from email_validator import EmailNotValidError, validate_email
from marshmallow import fields, validate

from imapapi.schemas import Strict

_B64URL = re.compile(r"^[A-Za-z0-9_-]+$")
_MSGID = re.compile(r"^<?[^<>\s@]+@[^<>\s@]+>?$")
# RFC 5322 field name: printable ASCII except colon.
_HEADER_NAME = re.compile(r"^[!-9;-~]+$")


def _email(value: str):
    try:
        validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ma.ValidationError(f"Invalid email address: {exc}") from None


def _single_line(value: str):
    # a CR/LF in a header value would end the header: refuse instead of letting it through
    if "\r" in value or "\n" in value:
        raise ma.ValidationError("Must not contain line breaks")


def base64_content(value: str):
    """Validator: base64 (white space allowed, as in wrapped MIME bodies)."""
    try:
        base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ma.ValidationError("Not valid base64 content") from None


class AddressSchema(Strict):
    name = fields.String(validate=[validate.Length(max=256), _single_line], allow_none=True)
    address = fields.String(required=True, validate=[validate.Length(max=512), _email])


class ReferenceSchema(Strict):
    message = fields.String(required=True, validate=[validate.Length(min=1, max=256),
                                                     validate.Regexp(_B64URL)],
                            metadata={"description": "Id of the message replied to / forwarded"})
    action = fields.String(load_default="reply", validate=validate.OneOf(["reply", "forward"]),
                           metadata={"description": "reply (default) or forward"})
    attachments = fields.Boolean(load_default=True, metadata={
        "description": "forward only: include the original's attachments (default true)"})

    @ma.pre_load
    def _lower(self, data, **_):
        if isinstance(data, dict) and isinstance(data.get("action"), str):
            data = {**data, "action": data["action"].lower()}
        return data


class AttachmentSchema(Strict):
    filename = fields.String(validate=[validate.Length(max=256), _single_line])
    content = fields.String(required=True, validate=base64_content,
                            metadata={"description": "File content, base64"})
    contentType = fields.String(validate=[validate.Length(max=256), _single_line])
    contentDisposition = fields.String(validate=validate.OneOf(["inline", "attachment"]))
    cid = fields.String(validate=[validate.Length(max=256), _single_line],
                        metadata={"description": "Content-ID for inline images (src=\"cid:...\")"})
    encoding = fields.String(validate=validate.OneOf(["base64"]))


def _headers(value: dict):
    for name, val in value.items():
        if not _HEADER_NAME.match(name):
            raise ma.ValidationError(f"Invalid header name {name!r}")
        if not isinstance(val, str) or "\r" in val or "\n" in val:
            raise ma.ValidationError(f"Header {name} must be a single-line string")


class SubmitSchema(Strict):
    reference = fields.Nested(ReferenceSchema)
    from_ = fields.Nested(AddressSchema, data_key="from", required=True)
    to = fields.List(fields.Nested(AddressSchema))
    cc = fields.List(fields.Nested(AddressSchema))
    bcc = fields.List(fields.Nested(AddressSchema),
                      metadata={"description": "Envelope only: never written into the message"})
    subject = fields.String(validate=[validate.Length(max=1024), _single_line])
    text = fields.String()
    html = fields.String()
    attachments = fields.List(fields.Nested(AttachmentSchema))
    messageId = fields.String(validate=[validate.Length(max=998), validate.Regexp(
        _MSGID, error="Must look like <id@domain>")],
                              metadata={"description": "Message-ID to use (default: generated)"})
    headers = fields.Dict(keys=fields.String(), values=fields.Raw(), validate=_headers)
    copy = fields.Boolean(load_default=True,
                          metadata={"description": "Store a copy in the Sent folder"})
    sendAt = fields.AwareDateTime(default_timezone=timezone.utc, metadata={
        "description": "ISO 8601 time to send at; the request then answers 202 at once"})

    @ma.validates_schema
    def _recipients(self, data, **_):
        if data.get("to") or data.get("cc") or data.get("bcc"):
            return
        ref = data.get("reference")
        if ref and ref.get("action", "reply") == "reply":
            return  # a reply defaults to the referenced message's Reply-To/From
        raise ma.ValidationError("At least one recipient (to, cc or bcc) is required", "to")

    @ma.post_load
    def _wire_names(self, data, **_):
        data["from"] = data.pop("from_")
        return data


class SubmitResultSchema(ma.Schema):
    response = fields.String(metadata={"description": "Last SMTP reply, e.g. 250 2.0.0 Ok"})
    messageId = fields.String(metadata={"description": "The Message-ID header that was sent"})
    queueId = fields.String(metadata={"description": "Outbox id (GET /v1/outbox/{queueId})"})
    sendAt = fields.String()
    state = fields.String()
