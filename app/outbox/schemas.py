"""Schemas of the outbox listing and items."""
from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate

from app.api import PageSchema, PagingQuerySchema
from imapapi.outbox import STATES


class OutboxQuerySchema(PagingQuerySchema):
    account = fields.String(validate=validate.Length(min=1, max=256),
                            metadata={"description": "Only this account's messages"})
    state = fields.String(validate=validate.OneOf(STATES))


class OutboxItemSchema(ma.Schema):
    queueId = fields.String()
    account = fields.String()
    messageId = fields.String()
    state = fields.String(metadata={"description": "queued, sending, sent, deferred, failed, cancelled"})
    attempts = fields.Integer()
    envelope = fields.Dict(metadata={"description": "{from, to[]} (to includes cc and bcc)"})
    reference = fields.Dict()
    response = fields.String(metadata={"description": "SMTP server reply once sent"})
    lastError = fields.Dict(metadata={"description": "{message, code, transient} of the last attempt"})
    copyPath = fields.String(metadata={"description": "Where the Sent copy went (or why skipped)"})
    copyError = fields.String(metadata={"description": "Why the Sent copy could not be stored"})
    flagError = fields.String(metadata={"description": "Why the reference could not be flagged"})
    created = fields.String()
    sendAt = fields.String()
    nextAttempt = fields.String()
    sentAt = fields.String()


class OutboxListSchema(PageSchema):
    messages = fields.List(fields.Nested(OutboxItemSchema))


class OutboxDeletedSchema(ma.Schema):
    deleted = fields.Boolean()
    queueId = fields.String()
