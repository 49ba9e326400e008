"""Producing Celery messages by task name (`send_task`): one Celery app per process, no worker import.

The API, the sidecar and the worker itself all publish through `celery` below, so a message sent
by name is the same wherever it comes from: same broker transport (imapapi.transport, one reused
Redis client per channel), JSON serializer and queue routes (tasknames.ROUTES). The worker
(the worker package) registers its tasks on this same app, so a process has one broker pool.
"""
from __future__ import annotations

from celery import Celery
from celery.signals import before_task_publish

from . import queues, transport
from . import tasknames as T
from .settings import get_settings


def make_celery(include: tuple[str, ...] | list[str] = ()) -> Celery:
    """A Celery app with everything that decides what a produced message looks like."""
    url = get_settings().redis_url_or_default
    app = Celery("imapapi", broker=url, backend=url, include=list(include))
    app.conf.update(
        broker_transport=transport.for_url(url),
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_expires=300,
        task_ignore_result=False,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": 3600},
        result_backend_transport_options={"retry_policy": {"timeout": 5.0}},
        task_default_queue=T.DEFAULT_QUEUE,
        task_routes=T.ROUTES,
    )
    return app


class _LazyCelery:
    """Built on first use so that settings (e.g. the embedded Redis URL) are final by then."""

    _app: Celery | None = None
    _extra: dict = {}

    def __getattr__(self, name):
        if _LazyCelery._app is None:
            app = make_celery()
            app.conf.update(_LazyCelery._extra)
            _LazyCelery._app = app
        return getattr(_LazyCelery._app, name)

    def extend(self, **conf) -> None:
        """More settings for this process's app (the worker's task modules and worker options),
        without building it now: applied at the build, or right away if it is built already."""
        _LazyCelery._extra = {**_LazyCelery._extra, **conf}
        if _LazyCelery._app is not None:
            _LazyCelery._app.conf.update(conf)

    def reset(self):
        _LazyCelery._app = None


celery = _LazyCelery()
# Every message carries its publish time, so the worker's metrics can show the oldest job's age.
before_task_publish.connect(queues.stamp, weak=False)


def send(name: str, kwargs: dict, **options):
    """Publish one task message by name -> AsyncResult (options as for Celery's send_task)."""
    return celery.send_task(name, kwargs=kwargs, **options)
