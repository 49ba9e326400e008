"""Fenced account leases in Redis: acquire/steal-on-expiry, batch renew, release, fence checks.

One HASH (keys.LEASES) maps account -> "<token>:<expires ms>:<sidecar id>". The token comes
from one global counter (keys.LEASE_SEQ), so it increases on every acquisition (every change of
owner) and never repeats, even for an account deleted and created again. Expiry is Redis's own
clock (TIME), so sidecars on hosts with skewed clocks agree on when a lease has run out.

A sidecar connects an account only while it holds the lease. Every write it makes for the
account runs in a Lua step that starts with FENCE (the token must be the current one and the
lease unexpired); a sidecar that was paused or partitioned past its lease therefore cannot emit
an event, move sync state or account state, or re-claim the owner entry (keys.OWNERS), which is
written only by ACQUIRE/RENEW/RELEASE here, in the same step as the lease.
"""
from __future__ import annotations

import json

from . import keys, stats
from .clock import now_iso

LEASES = keys.LEASES
LEASE_SEQ = keys.LEASE_SEQ

BATCH = 1000   # accounts per Lua call (one round trip per batch, bounded time inside Redis)

# Redis >= 5 runs scripts with effects replication when asked (7 always does): needed to write
# after reading TIME. Returns now in ms.
_NOW = """
if redis.replicate_commands then pcall(redis.replicate_commands) end
local __t = redis.call('TIME')
local now = tonumber(__t[1]) * 1000 + math.floor(tonumber(__t[2]) / 1000)
"""

# KEYS: leases, seq, owners.  ARGV: sid, ttl ms, account record prefix, account...
# Takes each account that is free, released or expired (stealing an expired lease is the same
# step: the old holder's token stops matching). A lease we already hold is extended and keeps
# its token. A deleted account (no record: a reconcile that read the account set before the
# delete) gets no lease nor owner entry back. -> flat list [account, token, ...] we now hold.
ACQUIRE = _NOW + """
local sid, ttl = ARGV[1], tonumber(ARGV[2])
local out = {}
for i = 4, #ARGV do
  local acct = ARGV[i]
  local cur = redis.call('HGET', KEYS[1], acct)
  local tok, exp, owner
  if cur then tok, exp, owner = string.match(cur, '^(%d+):(%d+):(.*)$') end
  if redis.call('EXISTS', ARGV[3] .. acct) == 0 then
    -- deleted: nothing taken, nothing written
  elseif tok and owner == sid and tonumber(exp) > now then
    redis.call('HSET', KEYS[1], acct, tok .. ':' .. (now + ttl) .. ':' .. sid)
    redis.call('HSET', KEYS[3], acct, sid)
    out[#out + 1] = acct
    out[#out + 1] = tok
  elseif (not tok) or tonumber(exp) <= now then
    local new = redis.call('INCR', KEYS[2])
    redis.call('HSET', KEYS[1], acct, new .. ':' .. (now + ttl) .. ':' .. sid)
    redis.call('HSET', KEYS[3], acct, sid)
    out[#out + 1] = acct
    out[#out + 1] = tostring(new)
  end
end
return out
"""

# KEYS: leases, owners.  ARGV: sid, ttl ms, packed accounts (pack(): "<bytes>:<account><token>,"
# per lease, so an id may hold any character). One string instead of two arguments a lease:
# at 10,000 leases redis-py's packing of 20,000 arguments was most of a round's CPU.
# Extends each lease still held with that token and unexpired (and repairs its owner entry);
# -> the accounts whose lease is lost (stolen, expired, released, deleted).
RENEW = _NOW + """
local sid, ttl, blob = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local lost = {}
local pos, size = 1, #blob
while pos <= size do
  local colon = string.find(blob, ':', pos, true)
  local stop = colon + tonumber(string.sub(blob, pos, colon - 1))
  local acct = string.sub(blob, colon + 1, stop)
  local comma = string.find(blob, ',', stop + 1, true)
  local want = string.sub(blob, stop + 1, comma - 1)
  pos = comma + 1
  local cur = redis.call('HGET', KEYS[1], acct)
  local tok, exp, owner
  if cur then tok, exp, owner = string.match(cur, '^(%d+):(%d+):(.*)$') end
  if tok == want and owner == sid and tonumber(exp) > now then
    redis.call('HSET', KEYS[1], acct, tok .. ':' .. (now + ttl) .. ':' .. sid)
    if redis.call('HGET', KEYS[2], acct) ~= sid then redis.call('HSET', KEYS[2], acct, sid) end
  else
    lost[#lost + 1] = acct
  end
end
return lost
"""

# KEYS: leases, owners, per-state counts.  ARGV: sid, account record prefix, state time,
# [account, token] * n. Gives up leases still held with that token: lease and owner entry go,
# the account shows `disconnected` until the next owner connects. -> the accounts released.
RELEASE = stats.STATE_MOVE_LUA + """
local sid = ARGV[1]
local out = {}
for i = 4, #ARGV, 2 do
  local acct, want = ARGV[i], ARGV[i + 1]
  local cur = redis.call('HGET', KEYS[1], acct)
  local tok, exp, owner
  if cur then tok, exp, owner = string.match(cur, '^(%d+):(%d+):(.*)$') end
  if tok == want and owner == sid then
    redis.call('HDEL', KEYS[1], acct)
    if redis.call('HGET', KEYS[2], acct) == sid then redis.call('HDEL', KEYS[2], acct) end
    local rk = ARGV[2] .. acct
    if redis.call('EXISTS', rk) == 1 then
      imapapi_state_move(rk, KEYS[3], 'disconnected')
      redis.call('HSET', rk, 'state', 'disconnected', 'stateChanged', ARGV[3])
    end
    out[#out + 1] = acct
  end
end
return out
"""

