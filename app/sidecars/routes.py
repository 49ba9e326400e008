"""Route /v1/sidecars: the sidecar replicas, their account leases and renewal lag."""
from __future__ import annotations

import json

from flask.views import MethodView

from app.api import Blueprint
from imapapi import keys, leases, rpc
from imapapi.clock import iso
from imapapi.settings import get_redis

from .schemas import SidecarsSchema

blp = Blueprint("sidecars", __name__, description="Sidecar replicas")


def collect(redis) -> dict:
    """Heartbeats (keys.SIDECARS), replica info (keys.SIDECARS_INFO) and the lease table."""
    counts, expired, now_ms = leases.holders(redis)
    now = now_ms / 1000.0
    beats = {m.decode(): score for m, score in redis.zrange(keys.SIDECARS, 0, -1, withscores=True)}
    infos = {k.decode(): v for k, v in redis.hgetall(keys.SIDECARS_INFO).items()}
    out = []
    for sid in sorted(set(beats) | set(counts)):
        try:
            info = json.loads(infos.get(sid) or "{}")
        except ValueError:
            info = {}
        beat = beats.get(sid)
        entry = {"id": sid, "accounts": counts.get(sid, 0),
                 "alive": beat is not None and beat >= now - rpc.HEARTBEAT_SUSPECT}
        if beat is not None:
            entry["heartbeatAge"] = round(max(0.0, now - beat), 3)
        for name in ("host", "pid", "connected", "connecting", "renewMs", "leaseTtl"):
            if name in info:
                entry[name] = info[name]
        if info.get("started"):
            entry["started"] = iso(info["started"])
        if info.get("renewedAt"):
            entry["renewLag"] = round(max(0.0, now - info["renewedAt"]), 3)
        if "fenced" in info:
            entry["fencedWrites"] = info["fenced"]
        out.append(entry)
    return {"sidecars": out, "accounts": redis.scard(keys.ACCOUNTS),
            "leased": sum(counts.values()), "expired": expired}


@blp.route("/v1/sidecars")
class Sidecars(MethodView):
    @blp.response(200, SidecarsSchema)
    def get(self):
        """Sidecar replicas: liveness, account leases held, connections, lease renewal lag

        A replica that stopped beating shows `alive: false` until its entry is cleaned up
        (30 s); its accounts move to the others when their leases expire (`expired`).
        """
        return collect(get_redis())
