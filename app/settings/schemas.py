"""Schemas for /v1/settings (query flags for GET, the body for POST)."""
from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate

from imapapi.events import EVENT_TYPES
from imapapi.schemas import Strict


def _event_name(value: str):
    if value != "*" and value not in EVENT_TYPES:
        raise ma.ValidationError(f"Unknown event name {value!r}; use '*' or one of {EVENT_TYPES}")


_http_url = validate.URL(schemes={"http", "https"}, require_tld=False)


def _url_or_empty(value: str):
    # "" clears the setting (as the original accepts it); anything else must be an http(s) URL.
    if value:
        validate.Length(max=2048)(value)
        _http_url(value)


class SettingsQuerySchema(Strict):
    """A flag per key to return; none given -> every key."""

    eventTypes = fields.Boolean()
    webhooks = fields.Boolean()
    webhookEvents = fields.Boolean()
    notifyText = fields.Boolean()
    notifyTextSize = fields.Boolean()
    notifyHeaders = fields.Boolean()
    webhookSecret = fields.Boolean()
    authServer = fields.Boolean()
    logs = fields.Boolean()


class LogsSchema(Strict):
    """Per-account IMAP protocol logging (as the original's `logs` setting)."""

    all = fields.Boolean(load_default=False, metadata={"description": "Log every account"})
    resetLoggedAccounts = fields.Boolean(
        load_default=False, metadata={"description": "Reconnect the listed accounts now (not stored)"})
    accounts = fields.List(fields.String(validate=validate.Length(min=1, max=256)),
                           load_default=list, metadata={"description": "Accounts to log"})
    maxLogLines = fields.Integer(strict=True, load_default=10000,
                                 validate=validate.Range(min=0, max=1000000),
                                 metadata={"description": "Lines kept per account"})


class SettingsSchema(Strict):
    webhooks = fields.String(
        allow_none=True,
        validate=[validate.Length(min=1, max=2048),
                  validate.URL(schemes={"http", "https"}, require_tld=False)],
        metadata={"description": "Webhook target (http/https); null removes it"})
    webhookEvents = fields.List(
        fields.String(validate=[validate.Length(max=256), _event_name]),
        metadata={"description": "Event names to deliver; ['*'] = all, [] = none"})
    notifyText = fields.Boolean(metadata={"description": "Include text in messageNew"})
    notifyTextSize = fields.Integer(strict=True, validate=validate.Range(min=0, max=1024 ** 3),
                                    metadata={"description": "Max bytes per text type (0 = all)"})
    notifyHeaders = fields.List(fields.String(validate=validate.Length(max=256)),
                                metadata={"description": "Headers in messageNew; ['*'] = all"})
    webhookSecret = fields.String(allow_none=True, validate=validate.Length(max=1024),
                                  load_only=True,
                                  metadata={"description": "HMAC-SHA256 key for X-IMAPAPI-Signature "
                                                           "(write-only); null or '' removes it"})
    authServer = fields.String(
        allow_none=True, validate=_url_or_empty,
        metadata={"description": "Credentials server for useAuthServer accounts, called as "
                                 "GET <url>?account=<id>&proto=imap|smtp; null or '' removes it"})
    logs = fields.Nested(LogsSchema, metadata={"description": "IMAP protocol logging"})


class SettingsViewSchema(ma.Schema):
    eventTypes = fields.List(fields.String())
    webhooks = fields.String(allow_none=True)
    webhookEvents = fields.List(fields.String(), allow_none=True)
    notifyText = fields.Boolean(allow_none=True)
    notifyTextSize = fields.Integer(allow_none=True)
    notifyHeaders = fields.List(fields.String(), allow_none=True)
    webhookSecret = fields.Boolean(metadata={"description": "Whether a secret is set"})
    authServer = fields.String(allow_none=True)
    logs = fields.Dict(metadata={"description": "{all, accounts, maxLogLines}"})


class SettingsUpdatedSchema(ma.Schema):
    updated = fields.List(fields.String())
