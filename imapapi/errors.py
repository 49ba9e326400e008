"""The error family shared by API, tasks and sidecar; each maps to one HTTP status and JSON body.

Errors cross process boundaries as dicts ({status, code, message, ...extra}) and are rebuilt
with `from_dict`, so the API answers with the same status/code the sidecar or task decided.
"""
from __future__ import annotations

from http import HTTPStatus

STATE_MESSAGES = {
    "init": "Requested account is not yet initialized",
    "connecting": "Requested account is not yet connected",
    "authenticationError": "Requested account can not be authenticated",
    "connectError": "Can not establish server connection for requested account",
    # the sidecar holding the account stopped answering; another replica takes it over
    "handover": "Requested account is moving to another sidecar, try again in a few seconds",
}


class ApiError(Exception):
    """Base: an outcome the user sees as a JSON error with an HTTP status."""

    status = 500
    code = "InternalError"
    default_message = "An internal server error occurred"

    def __init__(self, message: str | None = None, *, code: str | None = None,
                 status: int | None = None, **extra):
        self.message = message or self.default_message
        if code:
            self.code = code
        if status:
            self.status = status
        self.extra = {k: v for k, v in extra.items() if v is not None}
        super().__init__(self.message)

    def to_dict(self) -> dict:
        return {"status": self.status, "code": self.code, "message": self.message, **self.extra}

    def body(self) -> dict:
        """The HTTP JSON body: {statusCode, error, message, code, ...extra}."""
        return {
            "statusCode": self.status,
            "error": HTTPStatus(self.status).phrase,
            "message": self.message,
            "code": self.code,
            **self.extra,
        }


class BadRequest(ApiError):
    status, code, default_message = 400, "BadRequest", "Invalid input"


class NotFound(ApiError):
    status, code, default_message = 404, "NotFound", "Requested resource was not found"


class AccountNotFound(NotFound):
    code, default_message = "AccountNotFound", "Account record was not found for requested ID"


class MailboxNotFound(NotFound):
    code, default_message = "MailboxNotFound", "Mailbox record was not found"


class MessageNotFound(NotFound):
    code, default_message = "MessageNotFound", "Requested message was not found"


class Conflict(ApiError):
    status, code, default_message = 409, "Conflict", "Conflict"


class UpstreamError(ApiError):
    """The IMAP/SMTP server answered with an error (502)."""

    status, code, default_message = 502, "UpstreamError", "Mail server returned an error"


class Unavailable(ApiError):
    """The account's connection is not usable right now (503)."""

    status, code, default_message = 503, "IMAPUnavailable", "IMAP connection temporarily not available"


class NotConnected(Unavailable):
    code = "NotConnected"

    def __init__(self, state: str, **extra):
        message = STATE_MESSAGES.get(state, "Requested account currently not available")
        super().__init__(message, state=state, **extra)


class GatewayTimeout(ApiError):
    status, code, default_message = 504, "Timeout", "Timeout waiting for command response"


_BY_CODE = {cls.code: cls for cls in (
    BadRequest, NotFound, AccountNotFound, MailboxNotFound, MessageNotFound, Conflict,
    UpstreamError, Unavailable, GatewayTimeout,
)}


def from_dict(data: dict) -> ApiError:
    """Rebuild an error sent over the wire (unknown codes keep their status)."""
    data = dict(data)
    status = int(data.pop("status", 500))
    code = data.pop("code", "InternalError")
    message = data.pop("message", None)
    if code == "NotConnected":
        return NotConnected(data.pop("state", "disconnected"), **data)
    cls = _BY_CODE.get(code, ApiError)
    return cls(message, code=code, status=status, **data)
