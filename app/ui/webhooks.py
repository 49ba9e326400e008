"""Webhooks page: dead letters with resend, and the most recent deliveries (status, latency)."""
from __future__ import annotations

import math

from flask import request

from imapapi import delivery
from imapapi.settings import get_redis

from .common import bp, done, page

PAGE_SIZE = 25


@bp.get("/ui/webhooks")
def webhooks():
    redis = get_redis()
    try:
        page_no = max(0, int(request.args.get("page", 0)))
    except ValueError:
        page_no = 0
    total, dead = delivery.list_dead(redis, page_no * PAGE_SIZE, PAGE_SIZE)
    return page("ui_webhooks.html", title="Webhooks", dead=dead, total=total, page_no=page_no,
                pages=max(1, math.ceil(total / PAGE_SIZE)), recent=delivery.recent(redis, 50),
                args=lambda p: f"page={p}")


@bp.post("/ui/webhooks/dead/<event>/resend")
def webhook_resend(event):
    if delivery.resend_dead(get_redis(), event):
        return done("ui.webhooks", f"Event {event} queued for delivery again.")
    return done("ui.webhooks", f"Event {event} is no longer in the dead letters.")
