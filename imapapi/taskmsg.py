"""A task message as celery.send_task would publish it on kombu's Redis transport, built and LPUSHed in one step."""
# Why: an IMAP hand-off (app/tasks.run_direct) is the same small message every time, yet
# send_task took a quarter of the API's CPU per single-message read (py-spy --gil, issue 15):
# kombu's producer pool, entity copies and declare cache, the publish retry wrapper, and
# saferepr of the arguments. The worker gets the message Celery would have sent (protocol 2,
# JSON, base64 body; tests/unit/test_taskmsg.py compares the two field by field) and runs the
# task through Celery like any other caller's. Only the Redis transport's plain form is built
# here (no priority, no queue expiry, no global key prefix): `usable()` says when that holds.
from __future__ import annotations

import base64
import os
import socket
import time
import uuid
from datetime import datetime, timedelta, timezone

from celery import signals
from kombu.utils.json import dumps
from redis import exceptions as redis_errors

EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
QUICK = 0.5          # seconds: a connection error this soon after sending is safe to retry
REPR_MAX = 1024      # Celery's kwargsrepr_maxsize: argsrepr/kwargsrepr are for logs and Flower
_HOST = socket.gethostname()
_queues: dict[str, str] = {}


def usable(celery) -> bool:
    """Is the broker one whose messages this module builds (our or kombu's plain Redis
    transport, no global key prefix, default priority, protocol 2, JSON)?"""
    conf = celery.conf
    options = conf.broker_transport_options or {}
    url = str(conf.broker_url or "")
    return (url.startswith("redis://") and not options.get("global_keyprefix")
            and conf.task_protocol == 2 and conf.task_serializer == "json"
            and not conf.task_compression and conf.task_default_priority is None
            and conf.task_default_delivery_mode in (2, "persistent")
            and conf.enable_utc and not conf.timezone)


def queue_for(celery, name: str) -> str:
    """The queue Celery's router picks for a task name (cached: routes are static)."""
    queue = _queues.get(name)
    if queue is None:
        route = celery.amqp.router.route({}, name, (), {})
        queue = _queues[name] = route["queue"].name
    return queue


def brief(kwargs: dict) -> str:
    """kwargsrepr: repr() of the scalars, a placeholder for containers (an upload's data can
    be megabytes: its repr would be built only to be cut), at most REPR_MAX characters."""
    parts = []
    for key, value in kwargs.items():
        if isinstance(value, (str, bytes)) and len(value) > REPR_MAX:
            text = repr(value[:REPR_MAX])
        elif isinstance(value, (str, bytes, int, float, bool, type(None))):
            text = repr(value)
        else:
            text = "{...}" if isinstance(value, dict) else "[...]"
        parts.append(f"{key!r}: {text}")
    out = "{" + ", ".join(parts) + "}"
    return out if len(out) <= REPR_MAX else out[:REPR_MAX - 3] + "..."


def build(celery, name: str, kwargs: dict, *, expires: float, headers: dict | None = None,
          ignore_result: bool = True) -> tuple[str, bytes]:
    """-> (queue, raw message) for send_task(name, kwargs=kwargs, expires=expires,
    ignore_result=..., headers=headers), signals before_task_publish included."""
    task_id = str(uuid.uuid4())
    queue = queue_for(celery, name)
    expires_at = datetime.now(timezone.utc) + timedelta(seconds=expires)
    head = {
        "lang": "py", "task": name, "id": task_id, "shadow": None, "eta": None,
        "expires": expires_at.isoformat(), "group": None, "group_index": None, "retries": 0,
        "timelimit": [None, None], "root_id": task_id, "parent_id": None,
        "argsrepr": "()", "kwargsrepr": brief(kwargs),
        "origin": f"gen{os.getpid()}@{_HOST}", "ignore_result": ignore_result,
        "replaced_task_nesting": 0, "stamped_headers": None, "stamps": {},
        **(headers or {}),
    }
    properties = {"correlation_id": task_id, "reply_to": celery.thread_oid}
    body = ((), kwargs, EMBED)
    if signals.before_task_publish.receivers:
        signals.before_task_publish.send(
            sender=name, body=body, exchange="", routing_key=queue, declare=[],
            headers=head, properties=properties, retry_policy=None)
    properties.update(
        delivery_mode=2, expiration=str(int(expires * 1000)),
        delivery_info={"exchange": "", "routing_key": queue}, priority=0,
        body_encoding="base64", delivery_tag=str(uuid.uuid4()))
    # kombu's JSON, as the transport's: datetimes etc. in search criteria arrive typed
    payload = dumps([[], kwargs, EMBED]).encode()
    message = {"body": base64.b64encode(payload).decode(), "content-encoding": "utf-8",
               "content-type": "application/json", "headers": head, "properties": properties}
    return queue, dumps(message).encode()


def publish_and_wait(redis, celery, name: str, kwargs: dict, *, expires: float, reply_key: str,
                     wait: float, headers: dict | None = None, retries: int = 2,
                     interval: float = 0.2):
    """LPUSH the task message and BLPOP its reply key in one round trip (one wake-up of the
    caller fewer than publish, then wait) -> BLPOP's answer, None when `wait` ran out.

    A connection error within QUICK of sending is retried `retries` times (the publish retry
    policy of app/tasks: a pooled connection Redis dropped fails at once, before Redis saw
    the LPUSH); a later one is raised, since the task may already be running."""
    queue, raw = build(celery, name, kwargs, expires=expires, headers=headers)
    for attempt in range(retries + 1):
        started = time.monotonic()
        try:
            return _lpush_blpop(redis, queue, raw, reply_key, max(wait, 0.01))
        except (ConnectionError, redis_errors.ConnectionError):
            if attempt == retries or time.monotonic() - started > QUICK:
                raise
            time.sleep(interval * attempt)
    return None


def _lpush_blpop(redis, queue: str, raw: bytes, reply_key: str, wait: float):
    """LPUSH + BLPOP written together on one pooled connection -> BLPOP's (key, value) or None.

    What a two-command pipeline sends, without redis-py's Pipeline object, retry wrapper and
    per-command bookkeeping (py-spy: 14 % of the API's CPU per single-message read, over
    half of it that machinery). Any error drops the connection: a reply may still be unread."""
    pool = redis.connection_pool
    conn = pool.get_connection()
    try:
        conn.send_packed_command(conn.pack_commands(
            [("LPUSH", queue, raw), ("BLPOP", reply_key, wait)]))
        conn.read_response()
        got = conn.read_response()
    except BaseException:
        conn.disconnect()
        raise
    finally:
        pool.release(conn)
    return tuple(got) if got else None
