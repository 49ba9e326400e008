"""Schemas for the change feed."""
from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate

from imapapi.schemas import Strict

_U64 = 2 ** 64 - 1
_CURSOR_ERROR = "Must be a cursor returned by this endpoint (or 0)"


def _cursor(value: str) -> None:
    """A Redis stream id: two unsigned 64-bit numbers, below the largest id (anything else made
    XRANGE fail: a 500)."""
    if value == "0":
        return
    first, sep, second = value.partition("-")
    if not (sep and first.isascii() and first.isdigit() and second.isascii() and second.isdigit()):
        raise ma.ValidationError(_CURSOR_ERROR)
    ms, seq = int(first), int(second)
    if ms > _U64 or seq > _U64 or (ms, seq) == (_U64, _U64):
        raise ma.ValidationError(_CURSOR_ERROR)


class ChangesQuerySchema(Strict):
    cursor = fields.String(validate=[validate.Length(max=41), _cursor],
                           metadata={"description": "Return events after this one; omit or 0 for "
                                                    "the oldest kept"})
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))


class ChangesSchema(ma.Schema):
    account = fields.String()
    cursor = fields.String(metadata={"description": "Pass as ?cursor= to continue"})
    hasMore = fields.Boolean()
    events = fields.List(fields.Dict(), metadata={
        "description": "Event envelopes {id, account, path, specialUse?, event, date, data, cursor}"})
