"""Schemas of /v1/logs: the download is plain text (one JSON object per line)."""
from __future__ import annotations

import marshmallow as ma


class LogLineSchema(ma.Schema):
    """One line of the download (documentation only)."""

    t = ma.fields.Integer(metadata={"description": "epoch milliseconds"})
    cid = ma.fields.String(metadata={"description": "connection id"})
    src = ma.fields.String(metadata={"description": "c: client (sent), s: server (received)"})
    msg = ma.fields.String(metadata={"description": "the protocol line, credentials redacted"})
