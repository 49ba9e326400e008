"""Schemas of POST /v1/account/{account}/search: query paging and the search criteria."""
from __future__ import annotations

import re

import marshmallow as ma
from marshmallow import fields, validate

from app.messages.schemas import MessagesQuerySchema
from imapapi.schemas import Strict

_SET = re.compile(r"^(\d+|\*)(:(\d+|\*))?(,(\d+|\*)(:(\d+|\*))?)*$")
GIB = 1024 ** 3


class SearchQuerySchema(MessagesQuerySchema):
    """path (required), page (0-based), pageSize 1..1000."""


def _text():
    return fields.String(validate=validate.Length(max=256))


class CriteriaSchema(Strict):
    seq = fields.String(validate=validate.Regexp(_SET, error="Must be a message set like 1:10,15"))
    uid = fields.String(validate=validate.Regexp(_SET, error="Must be a UID set like 1:10,15"))
    answered = fields.Boolean()
    deleted = fields.Boolean()
    draft = fields.Boolean()
    unseen = fields.Boolean()
    flagged = fields.Boolean()
    seen = fields.Boolean()
    from_ = fields.String(data_key="from", validate=validate.Length(max=256))
    to = _text()
    cc = _text()
    bcc = _text()
    body = _text()
    text = _text()
    subject = _text()
    larger = fields.Integer(validate=validate.Range(0, GIB))
    smaller = fields.Integer(validate=validate.Range(0, GIB))
    modseq = fields.Integer(validate=validate.Range(min=0))
    before = fields.Date()
    since = fields.Date()
    sentBefore = fields.Date()
    sentSince = fields.Date()
    emailId = _text()
    threadId = _text()
    header = fields.Dict(keys=fields.String(validate=validate.Regexp(r"^[!-9;-~]+$")),
                         values=fields.Raw())

    @ma.post_load
    def _wire(self, data, **_):
        if "from_" in data:
            data["from"] = data.pop("from_")
        for key in ("before", "since", "sentBefore", "sentSince"):
            if key in data:
                data[key] = data[key].isoformat()
        return data


class SearchSchema(Strict):
    search = fields.Nested(CriteriaSchema, required=True)
