"""GET /health: 200 when Redis answers and at least one sidecar heartbeat is fresh, else 503."""
from __future__ import annotations

import time

from flask import Flask

from imapapi import rpc
from imapapi.settings import get_redis


def check() -> tuple[dict, int]:
    body = {"redis": False, "sidecars": 0}
    try:
        redis = get_redis()
        redis.ping()
        body["redis"] = True
        body["sidecars"] = len(rpc.live_sidecars(redis, time.time()))
    except Exception as exc:   # any Redis failure is "not healthy", never a 500
        body["error"] = str(exc) or exc.__class__.__name__
    healthy = body["redis"] and body["sidecars"] > 0
    body["status"] = "ok" if healthy else "unavailable"
    if body["redis"] and not body["sidecars"]:
        body["error"] = "no sidecar heartbeat in the last %d s" % rpc.HEARTBEAT_STALE
    return body, 200 if healthy else 503


def init_app(app: Flask) -> None:
    @app.get("/health")
    def health():
        body, status = check()
        return body, status, {"Cache-Control": "no-store"}
