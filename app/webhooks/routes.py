"""Routes /v1/webhooks/dead: events that ran out of retries, and re-sending one."""
from __future__ import annotations

import math

from flask.views import MethodView

from app.api import Blueprint
from imapapi import delivery, errors
from imapapi.settings import get_redis

from .schemas import DeadListSchema, DeadQuerySchema, ResentSchema, TestResultSchema

blp = Blueprint("webhooks", __name__, description="Webhook dead letters")


@blp.route("/v1/webhooks/dead")
class DeadLetters(MethodView):
    @blp.arguments(DeadQuerySchema, location="query")
    @blp.response(200, DeadListSchema)
    def get(self, args):
        """Webhook events whose delivery failed for over an hour, newest first"""
        page, size = args["page"], args["pageSize"]
        total, rows = delivery.list_dead(get_redis(), page * size, size)
        return {"total": total, "page": page, "pages": max(1, math.ceil(total / size)),
                "deadLetters": rows}


@blp.route("/v1/webhooks/test")
class TestWebhook(MethodView):
    @blp.response(200, TestResultSchema)
    def post(self):
        """POST a `test` event to the webhook URL now (no retries) and report the answer"""
        result = delivery.send_test(get_redis())
        return {**result, "ms": round(result["seconds"] * 1000, 1)}


@blp.route("/v1/webhooks/dead/<event>/resend")
class Resend(MethodView):
    @blp.response(202, ResentSchema)
    def post(self, event):
        """Queue a dead-lettered event for delivery again (a fresh hour of retries)"""
        if not delivery.resend_dead(get_redis(), event):
            raise errors.NotFound("No dead letter with this event id", code="DeadLetterNotFound")
        return {"id": event, "resent": True}
