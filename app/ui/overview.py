"""Overview page: accounts per state, the last hour's events and deliveries, queues, sidecars."""
from __future__ import annotations

import os
import time

from imapapi import keys, queues, rpc
from imapapi.settings import get_redis, get_settings

from .common import bp, page

def queue_depths(redis) -> dict[str, int]:
    return queues.depths(redis, queues.names(get_settings().worker_queues))


def sidecars(redis, now: float) -> list[dict]:
    """Sidecar replicas with heartbeat age and how many accounts each holds."""
    held: dict[str, int] = {}
    for sid in redis.hvals(keys.OWNERS):
        sid = sid.decode()
        held[sid] = held.get(sid, 0) + 1
    out = []
    for sid, beat in redis.zrange(keys.SIDECARS, 0, -1, withscores=True):
        sid = sid.decode()
        age = max(0.0, now - beat)
        out.append({"id": sid, "age": age, "live": age <= rpc.HEARTBEAT_STALE,
                    "accounts": held.get(sid, 0)})
    return out


def overview_data(redis) -> dict:
    from app.stats.routes import collect

    now = time.time()
    data = collect(redis, 3600)
    counters = data["counters"]
    events = {k.split(":", 1)[1]: v for k, v in counters.items() if k.startswith("events:")}
    return {
        "stats": data, "events": events, "events_total": sum(events.values()),
        "webhooks": {"ok": counters.get("webhooks:success", 0),
                     "failed": counters.get("webhooks:fail", 0),
                     "dead": counters.get("webhooks:dead", 0)},
        "dead_letters": redis.llen(keys.DEAD_LETTERS),
        "queues": queue_depths(redis),
        "ages": queues.oldest_ages(redis, queues.names(get_settings().worker_queues), now),
        "outbox": {"total": redis.zcard(keys.OUTBOX), "due": redis.zcard(keys.OUTBOX_DUE)},
        "sidecars": sidecars(redis, now),
        "flower": os.environ.get("FLOWER_URL"),
    }


@bp.get("/")
def overview():
    return page("ui_overview.html", title="Overview", **overview_data(get_redis()))
