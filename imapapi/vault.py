"""Which stored values are secrets, sealing/opening them, and the start-up key check, migration, rotation.

Secret leaves inside an account's `imap`/`smtp` JSON (`pass`, `accessToken`, `refreshToken`)
and a per-account webhook URL with a password are encrypted with the account id as associated
data; the global `webhookSecret` and `authServer` settings with "settings". Everything else
(hosts, users, state) stays readable, so operators can still inspect records.
"""
from __future__ import annotations

import json
import logging
import threading
from urllib.parse import urlsplit

from . import crypto, keys

log = logging.getLogger(__name__)

SECRET_LEAVES = ("pass", "accessToken", "refreshToken")
CONFIG_FIELDS = ("imap", "smtp")
SECRET_SETTINGS = ("webhookSecret", "authServer")
SETTINGS_CONTEXT = "settings"
# The key id a standalone process generated for this Redis (public; names, never holds, a key).
# A second machine without the key file then refuses to start instead of making its own key.
KEY_MARKER = keys.SECRETS_KEY_ID

_lock = threading.Lock()
_ring: crypto.Keyring | None = None


def account_context(account: str) -> str:
    return f"account:{account}"


def keyring() -> crypto.Keyring:
    """The process keyring from the settings (loaded once; `install` replaces it)."""
    global _ring
    if _ring is None:
        with _lock:
            if _ring is None:
                from .settings import get_settings

                s = get_settings()
                ring = crypto.load_keyring(encryption_key=s.encryption_key, key_file=s.key_file,
                                           state_dir=s.state_dir, generate=False)
                if ring is None:
                    raise crypto.KeyConfigError(
                        "no encryption key: set service.keyFile or service.encryptionKey "
                        "(`imap-api serve` creates <stateDir>/secret.key on first start)")
                _ring = ring
    return _ring


def install(ring: crypto.Keyring | None) -> None:
    global _ring
    _ring = ring


# -- values ---------------------------------------------------------------------------------
def _walk(config, fn):
    if isinstance(config, dict):
        return {k: (fn(v) if k in SECRET_LEAVES and isinstance(v, str) and v else _walk(v, fn))
                for k, v in config.items()}
    if isinstance(config, list):
        return [_walk(v, fn) for v in config]
    return config


def seal_config(config, account: str, ring: crypto.Keyring | None = None):
    """imap/smtp config with every secret leaf encrypted for `account`."""
    ring = ring or keyring()
    return _walk(config, lambda v: crypto.seal(ring, v, account_context(account)))


def open_config(config, account: str, ring: crypto.Keyring | None = None):
    """imap/smtp config with secret leaves in clear (only ever held in memory)."""
    if not _has_sealed(config):
        return config
    ring = ring or keyring()
    return _walk(config, lambda v: crypto.decrypt(ring, v, account_context(account)))


def _has_sealed(config) -> bool:
    if isinstance(config, dict):
        return any(_has_sealed(v) for v in config.values())
    if isinstance(config, list):
        return any(_has_sealed(v) for v in config)
    return crypto.is_encrypted(config)


def url_has_password(url) -> bool:
    try:
        return isinstance(url, str) and urlsplit(url).password is not None
    except ValueError:
        return False


def seal_webhook(value, account: str, ring: crypto.Keyring | None = None):
    """A per-account webhooks value (URL or {url}) with a password in its userinfo: sealed."""
    if isinstance(value, dict) and "url" in value:
        return {**value, "url": seal_webhook(value["url"], account, ring)}
    if url_has_password(value):
        return crypto.seal(ring or keyring(), value, account_context(account))
    return value


def open_webhook(value, account: str, ring: crypto.Keyring | None = None):
    if isinstance(value, dict) and "url" in value:
        return {**value, "url": open_webhook(value["url"], account, ring)}
    if crypto.is_encrypted(value):
        return crypto.decrypt(ring or keyring(), value, account_context(account))
    return value


def seal_setting(name: str, value, ring: crypto.Keyring | None = None):
    if name in SECRET_SETTINGS and isinstance(value, str) and value:
        return crypto.seal(ring or keyring(), value, SETTINGS_CONTEXT)
    return value


def open_setting(name: str, value, ring: crypto.Keyring | None = None):
    if name in SECRET_SETTINGS and crypto.is_encrypted(value):
        return crypto.decrypt(ring or keyring(), value, SETTINGS_CONTEXT)
    return value


def seal_blob(text: str, context: str, ring: crypto.Keyring | None = None) -> str:
    return crypto.encrypt(ring or keyring(), text, context)


def open_blob(text: str, context: str, ring: crypto.Keyring | None = None) -> str:
    return crypto.decrypt(ring or keyring(), text, context)


# -- whole database -------------------------------------------------------------------------
def _leaves(config):
    if isinstance(config, dict):
        for k, v in config.items():
            if k in SECRET_LEAVES and isinstance(v, str) and v:
                yield v
            else:
                yield from _leaves(v)
    elif isinstance(config, list):
        for v in config:
            yield from _leaves(v)


