"""Schemas of the mailboxes listing."""
from __future__ import annotations

import marshmallow as ma

from app.api import DictSchema
from marshmallow import fields


class MailboxesQuerySchema(ma.Schema):
    counters = fields.Boolean(load_default=False,
                              metadata={"description": "Ask the server for fresh message counts"})


class MailboxSchema(ma.Schema):
    path = fields.String(required=True, metadata={"description": "Path as the server lists it"})
    name = fields.String(metadata={"description": "Decoded leaf name"})
    delimiter = fields.String(allow_none=True)
    parentPath = fields.String()
    specialUse = fields.String(allow_none=True)
    subscribed = fields.Boolean()
    listed = fields.Boolean()
    messages = fields.Raw(allow_none=True)
    unseen = fields.Raw(allow_none=True)
    uidNext = fields.Raw(allow_none=True)


class MailboxListSchema(DictSchema):
    mailboxes = fields.List(fields.Dict(), required=True,
                            metadata={"description": "Entries shaped like MailboxSchema"})
