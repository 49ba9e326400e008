"""The worker's pool: Celery's threads pool, except that IMAP hand-offs run on the consumer loop."""
# An IMAP task sent by the API (app/tasks.run_direct) does one Redis EVAL: check the account
# and push the command to its sidecar (celery_tasks/imap.run_op). In the threads pool that
# EVAL waits for an executor thread to wake and take the GIL from the consumer loop, then the
# result goes back to the loop for the ack: under CPU load this hand-off cost several ms, more
# than the task. These messages (marked by the API with transport.MEMORY_ACK) therefore run
# right where they are received, through the same tracer (signals, expiry, ack); the loop
# already spent the same round trip on kombu's unacked bookkeeping for each message before
# that was dropped for them. Everything else (webhooks, sending, account writes) goes to the
# executor threads as before.
from __future__ import annotations

from datetime import datetime

from celery.concurrency import thread
from celery.concurrency.base import apply_target
from celery.utils.time import maybe_iso8601
from celery.worker.request import Request as CeleryRequest

from imapapi import tasknames as T
from imapapi.transport import MEMORY_ACK

NAME = "celery_tasks.pool:TaskPool"
_UNSET = object()


class _Done:
    """What apply_async returns for a job already run (the ApplyResult interface)."""

    def __init__(self, value=None):
        self.value = value

    def get(self, timeout=None):
        return self.value

    def wait(self, timeout=None):
        return None


def runs_inline(args) -> bool:
    """(task name, task id, request dict, ...) of a trace call -> is it an IMAP hand-off?"""
    try:
        name, _task_id, request = args[0], args[1], args[2]
        return name in T.SIDECAR_TASKS and bool(request.get(MEMORY_ACK))
    except (TypeError, IndexError, AttributeError):
        return False


def iso8601(value):
    """The API's `expires` (datetime.isoformat()) by the stdlib: dateutil's isoparse, which
    Celery uses, was 5 % of the worker's CPU per read; anything else still goes through it."""
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    return maybe_iso8601(value)


class Request(CeleryRequest):
    """Celery's worker Request with the faster `expires` parse and the body decoded once (the
    IMAP tasks' Request)."""

    zone = _UNSET   # the app's timezone, fixed by TaskPool.on_start

    def __init__(self, message, *args, **kwargs):
        kwargs.setdefault("maybe_iso8601", iso8601)
        if not kwargs.get("decoded"):
            # A protocol 2 message: Celery's strategy and Request already decoded the body
            # (message.payload, memoized), yet hand the tracer the raw bytes to decode again.
            kwargs.update(body=message.payload, decoded=True)
        super().__init__(message, *args, **kwargs)

    @property
    def tzlocal(self):
        # Celery looks the app's timezone up in the configuration for every message (for
        # `expires`); TaskPool.on_start fixes it as it does uses_utc_timezone.
        zone = Request.zone
        return super().tzlocal if zone is _UNSET else zone


class TaskPool(thread.TaskPool):
    def on_start(self):
        super().on_start()
        if self.app is not None:
            # Celery asks app.timezone per message (a data-descriptor cached_property behind an
            # RLock: 3 % of the worker's CPU per read); the configuration is final by now.
            utc = self.app.uses_utc_timezone()
            self.app.uses_utc_timezone = lambda: utc
            Request.zone = self.app.conf.timezone

    def on_apply(self, target, args=None, kwargs=None, callback=None, accept_callback=None,
                 **options):
        if runs_inline(args):
            apply_target(target, args, kwargs, callback, accept_callback)
            return _Done()
        return super().on_apply(target, args, kwargs, callback, accept_callback, **options)
