"""Run an operation as a Celery task and wait for it with a deadline (504 when it passes).

With the app config TASKS_EAGER (unit tests only) the task's function runs in-process instead of
through the broker; the envelope handling is the same, so routes see identical errors.
"""
from __future__ import annotations

import functools
import logging

import kombu.exceptions
import redis.exceptions
from celery.exceptions import TimeoutError as CeleryTimeout
from flask import current_app, has_app_context

from imapapi import errors, keys, rpc, taskmsg, transport, wire
from imapapi import tasknames as T
from imapapi.producer import celery
from imapapi.settings import get_redis, get_settings

log = logging.getLogger("imapapi.api.tasks")

# Publishing must fail fast when Redis is down: the client gets 503, not a long hang.
PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}


BROKER_ERRORS = (kombu.exceptions.OperationalError, redis.exceptions.ConnectionError,
                 redis.exceptions.TimeoutError, ConnectionError, OSError)


def _unavailable() -> errors.ApiError:
    return errors.Unavailable("Task queue (Redis) is not reachable", code="ServiceUnavailable")


def run(task_name: str, *, timeout: float | None = None, **kwargs):
    """send_task + wait; returns the task's result or raises the ApiError it reported."""
    timeout = timeout or get_settings().command_timeout
    if has_app_context() and current_app.config.get("TASKS_EAGER"):
        return unwrap(task_name, run_local(task_name, kwargs))
    if task_name in T.SIDECAR_TASKS:
        return run_direct(task_name, timeout, kwargs)
    try:
        # the task's own sidecar deadline is `timeout`; allow a little for the two queue hops
        async_result = celery.send_task(task_name, kwargs=kwargs, expires=timeout,
                                        retry=True, retry_policy=PUBLISH_RETRY)
    except Exception as exc:   # broker or result store down (Celery raises RuntimeError too)
        log.error("cannot publish task %s: %s", task_name, exc)
        _reset_backend(celery)
        raise _unavailable() from None
    try:
        envelope = async_result.get(timeout=timeout + 1.0, propagate=False,
                                    disable_sync_subtasks=False)
    except CeleryTimeout:
        _forget(async_result)
        raise errors.GatewayTimeout() from None
    except (RuntimeError, *BROKER_ERRORS) as exc:
        log.error("lost the result backend waiting for %s: %s", task_name, exc)
        _reset_backend(celery)
        raise _unavailable() from None
    if async_result.state == "REVOKED":   # expired in the queue: no worker took it in time
        _forget(async_result)
        raise errors.GatewayTimeout()
    if not isinstance(envelope, dict) or "ok" not in envelope:
        log.error("task %s failed: %s", task_name, async_result.traceback or repr(envelope))
        _forget(async_result)
        raise errors.ApiError()
    _forget(async_result)
    return unwrap(task_name, envelope)


def run_direct(task_name: str, timeout: float, kwargs: dict):
    """IMAP operations: the Celery task checks the account and hands the command to the
    sidecar, which answers on a reply key this request waits on (no result-backend round trip).

    The task stays on the request path on purpose: the tasks are the operations (the public
    interface other services call too), so the API runs through them like any other caller."""
    reply_id = wire.new_id()
    kwargs = {**kwargs, "reply_id": reply_id}
    # ignore_result: the answer comes on the reply key, the result backend is never read.
    # MEMORY_ACK: no unacked entries in Redis for a message nobody could use redelivered
    # after its deadline (imapapi/transport.py); two fewer round trips in the worker.
    headers = {transport.MEMORY_ACK: 1}
    # the sidecar's own deadline is `timeout` from when the task handed the command over
    wait = timeout + 1.0
    if _lean():
        # the message send_task would send, and the wait for the reply, in one round trip
        # (imapapi/taskmsg.py: kombu's publish was a quarter of the API's CPU per read)
        try:
            got = taskmsg.publish_and_wait(
                get_redis(), celery, task_name, kwargs, expires=timeout,
                reply_key=keys.reply(reply_id), wait=wait, headers=headers,
                retries=PUBLISH_RETRY["max_retries"], interval=PUBLISH_RETRY["interval_step"])
        except BROKER_ERRORS as exc:
            log.error("lost Redis publishing or waiting for %s: %s", task_name, exc)
            raise _unavailable() from None
        return rpc.result_of(rpc.reply_of(got))
    try:
        celery.send_task(task_name, kwargs=kwargs, expires=timeout, ignore_result=True,
                         headers=headers, retry=True, retry_policy=PUBLISH_RETRY)
    except Exception as exc:   # broker down (Celery raises RuntimeError too)
        log.error("cannot publish task %s: %s", task_name, exc)
        raise _unavailable() from None
    try:
        reply = rpc.wait(get_redis(), reply_id, timeout=wait)
    except BROKER_ERRORS as exc:
        log.error("lost Redis waiting for %s: %s", task_name, exc)
        raise _unavailable() from None
    return rpc.result_of(reply)


@functools.cache
def _lean() -> bool:
    """Can imapapi.taskmsg build this broker's messages (decided once per process)?"""
    return taskmsg.usable(celery)


def _reset_backend(celery):
    """Drop this thread's result backend: after an outage Celery's pub/sub consumer can stay
    broken ("must be restarted"); a fresh one reconnects once Redis is back."""
    try:
        local = celery._local
        if getattr(local, "backend", None) is not None:
            del local.backend
    except Exception:   # best effort: the next request tries again
        pass


def _forget(async_result):
    try:
        async_result.forget()
    except Exception:   # the result expires anyway (result_expires)
        pass


def unwrap(task_name: str, envelope):
    if not isinstance(envelope, dict) or "ok" not in envelope:
        log.error("task %s returned %r", task_name, envelope)
        raise errors.ApiError()
    if not envelope["ok"]:
        raise errors.from_dict(envelope.get("error") or {})
    return envelope.get("result")


def run_local(task_name: str, kwargs: dict):
    """Call the registered task's function in this process (TASKS_EAGER). The test that sets
    TASKS_EAGER imports the task modules; they register on the same app (imapapi.producer)."""
    task = celery.tasks.get(task_name)
    if task is None:
        raise errors.ApiError(f"Unknown task {task_name}", status=500)
    try:
        return task(**kwargs)
    except errors.ApiError:
        raise
    except Exception:
        log.exception("task %s failed", task_name)
        raise errors.ApiError() from None
