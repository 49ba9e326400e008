"""Schemas of GET /v1/account/{account}/text/{text}."""
from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate

from app.message.schemas import MAX_BYTES, TextTypeField


class TextQuerySchema(ma.Schema):
    textType = TextTypeField(load_default="*", metadata={"description": "plain, html or * (all)"})
    maxBytes = fields.Integer(load_default=0, validate=validate.Range(0, MAX_BYTES), metadata={
        "description": "Cap per text type, in bytes of UTF-8 output (0: no cap)"})


class TextSchema(ma.Schema):
    plain = fields.String()
    html = fields.String()
    hasMore = fields.Boolean(metadata={"description": "Text was cut at maxBytes"})
