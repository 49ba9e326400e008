"""Route /v1/stats: counters of the last `seconds` (per-minute buckets) and accounts per state."""
from __future__ import annotations

from flask.views import MethodView

from app import metrics
from app.api import Blueprint
from imapapi import __version__, keys, stats
from imapapi.accounts import STATES
from imapapi.settings import get_redis

from .schemas import StatsQuerySchema, StatsSchema

blp = Blueprint("stats", __name__, description="Dashboard counters")
LICENSE = "MIT"   # pyproject.toml; the original reported AGPL-3.0-or-later


def collect(redis, seconds: int = 3600) -> dict:
    """The /v1/stats body; the web UI's overview calls this too."""
    if metrics.STATS is not None:
        metrics.STATS.flush()   # this process's buffered apiCall counts
    connections = dict.fromkeys(STATES, 0)
    connections.update(stats.state_counts(redis))
    return {"version": __version__, "license": LICENSE, "accounts": redis.scard(keys.ACCOUNTS),
            "counters": stats.window(redis, seconds or 3600), "connections": connections}


@blp.route("/v1/stats")
class Stats(MethodView):
    @blp.arguments(StatsQuerySchema, location="query")
    @blp.response(200, StatsSchema)
    def get(self, query):
        """Counters of the last `seconds` (events:<name>, webhooks:success|fail, apiCall:success|fail)
        and accounts per connection state"""
        return collect(get_redis(), query["seconds"])
