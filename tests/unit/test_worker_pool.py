"""celery_tasks.pool: IMAP hand-offs marked by the API run on the consumer loop, the rest on threads."""
from __future__ import annotations

import threading

import pytest

from celery_tasks.pool import TaskPool, runs_inline
from imapapi import tasknames as T
from imapapi.transport import MEMORY_ACK


@pytest.mark.parametrize("args, inline", [
    ((T.MESSAGE_GET, "id", {MEMORY_ACK: 1}, b"", "json", "utf-8"), True),
    ((T.MESSAGE_TEXT, "id", {MEMORY_ACK: True}, b"", "json", "utf-8"), True),
    ((T.MESSAGE_UPDATE, "id", {MEMORY_ACK: 1}, b"", "json", "utf-8"), True),
    # sent by anyone else (no marker: a caller reading the result backend waits on the task)
    ((T.MESSAGE_GET, "id", {}, b"", "json", "utf-8"), False),
    # a marker on a task that is not a hand-off does not move it off the threads
    ((T.WEBHOOK_DELIVER, "id", {MEMORY_ACK: 1}, b"", "json", "utf-8"), False),
    ((T.SUBMIT, "id", {MEMORY_ACK: 1}, b"", "json", "utf-8"), False),
    ((), False), (None, False), (("x",), False),
])
def test_which_jobs_run_inline(args, inline):
    assert runs_inline(args) is inline


def test_inline_jobs_run_in_the_callers_thread_and_others_on_the_executor():
    pool = TaskPool(limit=2)
    pool.start()
    try:
        seen = {}

        def target(name, *_):
            seen[name] = threading.current_thread()
            return name

        results = []
        pool.apply_async(target, args=(T.MESSAGE_GET, "a", {MEMORY_ACK: 1}, b"", "", ""),
                         callback=results.append)
        # done before apply_async returned, in this thread, callback included
        assert seen[T.MESSAGE_GET] is threading.current_thread()
        assert results == [T.MESSAGE_GET]
        handle = pool.apply_async(target, args=(T.WEBHOOK_DELIVER, "b", {}, b"", "", ""),
                                  callback=results.append)
        handle.wait(5)
        assert seen[T.WEBHOOK_DELIVER] is not threading.current_thread()
    finally:
        pool.stop()
