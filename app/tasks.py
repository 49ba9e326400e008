"""Run an operation as a Celery task and wait for it with a deadline (504 when it passes)."""
from __future__ import annotations

from celery.exceptions import TimeoutError as CeleryTimeout
from flask import current_app

from imapapi import errors
from imapapi.settings import get_settings


def run(task_name: str, *, timeout: float | None = None, **kwargs):
    """send_task + wait; returns the task's result or raises the ApiError it reported."""
    from celery_tasks.app import celery

    timeout = timeout or get_settings().command_timeout
    # the task's own sidecar deadline is `timeout`; allow a little for the two queue hops
    async_result = celery.send_task(task_name, kwargs=kwargs, expires=timeout)
    try:
        envelope = async_result.get(timeout=timeout + 1.0, propagate=False, disable_sync_subtasks=False)
    except CeleryTimeout:
        async_result.forget()
        raise errors.GatewayTimeout() from None
    if not isinstance(envelope, dict) or "ok" not in envelope:
        current_app.logger.error("task %s failed: %r", task_name, async_result.traceback or envelope)
        raise errors.ApiError()
    async_result.forget()
    if not envelope["ok"]:
        raise errors.from_dict(envelope["error"])
    return envelope["result"]
