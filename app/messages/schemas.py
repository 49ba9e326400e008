"""Schemas of the message listing."""
from __future__ import annotations

import marshmallow as ma

from app.api import PageSchema, PagingQuerySchema
from marshmallow import fields, validate


class MessagesQuerySchema(PagingQuerySchema):
    """path (required); a page past the end gives the last page."""

    path = fields.String(required=True, validate=validate.Length(min=1, max=1024),
                         metadata={"description": "Folder path; `inbox` in any case means INBOX"})


class AddressSchema(ma.Schema):
    name = fields.String()
    address = fields.String()


class MessageEntrySchema(ma.Schema):
    """One listing entry (keys without a value are left out)."""

    id = fields.String(metadata={"description": "Opaque message id (base64url)"})
    uid = fields.Integer()
    date = fields.String()
    size = fields.Integer()
    flags = fields.List(fields.String())
    unseen = fields.Boolean()
    subject = fields.String()
    messageId = fields.String()
    inReplyTo = fields.String()
    from_ = fields.Nested(AddressSchema, data_key="from")
    to = fields.List(fields.Nested(AddressSchema))
    cc = fields.List(fields.Nested(AddressSchema))


class MessageListSchema(PageSchema):
    messages = fields.List(fields.Dict(), required=True,
                           metadata={"description": "Entries shaped like MessageEntrySchema"})
