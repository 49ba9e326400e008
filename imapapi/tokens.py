"""API access tokens: 256-bit bearer tokens of which Redis keeps only the SHA-256 and metadata.

A token is shown once when created. The HASH `ia:tokens` maps the hex SHA-256 of each token to
its JSON record (id, scopes, account restriction, description, created); last use is a separate
HASH so a request updates one small field instead of rewriting the record.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time

from . import keys
from .clock import now_iso

TOKENS = keys.TOKENS
LAST_USED = keys.TOKENS_USED
SCOPES = ("api", "metrics", "ui", "*")
TOKEN_BYTES = 32
_USED_EVERY = 60.0                   # write last-used at most once a minute per token and process
_used_written: dict[str, float] = {}


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def public_id(token_hash: str) -> str:
    """The id shown in listings and used to revoke: a prefix of the hash, never the token."""
    return token_hash[:16]


def normalize_scopes(scopes) -> list[str]:
    scopes = sorted(set(scopes or []))
    bad = [s for s in scopes if s not in SCOPES]
    if bad or not scopes:
        raise ValueError(f"scopes must be some of {', '.join(SCOPES)}")
    return scopes


def create(redis, scopes, *, account: str | None = None, description: str | None = None) -> tuple[str, dict]:
    """New token -> (the token, shown once; its public record)."""
    scopes = normalize_scopes(scopes)
    token = secrets.token_urlsafe(TOKEN_BYTES)
    token_hash = digest(token)
    record = {"id": public_id(token_hash), "scopes": scopes, "account": account or None,
              "description": description or "", "created": now_iso()}
    redis.hset(TOKENS, token_hash, json.dumps({**record, "hash": token_hash}))
    return token, record


def _records(redis) -> list[tuple[str, dict]]:
    out = []
    for token_hash, raw in redis.hgetall(TOKENS).items():
        token_hash = token_hash.decode() if isinstance(token_hash, bytes) else token_hash
        try:
            out.append((token_hash, json.loads(raw)))
        except ValueError:
            continue
    return out


def list_tokens(redis) -> list[dict]:
    """Public records (no hash), with lastUsed, oldest first."""
    used = {k.decode(): v.decode() for k, v in redis.hgetall(LAST_USED).items()}
    rows = []
    for token_hash, record in _records(redis):
        record.pop("hash", None)
        record["lastUsed"] = used.get(token_hash)
        rows.append(record)
    return sorted(rows, key=lambda r: (r.get("created") or "", r.get("id") or ""))


def revoke(redis, token_id: str) -> bool:
    """Delete by public id (or by the token itself). -> True when one was removed."""
    if not token_id:
        return False
    candidates = [h for h, _ in _records(redis) if public_id(h) == token_id]
    if not candidates and len(token_id) > 16:
        h = digest(token_id)
        if redis.hexists(TOKENS, h):
            candidates = [h]
    if not candidates:
        return False
    pipe = redis.pipeline(transaction=True)
    for h in candidates:
        pipe.hdel(TOKENS, h)
        pipe.hdel(LAST_USED, h)
    pipe.execute()
    return True


def bootstrap(redis, token: str | None) -> bool:
    """Store `token` (api.bootstrapToken) as a `*` token unless its hash is already there.
    -> True when it was added. Only the hash is kept; revoking it lasts until the next start
    that still names it (drop the option first)."""
    if not token:
        return False
    token_hash = digest(token)
    record = {"id": public_id(token_hash), "scopes": ["*"], "account": None,
              "description": "bootstrap (api.bootstrapToken)", "created": now_iso()}
    # HSETNX: several API pods starting together add it once and never reset its record
    return bool(redis.hsetnx(TOKENS, token_hash, json.dumps({**record, "hash": token_hash})))


def any_exist(redis) -> bool:
    return bool(redis.hlen(TOKENS))


def verify(redis, token: str | None) -> dict | None:
    """The record of a presented token (and note its use), or None when unknown."""
    if not token or len(token) > 256:
        return None
    return verify_hash(redis, digest(token))


def verify_hash(redis, token_hash: str) -> dict | None:
    """As verify, from the token's SHA-256 (what a UI session cookie names)."""
    if not isinstance(token_hash, str) or len(token_hash) != 64:
        return None
    raw = redis.hget(TOKENS, token_hash)
    if raw is None:
        return None
    try:
        record = json.loads(raw)
    except ValueError:
        return None
    # The lookup is by hash; compare again in constant time so the decision itself never
    # depends on how many leading characters matched.
    if not hmac.compare_digest(str(record.get("hash", "")), token_hash):
        return None
    now = time.monotonic()
    if now - _used_written.get(token_hash, -_USED_EVERY) >= _USED_EVERY:
        _used_written[token_hash] = now
        redis.hset(LAST_USED, token_hash, now_iso())
    record.pop("hash", None)
    return record


def allows(record: dict, scope: str, account: str | None = None) -> bool:
    """May this token use `scope` (on `account`, None = a global route)? Token management and
    other global routes are closed to account-bound tokens."""
    scopes = record.get("scopes") or []
    if "*" not in scopes and scope not in scopes:
        return False
    bound = record.get("account")
    if bound is None:
        return True
    return account is not None and hmac.compare_digest(str(bound), str(account))


# -- policy ----------------------------------------------------------------------------------
def is_loopback(host: str) -> bool:
    import ipaddress

    host = (host or "").strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def auth_mode(settings, redis) -> bool:
    """Must requests present a token? api.auth=off: never; on: always; auto: when bound beyond
    loopback, or as soon as a token exists (creating the first token closes a local API)."""
    if settings.api_auth == "off":
        return False
    if settings.api_auth == "on" or not is_loopback(settings.api_host):
        return True
    return any_exist(redis)


def startup_problem(settings, redis) -> str | None:
    """The one line the API prints when it must not start: reachable beyond loopback, tokens
    required, and none exists yet."""
    if settings.api_auth == "off" or not auth_mode(settings, redis) or any_exist(redis):
        return None
    return (f"api.host={settings.api_host} is reachable beyond loopback and no API token exists: "
            "create one first with `imap-api tokens create --scope='*'` (or set api.auth=off "
            "to run without authentication)")
