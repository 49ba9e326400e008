"""Schemas of the single-message routes: details query, flag/move update, delete, upload."""
from __future__ import annotations

import base64
import binascii
import re

import marshmallow as ma
from marshmallow import fields, validate

from app.submit.schemas import AddressSchema, AttachmentSchema, ReferenceSchema
from imapapi.schemas import Strict

MAX_BYTES = 1024 ** 3
# an IMAP flag: optional "\" then atom characters (no space, parens, quotes, wildcards, "]")
FLAG = re.compile(r'^\\?[^\x00-\x20\x7f(){%*"\\\]]+$')


def _flag(value: str):
    if not FLAG.match(value):
        raise ma.ValidationError(f"Not a valid IMAP flag: {value!r}")


Flag = fields.String(validate=[validate.Length(min=1, max=128), _flag])


class TextTypeField(fields.String):
    """plain | html | * (any case)."""

    def _deserialize(self, value, attr, data, **kwargs):
        value = super()._deserialize(value, attr, data, **kwargs).lower()
        if value not in ("plain", "html", "*"):
            raise ma.ValidationError("Must be one of: plain, html, *")
        return value


class MessageQuerySchema(ma.Schema):
    textType = TextTypeField(metadata={"description": "Include text: plain, html or * (all)"})
    maxBytes = fields.Integer(load_default=0, validate=validate.Range(0, MAX_BYTES), metadata={
        "description": "Cap per text type, in bytes of UTF-8 output (0: no cap)"})


class FlagsSchema(Strict):
    add = fields.List(Flag)
    delete = fields.List(Flag)
    set = fields.List(Flag, metadata={"description": "Replaces all flags; add/delete are ignored"})


class UpdateSchema(Strict):
    flags = fields.Nested(FlagsSchema)
    path = fields.String(validate=validate.Length(min=1, max=1024),
                         metadata={"description": "Move the message to this folder"})


class MoveSchema(Strict):
    path = fields.String(required=True, validate=validate.Length(min=1, max=1024))


class DeleteQuerySchema(ma.Schema):
    force = fields.Boolean(load_default=False, metadata={
        "description": "Expunge at once instead of moving to Trash"})


def _base64(value: str):
    try:
        base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ma.ValidationError("Not valid base64 content") from None


class UploadSchema(Strict):
    path = fields.String(required=True, validate=validate.Length(min=1, max=1024))
    flags = fields.List(Flag, load_default=list)
    raw = fields.String(validate=_base64, metadata={
        "description": "The whole RFC 822 message, base64; or give the fields below"})
    from_ = fields.Nested(AddressSchema, data_key="from")
    to = fields.List(fields.Nested(AddressSchema))
    cc = fields.List(fields.Nested(AddressSchema))
    subject = fields.String(validate=validate.Length(max=1024))
    text = fields.String()
    html = fields.String()
    attachments = fields.List(fields.Nested(AttachmentSchema))
    messageId = fields.String(validate=validate.Length(max=998))
    headers = fields.Dict(keys=fields.String(), values=fields.String())
    reference = fields.Nested(ReferenceSchema, metadata={
        "description": "Reply to / forward a stored message: In-Reply-To, References and the "
                       "subject as when sending (the referenced message is not flagged)"})

    @ma.validates_schema
    def _raw_or_fields(self, data, **_):
        if "raw" in data:
            extra = [k for k in data if k not in ("path", "flags", "raw")]
            if extra:
                raise ma.ValidationError("Give either raw or message fields, not both", "raw")
        elif "from_" not in data:
            raise ma.ValidationError("Missing data for required field (or give raw)", "from")

    @ma.post_load
    def _wire_names(self, data, **_):
        if "from_" in data:
            data["from"] = data.pop("from_")
        return data


class UploadResultSchema(ma.Schema):
    id = fields.String()
    path = fields.String()
    uid = fields.Integer()
    uidValidity = fields.String()
