"""Schemas for the change feed."""
from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate

from imapapi.schemas import Strict


class ChangesQuerySchema(Strict):
    cursor = fields.String(validate=validate.Regexp(r"^(0|\d+-\d+)$", error="Must be a cursor "
                                                    "returned by this endpoint (or 0)"),
                           metadata={"description": "Return events after this one; omit or 0 for "
                                                    "the oldest kept"})
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))


class ChangesSchema(ma.Schema):
    account = fields.String()
    cursor = fields.String(metadata={"description": "Pass as ?cursor= to continue"})
    hasMore = fields.Boolean()
    events = fields.List(fields.Dict(), metadata={
        "description": "Event envelopes {id, account, path, specialUse?, event, date, data, cursor}"})
