"""The account payload schema, shared by the API (request validation) and the upsert task."""
from __future__ import annotations

import ipaddress
import json
import re
import uuid
from datetime import datetime, timezone

import marshmallow as ma
from marshmallow import fields, validate

from . import keys, vault
from .clock import iso as _iso
from .errors import ApiError

PAYLOAD_TTL = 300   # seconds a stashed payload waits for its task

_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def valid_host(value: str) -> bool:
    """A DNS hostname (RFC 1123 labels) or an IPv4/IPv6 literal."""
    if not isinstance(value, str) or not value or len(value) > 253:
        return False
    try:
        ipaddress.ip_address(value.strip("[]"))
        return True
    except ValueError:
        pass
    name = value[:-1] if value.endswith(".") else value
    if re.fullmatch(r"[0-9.]+", name):
        return False   # looks like a broken IPv4 address, not a name
    return all(_LABEL.match(label) for label in name.split("."))


def _check_host(value: str):
    if not valid_host(value):
        raise ma.ValidationError("Must be a valid hostname or IP address")


class IsoDate(fields.Field):
    """An ISO 8601 date/time, kept as a normalized UTC string ('now' means the current time)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str):
            raise ma.ValidationError("Must be an ISO 8601 date")
        if value.strip().lower() == "now":
            return _iso(datetime.now(timezone.utc))
        try:
            return _iso(datetime.fromisoformat(value.strip().replace("Z", "+00:00")))
        except ValueError:
            raise ma.ValidationError("Must be an ISO 8601 date") from None


class ConfigOrFalse(fields.Nested):
    """A nested settings object, or `false` meaning "not configured" (as the original accepts)."""

    def _deserialize(self, value, attr, data, partial=None, **kwargs):
        if value is False:
            return False
        return super()._deserialize(value, attr, data, partial=partial, **kwargs)


class Strict(ma.Schema):
    """Unknown keys are errors (the original rejects them, it does not strip them)."""

    class Meta:
        unknown = ma.RAISE


class AuthSchema(Strict):
    user = fields.String(required=True, validate=validate.Length(max=256))
    # `pass` is a Python keyword: data_key keeps the wire name
    password = fields.String(data_key="pass", validate=validate.Length(max=256))
    accessToken = fields.String(validate=validate.Length(max=4096))

    @ma.validates_schema
    def _one_secret(self, data, partial=None, **_):
        if partial:
            return
        if ("password" in data) == ("accessToken" in data):
            raise ma.ValidationError("Exactly one of pass or accessToken is required", "pass")

    @ma.post_load
    def _wire_names(self, data, **_):
        if "password" in data:
            data["pass"] = data.pop("password")
        return data


class TlsSchema(Strict):
    rejectUnauthorized = fields.Boolean()
    minVersion = fields.String(validate=validate.Length(max=256))


class SmtpSchema(Strict):
    host = fields.String(required=True, validate=[validate.Length(min=1, max=253), _check_host])
    port = fields.Integer(required=True, strict=True, validate=validate.Range(1, 65535))
    secure = fields.Boolean()
    auth = fields.Nested(AuthSchema)
    useAuthServer = fields.Boolean()
    tls = fields.Nested(TlsSchema)

    @ma.validates_schema
    def _auth_xor(self, data, partial=None, **_):
        if partial:
            return
        if "auth" in data and data.get("useAuthServer"):
            raise ma.ValidationError("Use either auth or useAuthServer, not both", "useAuthServer")
        if "auth" not in data and not data.get("useAuthServer"):
            raise ma.ValidationError("Missing data for required field.", "auth")


class ImapSchema(SmtpSchema):
    resyncDelay = fields.Integer(strict=True, validate=validate.Range(1, 86400 * 7))


class AccountSchema(Strict):
    """POST /v1/account body; also what the upsert task re-validates."""

    account = fields.String(required=True, validate=validate.Length(min=1, max=256))
    name = fields.String(required=True, validate=validate.Length(max=256))
    path = fields.String(validate=validate.Length(max=1024))
    copy = fields.Boolean()
    notifyFrom = IsoDate()
    imap = ConfigOrFalse(ImapSchema)
    smtp = ConfigOrFalse(SmtpSchema)
    webhooks = fields.String(validate=[validate.Length(max=2048),
                                       validate.URL(schemes={"http", "https"}, require_tld=False)],
                             allow_none=True)

    @ma.post_load
    def _blank_path(self, data, **_):
        if data.get("path") == "":
            del data["path"]   # "" means "not given" (all folders), as in the original
        return data


class AccountUpdateSchema(AccountSchema):
    """PUT /v1/account/{account}: every field optional, `account` not allowed."""

    class Meta:
        unknown = ma.RAISE
        exclude = ("account",)


def field_errors(messages, prefix: str = "") -> list[dict]:
    """marshmallow's nested messages -> [{"key": "imap.port", "message": "..."}]."""
    out = []
    if isinstance(messages, dict):
        for key, value in messages.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            out.extend(field_errors(value, name))
    elif isinstance(messages, list):
        for item in messages:
            if isinstance(item, (dict, list)):
                out.extend(field_errors(item, prefix))
            else:
                out.append({"key": prefix or "_schema", "message": str(item)})
    else:
        out.append({"key": prefix or "_schema", "message": str(messages)})
    return out


def invalid_input(messages) -> ApiError:
    """The 400 error the API gives for a failed validation, also usable from tasks."""
    return ApiError("Invalid input", status=400, code="InvalidInput", fields=field_errors(messages))


def load_account(data: dict, *, schema: type[ma.Schema] = AccountSchema, partial: bool = False) -> dict:
    """Validate a payload; raises invalid_input(...) (a 400 ApiError) naming each bad field."""
    if not isinstance(data, dict):
        raise invalid_input({"_schema": ["Invalid input type, expected an object"]})
    try:
        return schema(partial=partial).load(data)
    except ma.ValidationError as exc:
        raise invalid_input(exc.messages) from None



def stash_payload(redis, data: dict) -> str:
    """Keep a validated payload in Redis briefly; -> the ref the upsert task takes it by."""
    ref = uuid.uuid4().hex
    # it holds passwords: encrypted like the record it becomes (imapapi.vault)
    redis.set(keys.pending_payload(ref),
              vault.seal_blob(json.dumps(data), f"pending:{ref}"), ex=PAYLOAD_TTL)
    return ref


def take_payload(redis, ref: str) -> dict:
    """The stashed payload (read once); 400 if it expired or never existed."""
    raw = redis.getdel(keys.pending_payload(ref))
    if raw is None:
        raise ApiError("Account payload expired before it was processed; send it again",
                       status=400, code="PayloadExpired")
    return json.loads(vault.open_blob(raw.decode(), f"pending:{ref}"))
