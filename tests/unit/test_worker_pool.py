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


def test_the_imap_tasks_request_hands_the_tracer_the_body_decoded_once(monkeypatch, redis_url):
    from kombu import Connection

    from celery_tasks import pool
    from imapapi import producer, settings, taskmsg, transport

    monkeypatch.setattr(settings, "_current", settings.Settings(redis_url=redis_url))
    app = producer.make_celery()

    def message_get(**kwargs):
        return None

    task = app.task(name=T.MESSAGE_GET, Request="celery_tasks.pool:Request")(message_get)
    kwargs = {"account": "a1", "message": "AAAAAQAAAAE", "reply_id": "r" * 32}
    # the message the API publishes, taken off Redis by our transport as the worker does
    _queue, raw = taskmsg.build(app, T.MESSAGE_GET, kwargs, expires=30,
                                headers={MEMORY_ACK: 1})
    with Connection(redis_url, transport=transport.NAME) as conn:
        box = conn.SimpleQueue("imapapi-request-test")
        conn.default_channel.client.lpush("imapapi-request-test", raw)
        message = box.get(timeout=5)
        req = pool.Request(message, app=app, task=task, body=message.body, decoded=False)
        # the tracer gets (args, kwargs, embed), not bytes with a content type to decode
        assert req.content_type is None and req.body is message.payload
        assert req.args == [] and req.kwargs == kwargs
        assert req.expires.tzinfo is not None and req.tzlocal == app.conf.timezone
        message.ack()
        box.close()
