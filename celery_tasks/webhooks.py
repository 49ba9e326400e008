"""Webhook Celery tasks: thin wrappers over imapapi.delivery, plus a lease sweeper in each worker."""
from __future__ import annotations

import logging

from imapapi import delivery
from imapapi import tasknames as T
from imapapi.settings import get_redis

from .app import celery
from .sweepers import in_every_worker

log = logging.getLogger(__name__)
SWEEP_EVERY = 2.0


@celery.task(name=T.WEBHOOK_DELIVER, acks_late=True, reject_on_worker_lost=True,
             ignore_result=True)
def deliver(event_id: str | None = None, account: str | None = None):
    """POST the waiting events of the event's account, in order; acks_late is safe because
    delivery is idempotent by event id. A head that failed, a busy receiver or a used-up budget
    re-enqueue with a countdown (never sleep in a pool thread)."""
    redis = get_redis()
    account = account or delivery.account_of(redis, event_id)
    outcome, countdown = delivery.deliver_event(redis, event_id, account=account)
    if outcome in ("retry", "busy", "more"):
        deliver.apply_async(kwargs={"event_id": event_id, "account": account}, countdown=countdown)
    return outcome


@celery.task(name=T.WEBHOOK_DISPATCH, ignore_result=True)
def dispatch():
    """Enqueue every job whose lease passed (each worker also does this every few seconds)."""
    return delivery.sweep(get_redis())


# In every worker: lost wake-ups are recovered without needing celery beat.
in_every_worker("webhook-sweeper", SWEEP_EVERY, lambda: delivery.sweep(get_redis()))
