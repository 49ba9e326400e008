"""Schemas of folder create / rename / delete."""
from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate

from imapapi.schemas import Strict

Segment = fields.String(validate=validate.Length(min=1, max=256))


class CreateSchema(Strict):
    path = fields.List(Segment, required=True, validate=validate.Length(min=1, max=32), metadata={
        "description": "Folder names from the top: ['Parent', 'Child']"})


class RenameSchema(Strict):
    path = fields.String(required=True, validate=validate.Length(min=1, max=1024),
                         metadata={"description": "Current full path"})
    newPath = fields.List(Segment, required=True, validate=validate.Length(min=1, max=32),
                          metadata={"description": "New folder names from the top"})


class PathQuerySchema(ma.Schema):
    path = fields.String(required=True, validate=validate.Length(min=1, max=1024))
