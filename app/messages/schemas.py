"""Schemas of the messages resource: listing and search queries, criteria, details, update, delete,
upload, text; and the documented shapes of what the sidecar answers."""
from __future__ import annotations

import re

import marshmallow as ma
from marshmallow import fields, validate

from app.api import PageSchema, PagingQuerySchema, Passthrough, ResultSchema
from app.submit.schemas import AddressSchema, AttachmentSchema, ReferenceSchema, base64_content
from imapapi.schemas import Strict

MAX_BYTES = 1024 ** 3
GIB = 1024 ** 3
# an IMAP flag: optional "\" then atom characters (no space, parens, quotes, wildcards, "]")
FLAG = re.compile(r'^\\?[^\x00-\x20\x7f(){%*"\\\]]+$')
_SET = re.compile(r"^(\d+|\*)(:(\d+|\*))?(,(\d+|\*)(:(\d+|\*))?)*$")


def _flag(value: str):
    if not FLAG.match(value):
        raise ma.ValidationError(f"Not a valid IMAP flag: {value!r}")


Flag = fields.String(validate=[validate.Length(min=1, max=128), _flag])


class TextTypeField(fields.String):
    """plain | html | * (any case)."""

    def _deserialize(self, value, attr, data, **kwargs):
        value = super()._deserialize(value, attr, data, **kwargs).lower()
        if value not in ("plain", "html", "*"):
            raise ma.ValidationError("Must be one of: plain, html, *")
        return value


# -- requests: listing and search ----------------------------------------------------------------

class MessagesQuerySchema(PagingQuerySchema):
    """path (required); a page past the end gives the last page."""

    path = fields.String(required=True, validate=validate.Length(min=1, max=1024),
                         metadata={"description": "Folder path; `inbox` in any case means INBOX"})


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


# -- requests: one message -----------------------------------------------------------------------

class MessageQuerySchema(ma.Schema):
    textType = TextTypeField(metadata={"description": "Include text: plain, html or * (all)"})
    maxBytes = fields.Integer(load_default=0, validate=validate.Range(0, MAX_BYTES), metadata={
        "description": "Cap per text type, in bytes of UTF-8 output (0: no cap)"})


class TextQuerySchema(ma.Schema):
    textType = TextTypeField(load_default="*", metadata={"description": "plain, html or * (all)"})
    maxBytes = fields.Integer(load_default=0, validate=validate.Range(0, MAX_BYTES), metadata={
        "description": "Cap per text type, in bytes of UTF-8 output (0: no cap)"})


class FlagsSchema(Strict):
    add = fields.List(Flag)
    delete = fields.List(Flag)
    set = fields.List(Flag, metadata={"description": "Replaces all flags; add/delete are ignored"})


class UpdateSchema(Strict):
    flags = fields.Nested(FlagsSchema)
    path = fields.String(validate=validate.Length(min=1, max=1024),
                         metadata={"description": "Move the message to this folder"})


class MoveSchema(Strict):
    path = fields.String(required=True, validate=validate.Length(min=1, max=1024))


class DeleteQuerySchema(ma.Schema):
    force = fields.Boolean(load_default=False, metadata={
        "description": "Expunge at once instead of moving to Trash"})


class UploadSchema(Strict):
    path = fields.String(required=True, validate=validate.Length(min=1, max=1024))
    flags = fields.List(Flag, load_default=list)
    raw = fields.String(validate=base64_content, metadata={
        "description": "The whole RFC 822 message, base64; or give the fields below"})
    from_ = fields.Nested(AddressSchema, data_key="from")
    to = fields.List(fields.Nested(AddressSchema))
    cc = fields.List(fields.Nested(AddressSchema))
    subject = fields.String(validate=validate.Length(max=1024))
    text = fields.String()
    html = fields.String()
    attachments = fields.List(fields.Nested(AttachmentSchema))
    messageId = fields.String(validate=validate.Length(max=998))
    headers = fields.Dict(keys=fields.String(), values=fields.String())
    reference = fields.Nested(ReferenceSchema, metadata={
        "description": "Reply to / forward a stored message: In-Reply-To, References and the "
                       "subject as when sending (the referenced message is not flagged)"})

    @ma.validates_schema
    def _raw_or_fields(self, data, **_):
        if "raw" in data:
            extra = [k for k in data if k not in ("path", "flags", "raw")]
            if extra:
                raise ma.ValidationError("Give either raw or message fields, not both", "raw")
        elif "from_" not in data:
            raise ma.ValidationError("Missing data for required field (or give raw)", "from")

    @ma.post_load
    def _wire_names(self, data, **_):
        if "from_" in data:
            data["from"] = data.pop("from_")
        return data


