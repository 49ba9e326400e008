"""The worker's Celery app: the core's producer app (imapapi.producer) plus the task modules and
worker-only options, so the worker publishes (retries, sweeps) through the same app and pool."""
from __future__ import annotations

from celery import Celery

from imapapi import producer
from imapapi.producer import celery

from . import liveness  # noqa: F401  (registers the worker heartbeat for imap-api-probe)
from . import metrics  # noqa: F401  (worker.metricsPort: delivery, submit, task, queue metrics)

# Every module that defines tasks; the worker imports them all at start.
TASK_MODULES = [
    "celery_tasks.accounts",
    "celery_tasks.imap",
    "celery_tasks.submit",
    "celery_tasks.webhooks",
]

WORKER_OPTIONS = {
    "include": TASK_MODULES,
    "worker_prefetch_multiplier": 4,
    "worker_hijack_root_logger": False,
    # Time limits are a backstop only: every network call has its own timeout.
    "task_soft_time_limit": 300,
    "task_time_limit": 360,
}
# Own queues (imapapi.tasknames.ROUTES), so a burst of webhooks or a slow SMTP queue never sits
# in front of the API's requests; one worker consumes all three unless told otherwise
# (worker.queues).

celery.extend(**WORKER_OPTIONS)


def make_celery() -> Celery:
    """A fresh worker app (tests inspect its routing without touching the process's app)."""
    app = producer.make_celery(include=TASK_MODULES)
    app.conf.update(WORKER_OPTIONS)
    return app


__all__ = ["TASK_MODULES", "celery", "make_celery"]
