"""The Celery application (Redis broker and result backend from the settings)."""
from __future__ import annotations

from celery import Celery

from imapapi.settings import get_settings

from . import transport

# Every module that defines tasks; the worker imports them all at start.
TASK_MODULES = [
    "celery_tasks.accounts",
    "celery_tasks.imap",
    "celery_tasks.submit",
    "celery_tasks.webhooks",
]


def make_celery() -> Celery:
    url = get_settings().redis_url_or_default
    app = Celery("imapapi", broker=url, backend=url, include=TASK_MODULES)
    app.conf.update(
        broker_transport=transport.for_url(url),
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_expires=300,
        task_ignore_result=False,
        worker_prefetch_multiplier=4,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        # Time limits are a backstop only: every network call has its own timeout.
        task_soft_time_limit=300,
        task_time_limit=360,
        broker_transport_options={"visibility_timeout": 3600},
        result_backend_transport_options={"retry_policy": {"timeout": 5.0}},
        # Own queues, so a burst of webhooks or a slow SMTP queue never sits in front of the
        # API's requests; one worker consumes all three unless told otherwise (worker.queues).
        task_default_queue="celery",
        task_routes={"imapapi.webhooks.*": {"queue": "webhooks"},
                     "imapapi.submit": {"queue": "submit"}},
    )
    return app


class _LazyCelery:
    """Built on first use so that settings (e.g. the embedded Redis URL) are final by then."""

    _app: Celery | None = None

    def __getattr__(self, name):
        if _LazyCelery._app is None:
            _LazyCelery._app = make_celery()
        return getattr(_LazyCelery._app, name)

    def reset(self):
        _LazyCelery._app = None


celery = _LazyCelery()
