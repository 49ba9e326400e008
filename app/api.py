"""The flask-smorest Api (one JSON error shape, 400 for validation errors) and what every resource shares."""
from __future__ import annotations

from http import HTTPStatus

import marshmallow as ma
from apispec import BasePlugin
from flask_smorest import Api as _Api
from flask_smorest import Blueprint as _Blueprint
from webargs.flaskparser import FlaskParser
from webargs.multidictproxy import MultiDictProxy

from imapapi import errors, ids
from imapapi.errors import ApiError
from imapapi.schemas import field_errors

# `@requires("metrics"|"ui"|"*")` on a view changes the scope it needs (default: api); auth
# itself is enforced for every route in app/security.py and documented by AuthDocs below.
from .security import requires  # noqa: E402,F401


def check_account_id(account: str) -> str:
    """400 for an id the original would reject (empty or longer than 256 characters)."""
    if not account or len(account) > 256:
        raise errors.BadRequest("Invalid account ID", code="InvalidAccountId")
    return account


def check_message_id(message: str) -> str:
    """404 JSON for a malformed message id without a round trip to the sidecar."""
    if len(message) > 256:
        ids.decode_message_id("")   # raises the same MessageNotFound as any bad id
    ids.decode_message_id(message)
    return message


class ErrorSchema(ma.Schema):
    """Every error body: {statusCode, error, message, code?, fields?} (+ e.g. state, path)."""

    statusCode = ma.fields.Integer(metadata={"description": "HTTP status"})
    error = ma.fields.String(metadata={"description": "HTTP reason phrase"})
    message = ma.fields.String()
    code = ma.fields.String(metadata={"description": "Machine-readable error code"})
    fields = ma.fields.List(ma.fields.Dict(), metadata={"description": "[{key, message}] per bad field"})


class ResultSchema(ma.Schema):
    """Documents a body the sidecar builds (the shape lives in its op): dumped unchanged, so a key
    the sidecar adds is never dropped by a schema that has not caught up yet."""

    def dump(self, obj, *, many=None):
        return obj


class Passthrough(ma.fields.Nested):
    """A nested shape the sidecar builds (list entries): its schema reaches the OpenAPI document,
    the value is serialized as it is, for the reason ResultSchema gives."""

    def _serialize(self, nested_obj, attr, obj, **kwargs):
        return nested_obj


class DictSchema(ma.Schema):
    """Response schema over plain dicts: a missing key stays missing (never a dict method such as
    `dict.copy`, which marshmallow's attribute fallback would find)."""

    def get_attribute(self, obj, attr, default):
        if isinstance(obj, dict):
            return obj.get(attr, default)
        return super().get_attribute(obj, attr, default)


MAX_PAGE = 1048576   # page * pageSize must stay far inside Redis' and IMAP's integer ranges


class PagingQuerySchema(ma.Schema):
    """`page` and `pageSize` of every paged listing's query string."""

    page = ma.fields.Integer(load_default=0, validate=ma.validate.Range(0, MAX_PAGE),
                             metadata={"description": "0-based page number"})
    pageSize = ma.fields.Integer(load_default=20, validate=ma.validate.Range(1, 1000))


class PageSchema(DictSchema):
    """What every paged listing has; subclasses add their list field."""

    total = ma.fields.Integer()
    page = ma.fields.Integer(metadata={"description": "0-based page number"})
    pages = ma.fields.Integer()


class _Query(MultiDictProxy):
    """Query args: a missing key is looked up without werkzeug building a BadRequestKeyError
    (an HTTPException) inside MultiDict.get, once per absent optional field per request."""

    def __getitem__(self, key):
        if key not in self.data:
            return ma.missing
        return super().__getitem__(key)


class Parser(FlaskParser):
    DEFAULT_VALIDATION_STATUS = 400

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._schemas: dict = {}

    def _get_schema(self, argmap, req):
        # flask-smorest hands the schema class: one instance per class, not one per request
        # (its field deepcopy was ~2 % of a read's API CPU); our schemas keep no state on self.
        if isinstance(argmap, type) and issubclass(argmap, ma.Schema):
            schema = self._schemas.get(argmap)
            if schema is None:
                schema = self._schemas.setdefault(argmap, argmap())
            return schema
        return super()._get_schema(argmap, req)

    def load_querystring(self, req, schema):
        return self._makeproxy(req.args, schema, cls=_Query)


LOCATIONS = ("json", "query", "form", "headers", "path", "view_args", "querystring", "files",
             "cookies", "json_or_form")


def flatten_errors(messages, prefix: str = "") -> list[dict]:
    """webargs' {location: {field: [msgs]}} -> [{"key": "imap.port", "message": "..."}].

    Only the outermost level is a location (a field may itself be called `path`)."""
    if not prefix and isinstance(messages, dict) and messages and set(messages) <= set(LOCATIONS):
        out = []
        for value in messages.values():
            out.extend(field_errors(value))
        return out
    return field_errors(messages, prefix)


class AuthDocs(BasePlugin):
    """Every operation documents the token it needs and the 401/403 answers (enforced for all
    routes in app/security.py, so the document and the behaviour cannot drift apart)."""

    def operation_helper(self, path=None, operations=None, **kwargs):
        error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
        for operation in (operations or {}).values():
            operation.setdefault("security", [{"bearerAuth": []}, {"accessToken": []}])
            responses = operation.setdefault("responses", {})
            responses.setdefault("401", {"description": "No valid token (when tokens are required)",
                                         "content": error})
            responses.setdefault("403", {"description": "The token lacks the scope, or is bound to "
                                                        "another account", "content": error})


class Api(_Api):
    ERROR_SCHEMA = ErrorSchema
    ARGUMENTS_PARSER = Parser()

    def _init_spec(self, *, extra_plugins=None, **kwargs):
        super()._init_spec(extra_plugins=[*(extra_plugins or ()), AuthDocs()], **kwargs)
        self.spec.components.security_scheme(
            "bearerAuth", {"type": "http", "scheme": "bearer",
                           "description": "imap-api tokens create --scope=api"})
        self.spec.components.security_scheme(
            "accessToken", {"type": "apiKey", "in": "query", "name": "access_token",
                            "description": "The same token in the query (GET, for download links)"})

    def _register_error_handlers(self):
        super()._register_error_handlers()
        self._app.register_error_handler(ApiError, self.handle_api_error)

    def handle_api_error(self, error: ApiError):
        return error.body(), error.status

    def handle_http_exception(self, error):
        data = getattr(error, "data", None) or {}
        status = error.code or 500
        payload = {"statusCode": status, "error": HTTPStatus(status).phrase,
                   "message": data.get("message") or error.description or HTTPStatus(status).phrase}
        if status >= 500 and status not in (502, 503, 504):
            payload["message"] = "An internal server error occurred"
        if status == 404 and not data:
            payload["message"] = "Requested page not found"
        errs = data.get("errors") or data.get("messages")
        if errs:
            payload["message"] = "Invalid input"
            payload["code"] = "InvalidInput"
            payload["fields"] = flatten_errors(errs)
        for key, value in data.items():
            if key not in ("message", "errors", "messages", "headers", "exc", "schema"):
                payload[key] = value
        return payload, status, data.get("headers", {})


class Blueprint(_Blueprint):
    ARGUMENTS_PARSER = Parser()
