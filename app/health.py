"""GET /health (Redis + a fresh sidecar heartbeat), /health/ready (Redis), /health/live (process)."""
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

    # Probes for orchestrators: readiness must not hang on the sidecars (an API pod that can
    # reach Redis can take requests and answer 503 per account), liveness touches nothing.
    @app.get("/health/ready")
    def ready():
        try:
            get_redis().ping()
        except Exception as exc:
            return ({"status": "unavailable", "redis": False,
                     "error": str(exc) or exc.__class__.__name__}, 503, {"Cache-Control": "no-store"})
        return {"status": "ok", "redis": True}, 200, {"Cache-Control": "no-store"}

    @app.get("/health/live")
    def live():
        return {"status": "ok"}, 200, {"Cache-Control": "no-store"}
