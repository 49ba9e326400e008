"""Caller side of the wire: find the sidecar holding an account, send it a command, await the reply."""
from __future__ import annotations

import time

from . import errors, keys
from .accounts import get_record
from .wire import REPLY_TTL, Command, Reply, parse_frame

HEARTBEAT_STALE = 10.0   # seconds without a heartbeat after which a sidecar counts as gone


def live_sidecars(redis, now: float | None = None) -> list[str]:
    now = now or time.time()
    return [s.decode() for s in redis.zrangebyscore(keys.SIDECARS, now - HEARTBEAT_STALE, "+inf")]


def owner_of(redis, account: str) -> str:
    """Sidecar id holding the account's connection, or Unavailable."""
    sid = redis.hget(keys.OWNERS, account)
    if not sid:
        raise errors.Unavailable("No sidecar holds this account yet. Try again later.")
    sid = sid.decode()
    beat = redis.zscore(keys.SIDECARS, sid)
    if beat is None or beat < time.time() - HEARTBEAT_STALE:
        raise errors.Unavailable("The sidecar holding this account is not responding")
    return sid


def call(redis, account: str, op: str, args: dict | None = None, *, timeout: float,
         require_connected: bool = True) -> Reply:
    """Run `op` on the account's live connection; raise an ApiError or return the Reply."""
    record = get_record(redis, account)
    if record is None:
        raise errors.AccountNotFound()
    state = record.get("state", "init")
    if require_connected and state != "connected":
        raise errors.NotConnected(state)
    sid = owner_of(redis, account)
    command = Command(account=account, op=op, args=args or {}, deadline=time.time() + timeout)
    redis.lpush(keys.sidecar_commands(sid), command.dumps())
    got = redis.blpop([keys.reply(command.id)], timeout=max(timeout, 0.01))
    if got is None:
        raise errors.GatewayTimeout()
    reply = Reply.loads(got[1])
    if not reply.ok:
        raise errors.from_dict(reply.error or {})
    return reply


def result(redis, account: str, op: str, args: dict | None = None, *, timeout: float,
           require_connected: bool = True):
    """Like call() but returns only the JSON result."""
    return call(redis, account, op, args, timeout=timeout, require_connected=require_connected).result


def iter_stream(redis, stream_key: str, *, timeout: float):
    """Yield the byte chunks of a streamed result; raises ApiError on an error frame or stall."""
    while True:
        got = redis.blpop([stream_key], timeout=timeout)
        if got is None:
            raise errors.GatewayTimeout("Timeout waiting for streamed data")
        kind, payload = parse_frame(got[1])
        if kind == "d":
            yield payload
        elif kind == "e":
            redis.delete(stream_key)
            return
        else:
            redis.delete(stream_key)
            raise errors.from_dict(payload)


def envelope(fn, *args, **kwargs) -> dict:
    """Run fn and wrap its outcome as the task envelope {"ok", "result"|"error"}."""
    try:
        return {"ok": True, "result": fn(*args, **kwargs)}
    except errors.ApiError as exc:
        return {"ok": False, "error": exc.to_dict()}


__all__ = ["call", "result", "iter_stream", "envelope", "owner_of", "live_sidecars",
           "REPLY_TTL", "HEARTBEAT_STALE"]
