"""Schemas of /v1/tokens: create (scopes, account, description), the public record, the list."""
from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate

from app.api import DictSchema
from imapapi import tokens


class TokenCreateSchema(ma.Schema):
    scopes = fields.List(fields.String(validate=validate.OneOf(tokens.SCOPES)), required=True,
                         validate=validate.Length(min=1, max=4),
                         metadata={"description": "api, metrics, ui or *"})
    account = fields.String(load_default=None, allow_none=True, validate=validate.Length(1, 256),
                            metadata={"description": "Restrict the token to this account's routes"})
    description = fields.String(load_default="", validate=validate.Length(max=256))


class TokenSchema(DictSchema):
    id = fields.String(metadata={"description": "Public id (for revoking); never the token"})
    scopes = fields.List(fields.String())
    account = fields.String(allow_none=True)
    description = fields.String()
    created = fields.String()
    lastUsed = fields.String(allow_none=True)


class TokenCreatedSchema(TokenSchema):
    token = fields.String(metadata={"description": "The token: shown only in this answer"})


class TokenListSchema(DictSchema):
    tokens = fields.List(fields.Nested(TokenSchema))


class TokenDeletedSchema(DictSchema):
    deleted = fields.Boolean()
