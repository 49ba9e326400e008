"""Celery queue depth and oldest-message age, read straight from the Redis broker lists."""
from __future__ import annotations

import json
import time

# kombu's Redis transport keeps one list per priority step: "<queue>" then "<queue>\x06\x16<n>".
PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")
SENT_AT = "imapapiSentAt"   # message header set when a message is published (imapapi.producer)


def names(queues: str) -> list[str]:
    """`worker.queues` ("celery,submit,webhooks") -> the queue names."""
    return [q.strip() for q in queues.split(",") if q.strip()]


def depths(redis, queues: list[str]) -> dict[str, int]:
    """Messages waiting per queue (all priority lists), one round trip."""
    pipe = redis.pipeline(transaction=False)
    for name in queues:
        for suffix in PRIORITY_SUFFIXES:
            pipe.llen(name + suffix)
    lengths = pipe.execute()
    n = len(PRIORITY_SUFFIXES)
    return {name: sum(lengths[i * n:(i + 1) * n]) for i, name in enumerate(queues)}


def oldest_ages(redis, queues: list[str], now: float | None = None) -> dict[str, float]:
    """Seconds the oldest waiting message of each queue has waited (0 when empty or unknown).
    Publishing LPUSHes and consuming BRPOPs, so the oldest is at index -1 of each list."""
    now = now or time.time()
    pipe = redis.pipeline(transaction=False)
    for name in queues:
        for suffix in PRIORITY_SUFFIXES:
            pipe.lindex(name + suffix, -1)
    raw = pipe.execute()
    n = len(PRIORITY_SUFFIXES)
    out = {}
    for i, name in enumerate(queues):
        oldest = 0.0
        for payload in raw[i * n:(i + 1) * n]:
            if not payload:
                continue
            try:
                sent = float(json.loads(payload).get("headers", {}).get(SENT_AT) or 0)
            except (ValueError, TypeError, AttributeError):
                continue
            if sent:
                oldest = max(oldest, now - sent)
        out[name] = oldest
    return out


def stamp(headers=None, **_kwargs) -> None:
    """Celery before_task_publish handler: note when the message was published."""
    if isinstance(headers, dict):
        headers.setdefault(SENT_AT, time.time())
