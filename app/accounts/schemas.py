"""Request and response schemas of the accounts resource (the payload schema lives in imapapi)."""
from __future__ import annotations

from marshmallow import fields, validate

from app.api import DictSchema, PageSchema, PagingQuerySchema
from imapapi.accounts import STATES
from imapapi.schemas import AccountSchema, AccountUpdateSchema, Strict

__all__ = ["DictSchema", "AccountSchema", "AccountUpdateSchema", "AccountCreatedSchema", "AccountUpdatedSchema",
           "AccountInfoSchema", "AccountDeletedSchema", "ReconnectSchema", "ReconnectResultSchema",
           "AccountListQuerySchema", "AccountListSchema"]


class AccountCreatedSchema(DictSchema):
    account = fields.String(required=True)
    state = fields.String(required=True, validate=validate.OneOf(["new", "existing"]),
                          metadata={"description": "new: created; existing: updated"})


class AccountUpdatedSchema(DictSchema):
    account = fields.String(required=True)


class AccountInfoSchema(DictSchema):
    """Stored settings with every secret shown as '******', plus the connection state."""

    account = fields.String(required=True)
    name = fields.String()
    path = fields.String()
    copy = fields.Raw()
    notifyFrom = fields.String()
    imap = fields.Raw(metadata={"description": "IMAP settings (secrets masked) or false"})
    smtp = fields.Raw(metadata={"description": "SMTP settings (secrets masked) or false"})
    webhooks = fields.String(allow_none=True)
    state = fields.String(validate=validate.OneOf(STATES))
    syncTime = fields.String()
    lastError = fields.Dict(allow_none=True,
                            metadata={"description": "{response, serverResponseCode, time} or null"})


class AccountDeletedSchema(DictSchema):
    account = fields.String(required=True)
    deleted = fields.Boolean(required=True)


class ReconnectSchema(Strict):
    reconnect = fields.Boolean(load_default=False)


class ReconnectResultSchema(DictSchema):
    reconnect = fields.Boolean(required=True)


class AccountListQuerySchema(PagingQuerySchema):
    state = fields.String(validate=validate.OneOf(STATES))


class AccountListEntrySchema(DictSchema):
    account = fields.String(required=True)
    name = fields.String()
    state = fields.String()
    syncTime = fields.String()
    lastError = fields.Dict(allow_none=True)


class AccountListSchema(PageSchema):
    accounts = fields.List(fields.Nested(AccountListEntrySchema), required=True)