# The fence to embed at the top of any write script. It reads the LAST three ARGV (leases
# key, account, token), so a script that walks its ARGV from the front needs no other change:
# the caller appends fence_args(...). `%s` is the script's own refusal value.
FENCE = _NOW + """
do
  local __n = #ARGV
  local __cur = redis.call('HGET', ARGV[__n - 2], ARGV[__n - 1])
  local __tok, __exp
  if __cur then __tok, __exp = string.match(__cur, '^(%%d+):(%%d+):') end
  if __tok ~= ARGV[__n] or tonumber(__exp) <= now then return %s end
end
"""
REFUSED = -3   # what fenced scripts here return when the fence refuses


class Fenced(ConnectionAbortedError):
    """The write carried a token that is no longer the account's current lease: not written.

    A ConnectionError on purpose: every handler that drops a broken IMAP connection (and never
    swallows one) treats it the same way, and the account runtime then stops the account."""


def fenced(script: str, refused: str = str(REFUSED)) -> str:
    """`script` with the fence check in front; call it with fence_args(...) appended to ARGV."""
    return FENCE % refused + script


def fence_args(account: str, token) -> list:
    return [LEASES, account, str(token)]


def _s(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def acquire(redis, sid: str, names, ttl: float) -> dict[str, int]:
    """Take or extend leases -> {account: token} for those we hold now (others are held elsewhere)."""
    names = list(names)
    got: dict[str, int] = {}
    for start in range(0, len(names), BATCH):
        flat = redis.eval(ACQUIRE, 3, LEASES, LEASE_SEQ, keys.OWNERS, sid, int(ttl * 1000),
                          keys.account(""), *names[start:start + BATCH])
        got.update({_s(flat[i]): int(flat[i + 1]) for i in range(0, len(flat), 2)})
    return got


def pack(items) -> list[str]:
    """(account, token) pairs -> RENEW's argument, one string per BATCH leases (a caller that
    renews the same leases every round keeps the result while they do not change)."""
    items = list(items)
    return ["".join(f"{len(acct.encode())}:{acct}{tok}," for acct, tok in items[i:i + BATCH])
            for i in range(0, len(items), BATCH)]


def renew(redis, sid: str, held: dict[str, int], ttl: float,
          packed: list[str] | None = None) -> list[str]:
    """Extend every lease in `held` (one round trip per BATCH; `packed` is pack(held.items())
    made earlier) -> the accounts lost."""
    lost: list[str] = []
    for blob in pack(held.items()) if packed is None else packed:
        lost += [_s(a) for a in redis.eval(RENEW, 2, LEASES, keys.OWNERS, sid,
                                           int(ttl * 1000), blob)]
    return lost


def release(redis, sid: str, held: dict[str, int]) -> list[str]:
    """Give up leases (after LOGOUT) so the next owner connects at once -> the accounts released."""
    items = list(held.items())
    out: list[str] = []
    for start in range(0, len(items), BATCH):
        argv = [x for acct, tok in items[start:start + BATCH] for x in (acct, tok)]
        out += [_s(a) for a in redis.eval(RELEASE, 3, LEASES, keys.OWNERS, stats.STATES_KEY,
                                          sid, keys.account(""), now_iso(), *argv)]
    return out


def parse(value) -> tuple[int, int, str] | None:
    """A stored lease value -> (token, expires ms, owner) or None."""
    if value is None:
        return None
    tok, exp, owner = _s(value).split(":", 2)
    return int(tok), int(exp), owner


def current(redis, account: str) -> tuple[int, int, str] | None:
    return parse(redis.hget(LEASES, account))


def redis_now_ms(redis) -> int:
    sec, usec = redis.time()
    return int(sec) * 1000 + int(usec) // 1000


def holders(redis) -> tuple[dict[str, int], int, int]:
    """-> ({sidecar: leases held and unexpired}, expired leases not yet taken, Redis now ms)."""
    now = redis_now_ms(redis)
    counts: dict[str, int] = {}
    expired = 0
    for _acct, value in redis.hscan_iter(LEASES, count=1000):
        tok, exp, owner = parse(value)
        if exp > now:
            counts[owner] = counts.get(owner, 0) + 1
        else:
            expired += 1
    return counts, expired, now


# -- fenced writes the sidecar makes outside the event commit ---------------------------------
# KEYS: record, per-state counts (kept in the same step, as accounts.set_state does).
_SET_STATE = fenced(stats.STATE_MOVE_LUA + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
imapapi_state_move(KEYS[1], KEYS[2], ARGV[2])
for i = 1, #ARGV - 3, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1
""")


def set_state(redis, account: str, token, state: str, error: dict | None = None) -> bool:
    """accounts.set_state, refused (Fenced) unless `token` is the account's current lease."""
    fields = {"state": state, "stateChanged": now_iso()}
    if state == "connected":
        fields["lastErrorState"] = "{}"
    elif error is not None:
        fields["lastErrorState"] = json.dumps({**error, "time": now_iso()})
    res = redis.eval(_SET_STATE, 2, keys.account(account), stats.STATES_KEY,
                     *[x for kv in fields.items() for x in kv], *fence_args(account, token))
    if res == REFUSED:
        raise Fenced(account)
    return bool(res)


_HSET_IF_EXISTS = fenced("""
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
""")


def hset_existing(redis, key: str, field: str, value, account: str, token) -> bool:
    """HSET one field of an existing hash (never recreates a deleted record), fenced."""
    res = redis.eval(_HSET_IF_EXISTS, 1, key, field, value, *fence_args(account, token))
    if res == REFUSED:
        raise Fenced(account)
    return bool(res)
