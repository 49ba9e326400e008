"""Route /v1/account/{account}/changes: events from the account's stream after a cursor."""
from __future__ import annotations

import marshmallow as ma
from flask.views import MethodView

from app.api import Blueprint
from imapapi import errors, events, keys
from imapapi.settings import get_redis

from .schemas import ChangesQuerySchema, ChangesSchema

blp = Blueprint("changes", __name__, description="Replayable change feed")


@blp.route("/v1/account/<account>/changes")
class Changes(MethodView):
    @blp.arguments(ChangesQuerySchema, location="query", unknown=ma.RAISE)
    @blp.response(200, ChangesSchema)
    def get(self, args, account):
        """Events after `cursor`, oldest first, and the cursor to continue from

        The same events (same ids) the webhooks deliver; the feed keeps about the last 10,000
        events per account.
        """
        redis = get_redis()
        if not redis.exists(keys.account(account)):
            raise errors.AccountNotFound()
        limit = args["limit"]
        rows, cursor = events.read_events(redis, account, args.get("cursor"), count=limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        if more:
            cursor = rows[-1]["cursor"]
        return {"account": account, "cursor": cursor, "hasMore": more, "events": rows}
