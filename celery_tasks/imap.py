"""Tasks that run IMAP operations on the account's live connection in its sidecar.

Each is a thin wrapper: validate nothing here (the API and the sidecar op do), forward the
kwargs to the sidecar op of the same name, return the envelope. Reads are harmless to repeat,
so they are acks_late; writes are acked early (a redelivered STORE/MOVE could act twice).
"""
from __future__ import annotations

import logging
import threading

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from imapapi import errors, rpc
from imapapi import tasknames as T
from imapapi.settings import get_redis, get_settings
from imapapi.wire import Reply

from .app import celery

log = logging.getLogger(__name__)


class Scripts:
    """A Redis client's evalsha/eval (all rpc.run_script calls) on a connection of its pool
    that the calling thread keeps.

    On the path of an API read (issue 15) this skips what redis-py adds around a command
    (retry wrapper, observability hooks, the HIMPORT check) and the pool's checkout and
    return (locks, pid checks, a poll for unread data, connection-count metrics), as taskmsg
    does for the API's publish. On a connection error (one Redis dropped) the client's own
    call takes over, which reconnects and retries as it did before; this connection
    reconnects on its next use."""

    _kept = threading.local()

    def __init__(self, redis):
        self.redis = redis

    def evalsha(self, sha, *args):
        return self._run("EVALSHA", sha, args, self.redis.evalsha)

    def eval(self, source, *args):
        return self._run("EVAL", source, args, self.redis.eval)

    def _connection(self):
        pool = self.redis.connection_pool
        kept = getattr(self._kept, "connection", None)
        if kept is None or kept[0] is not pool:
            # checked out for good: the threads pool's threads (and the consumer loop) live
            # as long as the process
            kept = self._kept.connection = (pool, pool.get_connection())
        return kept[1]

    def _run(self, command, script, args, fallback):
        conn = self._connection()
        try:
            conn.send_command(command, script, *args)
            return conn.read_response()
        except RedisConnectionError:
            conn.disconnect()
            return fallback(script, *args)
        except ResponseError:   # a whole reply (NOSCRIPT for one): the connection is fine
            raise
        except BaseException:   # a timeout, an interrupt: the reply may still be unread
            conn.disconnect()
            raise


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
    redis = Scripts(redis)
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
