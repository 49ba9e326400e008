"""Schemas of the mailboxes resource: listing query, create / rename / delete, and the answers."""
from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate

from app.api import DictSchema, Passthrough, ResultSchema
from imapapi.schemas import Strict

Segment = fields.String(validate=validate.Length(min=1, max=256))


class MailboxesQuerySchema(ma.Schema):
    counters = fields.Boolean(load_default=False,
                              metadata={"description": "Ask the server for fresh message counts"})


class CreateSchema(Strict):
    path = fields.List(Segment, required=True, validate=validate.Length(min=1, max=32), metadata={
        "description": "Folder names from the top: ['Parent', 'Child']"})


class RenameSchema(Strict):
    path = fields.String(required=True, validate=validate.Length(min=1, max=1024),
                         metadata={"description": "Current full path"})
    newPath = fields.List(Segment, required=True, validate=validate.Length(min=1, max=32),
                          metadata={"description": "New folder names from the top"})


class PathQuerySchema(ma.Schema):
    path = fields.String(required=True, validate=validate.Length(min=1, max=1024))


# -- responses (built by the sidecar; see ResultSchema) ------------------------------------------

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
    mailboxes = fields.List(Passthrough(MailboxSchema), required=True)


class MailboxCreatedSchema(ResultSchema):
    path = fields.String(metadata={"description": "Full path as created on the server"})
    created = fields.Boolean(metadata={"description": "false: it existed already"})


class MailboxRenamedSchema(ResultSchema):
    path = fields.String()
    newPath = fields.String()
    renamed = fields.Boolean()


class MailboxDeletedSchema(ResultSchema):
    path = fields.String()
    deleted = fields.Boolean()
