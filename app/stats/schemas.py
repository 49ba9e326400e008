"""Schemas of /v1/stats: the window in the query, counters and connection states in the answer."""
from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate

from app.api import DictSchema


class StatsQuerySchema(ma.Schema):
    seconds = fields.Integer(load_default=3600, validate=validate.Range(0, 604800),
                             metadata={"description": "Window in seconds (0, empty or unset: 3600)"})

    @ma.pre_load
    def empty_is_default(self, data, **_kwargs):
        # the original treats `?seconds=` as the default window
        if data.get("seconds") == "":
            data = {k: v for k, v in data.items() if k != "seconds"}
        return data


class StatsSchema(DictSchema):
    version = fields.String()
    license = fields.String()
    accounts = fields.Integer(metadata={"description": "Registered accounts"})
    counters = fields.Dict(keys=fields.String(), values=fields.Integer(),
                           metadata={"description": "Counters with data in the window, e.g. "
                                                    "events:messageNew, webhooks:success"})
    connections = fields.Dict(keys=fields.String(), values=fields.Integer(),
                              metadata={"description": "Accounts per connection state"})
