"""Schemas for webhook dead letters."""
from __future__ import annotations

import marshmallow as ma
from marshmallow import fields

from app.api import PageSchema, PagingQuerySchema
from imapapi.schemas import Strict


class DeadQuerySchema(Strict, PagingQuerySchema):
    """page (0-based), pageSize 1..1000."""


class DeadLetterSchema(ma.Schema):
    id = fields.String()
    account = fields.String(allow_none=True)
    url = fields.String()
    attempts = fields.Integer()
    error = fields.String()
    failedAt = fields.Float(metadata={"description": "epoch seconds"})
    event = fields.Dict()


class DeadListSchema(PageSchema):
    deadLetters = fields.List(fields.Nested(DeadLetterSchema))


class ResentSchema(ma.Schema):
    id = fields.String()
    resent = fields.Boolean()


class TestResultSchema(ma.Schema):
    url = fields.String(allow_none=True, metadata={"description": "Target (userinfo removed)"})
    status = fields.Integer(allow_none=True, metadata={"description": "Receiver's HTTP status"})
    ms = fields.Float(metadata={"description": "Round trip in milliseconds"})
    response = fields.String(allow_none=True, metadata={"description": "First 500 characters"})
    error = fields.String(allow_none=True, metadata={"description": "Why it failed (null: 2xx)"})
