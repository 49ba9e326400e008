"""Caller side of the wire: find the sidecar holding an account, send it a command, await the reply."""
from __future__ import annotations

import hashlib
import time

from redis.exceptions import NoScriptError

from . import errors, keys
from .wire import REPLY_TTL, Command, Reply, parse_frame

HEARTBEAT_STALE = 10.0   # seconds without a heartbeat after which a sidecar counts as gone
# A sidecar beats every second: one silent for this long is dead or frozen. Requests for its
# accounts answer 503 (state "handover") at once instead of waiting out their deadline, and a
# live replica answers the commands already queued for it the same way (sidecar/leasing.py).
HEARTBEAT_SUSPECT = 4.0
QUEUE_TTL = 120          # a dead sidecar's command list does not outlive the longest deadline


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
    if beat is None or beat < time.time() - HEARTBEAT_SUSPECT:
        raise errors.NotConnected("handover")
    return sid


# One round trip on the hot path: check the account, its state, its lease and its sidecar,
# then enqueue. Returns {code, detail} on refusal, or {"ok", sid}. Times are Redis's clock
# (TIME), the one lease expiry and heartbeats are written with.
_ENQUEUE = """
local acct = redis.call('HMGET', KEYS[1], 'account', 'state')
if not acct[1] then return {'AccountNotFound', ''} end
local state = acct[2] or 'init'
if ARGV[1] == '1' and state ~= 'connected' then return {'NotConnected', state} end
local sid = redis.call('HGET', KEYS[2], ARGV[2])
if not sid then return {'NoOwner', ''} end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local beat = redis.call('ZSCORE', KEYS[3], sid)
if (not beat) or tonumber(beat) < now - tonumber(ARGV[3]) then return {'Handover', sid} end
local lease = redis.call('HGET', KEYS[4], ARGV[2])
local exp, owner
if lease then exp, owner = string.match(lease, '^%d+:(%d+):(.*)$') end
if (not exp) or owner ~= sid or tonumber(exp) <= now * 1000 then return {'Handover', sid} end
local q = ARGV[4] .. sid .. ARGV[5]
redis.call('LPUSH', q, ARGV[6])
redis.call('EXPIRE', q, ARGV[7])
return {'ok', sid}
"""
_QUEUE_PREFIX, _QUEUE_SUFFIX = keys.sidecar_commands("\0").split("\0")
_ENQUEUE_SHA = hashlib.sha1(_ENQUEUE.encode()).hexdigest()


def enqueue(redis, account: str, op: str, args: dict | None = None, *, timeout: float,
            require_connected: bool = True, command_id: str | None = None) -> Command:
    """Check the account and hand `op` to its sidecar; the reply will land on keys.reply(id)."""
    command = Command(account=account, op=op, args=args or {}, deadline=time.time() + timeout,
                      **({"id": command_id} if command_id else {}))   # no uuid4 made to be dropped
    call = (4, keys.account(account), keys.OWNERS, keys.SIDECARS, keys.LEASES,
            "1" if require_connected else "0", account, HEARTBEAT_SUSPECT,
            _QUEUE_PREFIX, _QUEUE_SUFFIX, command.dumps(), QUEUE_TTL)
    # by SHA: the 1 KB script is not packed, sent and hashed again for every command
    status, detail = run_script(redis, _ENQUEUE, _ENQUEUE_SHA, *call)
    status = status.decode() if isinstance(status, bytes) else status
    if status != "ok":
        detail = detail.decode() if isinstance(detail, bytes) else detail
        if status == "AccountNotFound":
            raise errors.AccountNotFound()
        if status == "NotConnected":
            raise errors.NotConnected(detail)
        if status == "NoOwner":
            raise errors.Unavailable("No sidecar holds this account yet. Try again later.")
        # the holder stopped beating or its lease ran out: another replica takes over shortly
        raise errors.NotConnected("handover")
    return command


def wait(redis, command_id: str, *, timeout: float) -> Reply:
    """Await the one Reply to a command; GatewayTimeout when the deadline passes."""
    return reply_of(redis.blpop([keys.reply(command_id)], timeout=max(timeout, 0.01)))


def reply_of(got) -> Reply:
    """What a BLPOP on a reply key answered -> the Reply (GatewayTimeout when nothing came)."""
    if got is None:
        raise errors.GatewayTimeout()
    reply = Reply.loads(got[1])
    if not reply.ok:
        raise errors.from_dict(reply.error or {})
    return reply


# RPUSH + EXPIRE as one command: redis-py's pipeline machinery cost the sidecar more CPU than
# the two commands themselves (py-spy: ~11 % of its GIL time per single-message read).
_REPLY = "redis.call('RPUSH', KEYS[1], ARGV[1]) redis.call('EXPIRE', KEYS[1], ARGV[2])"
_REPLY_SHA = hashlib.sha1(_REPLY.encode()).hexdigest()


def send_reply(redis, reply: Reply) -> None:
    """Push a Reply (used by whoever answers instead of the sidecar, e.g. a refused command)."""
    run_script(redis, _REPLY, _REPLY_SHA, 1, keys.reply(reply.id), reply.dumps(), REPLY_TTL)


def reply_command(reply: Reply) -> tuple:
    """send_reply's EVALSHA as a command to pack with others (the sidecar writes it with its
    next BRPOP); on NoScriptError the caller falls back to send_reply."""
    return ("EVALSHA", _REPLY_SHA, 1, keys.reply(reply.id), reply.dumps(), REPLY_TTL)


def run_script(redis, source: str, sha: str, *call):
    """EVALSHA, and EVAL on the first use on this Redis (or after SCRIPT FLUSH / a restart)."""
    try:
        return redis.evalsha(sha, *call)
    except NoScriptError:
        return redis.eval(source, *call)


def call(redis, account: str, op: str, args: dict | None = None, *, timeout: float,
         require_connected: bool = True) -> Reply:
    """Run `op` on the account's live connection; raise an ApiError or return the Reply."""
    command = enqueue(redis, account, op, args, timeout=timeout,
                      require_connected=require_connected)
    return wait(redis, command.id, timeout=timeout)


def result_of(reply: Reply):
    """A Reply's JSON result; streamed results (source, attachment) -> {**meta, "stream": key}."""
    if reply.stream:
        return {**(reply.result if isinstance(reply.result, dict) else {}), "stream": reply.stream}
    return reply.result


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


__all__ = ["call", "enqueue", "wait", "reply_of", "send_reply", "reply_command", "result_of", "result",
           "iter_stream", "envelope", "owner_of", "live_sidecars", "REPLY_TTL", "HEARTBEAT_STALE", "HEARTBEAT_SUSPECT"]
