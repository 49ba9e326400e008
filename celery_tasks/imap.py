"""Tasks that run IMAP operations on the account's live connection in its sidecar.

Each is a thin wrapper: validate nothing here (the API and the sidecar op do), forward the
kwargs to the sidecar op of the same name, return the envelope. Reads are harmless to repeat,
so they are acks_late; writes are acked early (a redelivered STORE/MOVE could act twice).
"""
from __future__ import annotations

import logging

from imapapi import errors, rpc
from imapapi import tasknames as T
from imapapi.settings import get_redis, get_settings
from imapapi.wire import Reply

from .app import celery

log = logging.getLogger(__name__)


def run_op(op: str, account: str, timeout: float | None = None, reply_id: str | None = None,
           **args) -> dict:
    """Plain function behind every IMAP task: one sidecar round trip, as an envelope.

    With `reply_id` (what the API passes) the task only checks and hands the command over:
    the sidecar answers straight to keys.reply(reply_id), where the caller waits, so the
    result does not take a second trip through the task and the result backend. A refusal
    (unknown account, not connected, no sidecar) is answered on the same key."""
    timeout = timeout or get_settings().command_timeout
    redis = get_redis()
    if reply_id is None:
        return rpc.envelope(lambda: rpc.result_of(rpc.call(redis, account, op, args,
                                                           timeout=timeout)))
    try:
        rpc.enqueue(redis, account, op, args, timeout=timeout, command_id=reply_id)
    except errors.ApiError as exc:
        rpc.send_reply(redis, Reply(id=reply_id, ok=False, error=exc.to_dict()))
    except Exception as exc:   # Redis trouble: answer if we can, the caller times out otherwise
        log.exception("cannot hand %s to the sidecar", op)
        rpc.send_reply(redis, Reply(id=reply_id, ok=False,
                                    error=errors.Unavailable(str(exc) or None).to_dict()))
    return {"ok": True, "result": {"forwarded": reply_id}}


def _define(name: str, *, acks_late: bool):
    op = name[len(T.PREFIX):]

    def task(account: str, timeout: float | None = None, reply_id: str | None = None, **args):
        out = run_op(op, account, timeout=timeout, reply_id=reply_id, **args)
        # With reply_id the answer went to the caller's key and the message says ignore_result:
        # Celery's tracer still saferepr()s the return value for its log line (~60 us for the
        # forwarded envelope, 10 % of the worker's CPU per API read), so return nothing.
        return None if reply_id else out

    task.__name__ = task.__qualname__ = op.replace(".", "_")
    task.__doc__ = f"Run the sidecar op {op!r} for an account; kwargs as documented in tasknames."
    # Request: Celery's, parsing the API's `expires` without dateutil (celery_tasks/pool.py)
    return celery.task(name=name, acks_late=acks_late, ignore_result=False,
                       Request="celery_tasks.pool:Request")(task)


TASKS = {name: _define(name, acks_late=True) for name in T.SIDECAR_READS}
TASKS.update({name: _define(name, acks_late=False) for name in T.SIDECAR_WRITES})
