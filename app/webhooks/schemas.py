"""Schemas for webhook dead letters."""
from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate

from app.api import PageSchema
from imapapi.schemas import Strict


class DeadQuerySchema(Strict):
    page = fields.Integer(load_default=0, validate=validate.Range(min=0))
    pageSize = fields.Integer(load_default=20, validate=validate.Range(min=1, max=1000))


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
