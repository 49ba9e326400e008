"""Tasks that run IMAP operations on the account's live connection in its sidecar.

Each is a thin wrapper: validate nothing here (the API and the sidecar op do), forward the
kwargs to the sidecar op of the same name, return the envelope. Reads are harmless to repeat,
so they are acks_late; writes are acked early (a redelivered STORE/MOVE could act twice).
"""
from __future__ import annotations

from imapapi import rpc
from imapapi import tasknames as T
from imapapi.settings import get_redis, get_settings

from .app import celery


def run_op(op: str, account: str, timeout: float | None = None, **args) -> dict:
    """Plain function behind every IMAP task: one sidecar round trip, as an envelope."""
    timeout = timeout or get_settings().command_timeout
    return rpc.envelope(_result_with_stream, get_redis(), account, op, args, timeout=timeout)


def _result_with_stream(redis, account: str, op: str, args: dict, *, timeout: float):
    """The op's result; for streamed results (source, attachment) {**result, "stream": key}."""
    reply = rpc.call(redis, account, op, args, timeout=timeout)
    if reply.stream:
        return {**(reply.result if isinstance(reply.result, dict) else {}), "stream": reply.stream}
    return reply.result


def _define(name: str, *, acks_late: bool):
    op = name[len(T.PREFIX):]

    def task(account: str, timeout: float | None = None, **args):
        return run_op(op, account, timeout=timeout, **args)

    task.__name__ = task.__qualname__ = op.replace(".", "_")
    task.__doc__ = f"Run the sidecar op {op!r} for an account; kwargs as documented in tasknames."
    return celery.task(name=name, acks_late=acks_late, ignore_result=False)(task)


READS = [T.MAILBOXES_LIST, T.MESSAGES_LIST, T.MESSAGES_SEARCH, T.MESSAGE_GET, T.MESSAGE_TEXT,
         T.MESSAGE_SOURCE, T.MESSAGE_ATTACHMENT]
WRITES = [T.MAILBOX_CREATE, T.MAILBOX_RENAME, T.MAILBOX_DELETE, T.MESSAGE_UPDATE,
          T.MESSAGE_DELETE, T.MESSAGE_UPLOAD]

TASKS = {name: _define(name, acks_late=True) for name in READS}
TASKS.update({name: _define(name, acks_late=False) for name in WRITES})
