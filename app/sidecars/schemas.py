"""Schemas of /v1/sidecars: one entry per replica, plus the lease totals."""
from __future__ import annotations

from marshmallow import fields

from app.api import DictSchema


class SidecarSchema(DictSchema):
    id = fields.String(metadata={"description": "Replica id (sidecar.id)"})
    host = fields.String()
    pid = fields.Integer()
    started = fields.String(metadata={"description": "When the replica started (ISO 8601)"})
    alive = fields.Boolean(metadata={"description": "Heartbeat within the last 4 s; false: dead "
                                     "or frozen, its accounts are being taken over"})
    heartbeatAge = fields.Float(metadata={"description": "Seconds since the last heartbeat"})
    accounts = fields.Integer(metadata={"description": "Unexpired account leases it holds"})
    connected = fields.Integer(metadata={"description": "Of those, accounts with a live "
                                         "connection (from its last heartbeat)"})
    connecting = fields.Integer(metadata={"description": "Connection setups queued or running"})
    renewLag = fields.Float(metadata={"description": "Seconds since its last completed lease "
                                      "renewal (healthy: below a third of leaseTtl)"})
    renewMs = fields.Float(metadata={"description": "Duration of that renewal round (ms)"})
    fencedWrites = fields.Integer(metadata={"description": "Writes refused because its lease "
                                            "had been taken over (since start)"})
    leaseTtl = fields.Float()


class SidecarsSchema(DictSchema):
    sidecars = fields.List(fields.Nested(SidecarSchema))
    accounts = fields.Integer(metadata={"description": "Registered accounts"})
    leased = fields.Integer(metadata={"description": "Accounts with an unexpired lease"})
    expired = fields.Integer(metadata={"description": "Leases run out and not yet taken over "
                                       "(a replica died or froze)"})
