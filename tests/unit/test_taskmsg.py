"""imapapi.taskmsg builds the message celery.send_task publishes, field by field (real Redis)."""
from __future__ import annotations

import base64
import json
import time
from datetime import datetime, timezone

import pytest
import redis as redis_lib

from imapapi import taskmsg, transport
from imapapi import tasknames as T

# Differ by nature between two messages (fresh ids, times, per-thread oid): compared by shape.
VOLATILE_HEADERS = {"id", "root_id", "expires", "imapapiSentAt", "kwargsrepr", "origin"}
VOLATILE_PROPS = {"correlation_id", "delivery_tag", "reply_to", "expiration"}


@pytest.fixture()
def app(monkeypatch, redis_url):
    from imapapi import producer, settings

    monkeypatch.setattr(settings, "_current", settings.Settings(redis_url=redis_url))
    return producer.make_celery()


def sent(redis, queue: str) -> dict:
    raw = redis.rpop(queue)
    assert raw is not None
    return json.loads(raw)


def body_of(message: dict):
    assert message["properties"]["body_encoding"] == "base64"
    return json.loads(base64.b64decode(message["body"]))


@pytest.mark.parametrize("name, kwargs", [
    (T.MESSAGE_GET, {"account": "a1", "message": "AAAAAQAAAAE", "reply_id": "r" * 32}),
    (T.MESSAGES_SEARCH, {"account": "a1", "path": "INBOX", "page": 0, "pageSize": 20,
                         "search": {"since": datetime(2024, 5, 1, tzinfo=timezone.utc),
                                    "unseen": True}, "reply_id": "r" * 32}),
])
def test_same_message_as_send_task(app, redis, name, kwargs):
    queue = taskmsg.queue_for(app, name)
    assert queue == app.amqp.router.route({}, name)["queue"].name
    redis.delete(queue)
    headers = {transport.MEMORY_ACK: 1}
    app.send_task(name, kwargs=kwargs, expires=30, ignore_result=True, headers=dict(headers))
    celery_msg = sent(redis, queue)
    got_queue, raw = taskmsg.build(app, name, kwargs, expires=30, headers=dict(headers))
    assert got_queue == queue
    redis.lpush(queue, raw)
    ours = sent(redis, queue)

    assert set(ours) == set(celery_msg)
    for key in ("content-encoding", "content-type"):
        assert ours[key] == celery_msg[key]
    assert body_of(ours) == body_of(celery_msg)   # datetimes typed by kombu's JSON in both
    assert set(ours["headers"]) == set(celery_msg["headers"])
    for key, value in celery_msg["headers"].items():
        if key not in VOLATILE_HEADERS:
            assert ours["headers"][key] == value, key
    assert ours["headers"]["root_id"] == ours["headers"]["id"]
    assert ours["headers"]["origin"].split("@")[1] == celery_msg["headers"]["origin"].split("@")[1]
    assert abs(datetime.fromisoformat(ours["headers"]["expires"]) -
               datetime.fromisoformat(celery_msg["headers"]["expires"])).total_seconds() < 5
    assert ours["headers"]["expires"].endswith("+00:00")
    assert set(ours["properties"]) == set(celery_msg["properties"])
    for key, value in celery_msg["properties"].items():
        if key not in VOLATILE_PROPS:
            assert ours["properties"][key] == value, key
    assert ours["properties"]["correlation_id"] == ours["headers"]["id"]
    assert abs(int(ours["properties"]["expiration"]) -
               int(celery_msg["properties"]["expiration"])) < 5000


def test_usable_only_for_the_plain_redis_form(app):
    assert taskmsg.usable(app)
    app.conf.broker_transport_options = {"global_keyprefix": "x:"}
    assert not taskmsg.usable(app)


def test_brief_caps_big_values():
    text = taskmsg.brief({"account": "a", "data": {"raw": "x" * 10**6}, "n": 3,
                          "big": "y" * 5000})
    assert len(text) <= taskmsg.REPR_MAX
    assert text.startswith("{'account': 'a', 'data': {...}, 'n': 3, 'big': 'yyy")
    assert taskmsg.brief({"a": 1, "b": None}) == repr({"a": 1, "b": None})


def test_publish_and_wait_is_one_round_trip(app, redis):
    queue = taskmsg.queue_for(app, T.MESSAGE_GET)
    redis.delete(queue, "taskmsg-test-reply")
    redis.rpush("taskmsg-test-reply", b"answer")
    got = taskmsg.publish_and_wait(redis, app, T.MESSAGE_GET, {"account": "a"}, expires=5,
                                   reply_key="taskmsg-test-reply", wait=1)
    assert got == (b"taskmsg-test-reply", b"answer")
    assert body_of(sent(redis, queue))[1] == {"account": "a"}
    assert taskmsg.publish_and_wait(redis, app, T.MESSAGE_GET, {"account": "a"}, expires=5,
                                    reply_key="taskmsg-test-reply", wait=0.05) is None
    redis.delete(queue)


class Flaky:
    """A client whose connection fails `fails` times (after `delay` s) on sending, then answers
    (the pool and connection calls taskmsg makes; the answers' order is Redis's)."""

    def __init__(self, fails: int, delay: float = 0.0):
        self.fails, self.delay, self.calls = fails, delay, 0
        self.connection_pool = self
        self.answers: list = []

    def get_connection(self):
        return self

    def release(self, conn):
        pass

    def disconnect(self):
        pass

    def pack_commands(self, commands):
        return commands

    def send_packed_command(self, commands):
        self.calls += 1
        if self.calls <= self.fails:
            time.sleep(self.delay)
            raise redis_lib.ConnectionError("Connection closed by server.")
        self.answers = [1, [b"k", b"v"]]

    def read_response(self):
        return self.answers.pop(0)


def test_a_quick_connection_error_is_retried_then_raised(app):
    ok = Flaky(2)
    assert taskmsg.publish_and_wait(ok, app, T.MESSAGE_GET, {"account": "a"}, expires=5,
                                    reply_key="k", wait=1, interval=0) == (b"k", b"v")
    assert ok.calls == 3
    down = Flaky(5)
    with pytest.raises(redis_lib.ConnectionError):
        taskmsg.publish_and_wait(down, app, T.MESSAGE_GET, {"account": "a"}, expires=5,
                                 reply_key="k", wait=1, interval=0)
    assert down.calls == 3


def test_a_connection_lost_while_waiting_is_not_retried(app, monkeypatch):
    # the task may be running already: a second message would run the operation twice
    monkeypatch.setattr(taskmsg, "QUICK", 0.01)
    late = Flaky(1, delay=0.05)
    with pytest.raises(redis_lib.ConnectionError):
        taskmsg.publish_and_wait(late, app, T.MESSAGE_GET, {"account": "a"}, expires=5,
                                 reply_key="k", wait=1, interval=0)
    assert late.calls == 1