def _stored(redis):
    """(hash key, field, raw JSON text, context, kind) for every stored secret-bearing field."""
    ids = sorted(m.decode() for m in redis.smembers(keys.ACCOUNTS))
    pipe = redis.pipeline(transaction=False)
    for account in ids:
        pipe.hmget(keys.account(account), *CONFIG_FIELDS, "webhooks")
    for account, values in zip(ids, pipe.execute()):
        for name, raw in zip(CONFIG_FIELDS + ("webhooks",), values):
            if raw is not None:
                yield keys.account(account), name, raw.decode(), account_context(account), name
    for name, raw in zip(SECRET_SETTINGS, redis.hmget(keys.SETTINGS, list(SECRET_SETTINGS))):
        if raw is not None:
            yield keys.SETTINGS, name, raw.decode(), SETTINGS_CONTEXT, "setting"


def _values(raw: str, kind: str) -> list[str]:
    try:
        value = json.loads(raw)
    except ValueError:
        return []
    if kind in CONFIG_FIELDS:
        return list(_leaves(value))
    if kind == "webhooks":
        url = value.get("url") if isinstance(value, dict) else value
        return [url] if crypto.is_encrypted(url) or url_has_password(url) else []
    return [value] if isinstance(value, str) and value else []


def _transform(raw: str, kind: str, fn) -> str | None:
    """Apply fn to each secret value in the JSON text; None when nothing changed."""
    value = json.loads(raw)
    changed = False

    def apply(v):
        nonlocal changed
        out = fn(v)
        if out is None:
            return v
        changed = True
        return out

    if kind in CONFIG_FIELDS:
        value = _walk(value, apply)
    elif kind == "webhooks":
        if isinstance(value, dict) and isinstance(value.get("url"), str):
            value = {**value, "url": apply(value["url"])}
        elif isinstance(value, str):
            value = apply(value)
    elif isinstance(value, str) and value:
        value = apply(value)
    return json.dumps(value) if changed else None


def unknown_key_ids(redis, ring: crypto.Keyring) -> set[str]:
    """Key ids of stored secrets this keyring cannot read."""
    missing = set()
    for _, _, raw, _, kind in _stored(redis):
        for v in _values(raw, kind):
            kid = crypto.value_key_id(v)
            if kid is not None and not ring.has(kid):
                missing.add(kid)
    return missing


# HSET only if the field still holds what was read: an API write in between wins.
_CAS = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3]) return 1 end
return 0
"""


def _rewrite(redis, fn) -> int:
    count = 0
    for key, name, raw, context, kind in list(_stored(redis)):
        try:
            new = _transform(raw, kind, lambda v, context=context: fn(v, context))
        except ValueError:
            continue
        if new is not None and redis.eval(_CAS, 1, key, name, raw, new):
            count += 1
    return count


def migrate(redis, ring: crypto.Keyring) -> int:
    """Encrypt plaintext secrets written by older versions. -> fields rewritten."""
    return _rewrite(redis, lambda v, ctx: None if crypto.is_encrypted(v)
                    else crypto.encrypt(ring, v, ctx))


def rotate(redis, old: crypto.Keyring, new: crypto.Keyring) -> int:
    """Re-encrypt every secret under new.primary (readable with old or new). -> fields rewritten."""
    both = old.encrypting_with(new)
    count = _rewrite(redis, lambda v, ctx: crypto.rotate_value(both, new, v, ctx))
    redis.set(KEY_MARKER, new.primary_id)
    return count


def startup(redis, settings, *, generate: bool = False) -> crypto.Keyring:
    """Load the keyring for a process start (create the state-dir key when allowed), refuse
    stored secrets under a missing key, encrypt legacy plaintext. Raises KeyConfigError with
    the one line to print."""
    ring = crypto.load_keyring(encryption_key=settings.encryption_key, key_file=settings.key_file,
                               state_dir=settings.state_dir, generate=False)
    marker = None
    if ring is None:
        marker = redis.get(KEY_MARKER)
        if marker is not None:
            # a sibling process of the same start (same state dir) may have created the key
            # between our look at the state dir and at Redis: look again before refusing
            ring = crypto.load_keyring(state_dir=settings.state_dir, generate=False)
    if ring is None:
        if marker is not None and not generate:
            raise crypto.KeyConfigError(
                f"secrets in this Redis are encrypted with key id {marker.decode()}, which this "
                "process does not have: give it the same key (service.keyFile or "
                "service.encryptionKey) as the processes that created it")
        ring = crypto.load_keyring(state_dir=settings.state_dir, generate=True)
        log.warning("no encryption key configured: using %s/%s (key id %s); keep it, "
                    "every stored password is encrypted with it", settings.state_dir,
                    crypto.KEY_FILE_NAME, ring.primary_id)
        if not redis.set(KEY_MARKER, ring.primary_id, nx=True) and \
                redis.get(KEY_MARKER).decode() != ring.primary_id:
            # another machine generated its own key for this Redis at the same time
            raise crypto.KeyConfigError(
                "another process created a different encryption key for this Redis: give every "
                "process the same service.keyFile")
    else:
        redis.set(KEY_MARKER, ring.primary_id, nx=True)
    missing = unknown_key_ids(redis, ring)
    if missing:
        raise crypto.KeyUnavailable(sorted(missing)[0])
    migrated = migrate(redis, ring)
    if migrated:
        log.info("encrypted %d stored secret field(s) written in clear by an older version", migrated)
    install(ring)
    return ring
