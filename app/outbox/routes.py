"""Outbox routes: GET /v1/outbox, GET/DELETE /v1/outbox/{queueId}."""
from __future__ import annotations

from flask.views import MethodView

from app.api import Blueprint
from imapapi import errors, outbox
from imapapi.settings import get_redis

from .schemas import OutboxDeletedSchema, OutboxItemSchema, OutboxListSchema, OutboxQuerySchema

blp = Blueprint("outbox", __name__, description="Queued outgoing messages")


def _not_found() -> errors.NotFound:
    return errors.NotFound("Queued message was not found", code="QueueItemNotFound")


@blp.route("/v1/outbox")
class OutboxCollection(MethodView):
    @blp.arguments(OutboxQuerySchema, location="query")
    @blp.response(200, OutboxListSchema)
    def get(self, query):
        """Outgoing messages, oldest first (finished ones stay listed for 7 days)"""
        return outbox.list_page(get_redis(), query["page"], query["pageSize"],
                                account=query.get("account"), state=query.get("state"))


@blp.route("/v1/outbox/<queue_id>")
class OutboxItem(MethodView):
    @blp.response(200, OutboxItemSchema)
    def get(self, queue_id):
        """Status of one outgoing message"""
        item = outbox.get(get_redis(), queue_id)
        if item is None:
            raise _not_found()
        return outbox.public(item)

    @blp.response(200, OutboxDeletedSchema)
    def delete(self, queue_id):
        """Cancel a message that is still queued or waiting for a retry

        409 when it is being sent right now or has already finished (sent, failed, cancelled).
        """
        result = outbox.cancel(get_redis(), queue_id)
        if result == "gone":
            raise _not_found()
        if result != "ok":
            raise errors.Conflict(f"Message can not be cancelled in state {result}",
                                  code="NotCancellable", state=result)
        return {"deleted": True, "queueId": queue_id}