# -- responses (built by the sidecar; see ResultSchema) ------------------------------------------

class AttachmentEntrySchema(ma.Schema):
    id = fields.String(metadata={"description": "GET /v1/account/{account}/attachment/{id}"})
    contentType = fields.String()
    encodedSize = fields.Integer()
    filename = fields.Raw(metadata={"description": "File name, or false when it has none"})
    embedded = fields.Boolean()
    inline = fields.Boolean()
    contentId = fields.String()


class TextRefSchema(ma.Schema):
    id = fields.String(metadata={"description": "GET /v1/account/{account}/text/{id}"})
    encodedSize = fields.Dict(keys=fields.String(), values=fields.Integer(),
                              metadata={"description": "Encoded bytes per text subtype"})


class MessageEntrySchema(ma.Schema):
    """One listing entry; flagged/answered/draft only when set."""

    id = fields.String(metadata={"description": "Opaque message id (base64url)"})
    uid = fields.Integer()
    date = fields.String(allow_none=True)
    size = fields.Integer(allow_none=True)
    flags = fields.List(fields.String())
    unseen = fields.Boolean()
    flagged = fields.Boolean()
    answered = fields.Boolean()
    draft = fields.Boolean()
    subject = fields.String(allow_none=True)
    messageId = fields.String(allow_none=True)
    inReplyTo = fields.String(allow_none=True)
    emailId = fields.String(metadata={"description": "Same for the message in every folder and event "
                                      "(a move keeps it): RFC 8474 EMAILID, else a hash of Dovecot's "
                                      "X-GUID; absent when the server offers neither"})
    threadId = fields.String(metadata={"description": "RFC 8474 THREADID (servers with OBJECTID)"})
    from_ = fields.Nested(AddressSchema, data_key="from", allow_none=True)
    to = fields.List(fields.Nested(AddressSchema))
    cc = fields.List(fields.Nested(AddressSchema))
    attachments = fields.List(fields.Nested(AttachmentEntrySchema))
    text = fields.Nested(TextRefSchema)


class MessageListSchema(PageSchema):
    messages = fields.List(Passthrough(MessageEntrySchema), required=True)


class TextSchema(ResultSchema):
    plain = fields.String()
    html = fields.String()
    visible = fields.String(metadata={"description": "Message details only: a reply's plain "
                                                     "text without the quoted original"})
    hasMore = fields.Boolean(metadata={"description": "Text was cut at maxBytes"})


class DetailsTextSchema(TextRefSchema, TextSchema):
    """The text reference, plus the text itself when textType was given."""


class MessageDetailsSchema(MessageEntrySchema, ResultSchema):
    sender = fields.Nested(AddressSchema)
    replyTo = fields.Nested(AddressSchema)
    bcc = fields.List(fields.Nested(AddressSchema))
    headers = fields.Dict(keys=fields.String(), values=fields.List(fields.String()),
                          metadata={"description": "Lower-case name -> decoded values"})
    text = fields.Nested(DetailsTextSchema)


class FlagsChangedSchema(ma.Schema):
    set = fields.Boolean()
    add = fields.Boolean()
    delete = fields.Boolean()


class MessageUpdatedSchema(ResultSchema):
    flags = fields.Nested(FlagsChangedSchema, metadata={"description": "The changes applied"})
    path = fields.String(metadata={"description": "Folder the message is in now"})
    id = fields.String(metadata={"description": "New id after a move (when COPYUID is known)"})
    uid = fields.Integer()
    expunged = fields.Boolean(metadata={"description": "false: moved by copy, the original is "
                                                       "only flagged \\Deleted (no UIDPLUS)"})


class MovedSchema(ma.Schema):
    destination = fields.String()
    messageId = fields.String(metadata={"description": "Id in the Trash folder"})


class MessageDeletedSchema(ResultSchema):
    deleted = fields.Boolean()
    moved = fields.Nested(MovedSchema, metadata={"description": "Set when moved to Trash"})
    expunged = fields.Boolean(metadata={"description": "false: only flagged \\Deleted"})


class UploadResultSchema(ma.Schema):
    id = fields.String()
    path = fields.String()
    uid = fields.Integer()
    uidValidity = fields.String()
