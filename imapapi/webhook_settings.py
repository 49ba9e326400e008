"""Runtime settings stored in Redis (webhooks, event filter, notifyText/Headers) and who gets what."""
from __future__ import annotations

import json

from . import keys, vault
from .settings import get_settings

# name -> default when unset (GET shows null for unset keys, as the original)
KEYS = ("webhooks", "webhookEvents", "notifyText", "notifyTextSize", "notifyHeaders",
        "webhookSecret", "authServer")   # authServer: read by imapapi/authserver.py
SECRET_KEYS = ("webhookSecret",)


def get_all(redis, names=KEYS) -> dict:
    """Stored values (JSON-decoded); unset or unreadable -> None."""
    names = list(names)
    raw = redis.hmget(keys.SETTINGS, names) if names else []
    out = {}
    for name, value in zip(names, raw):
        try:
            out[name] = json.loads(value) if value is not None else None
        except ValueError:
            out[name] = None
        out[name] = vault.open_setting(name, out[name])   # webhookSecret/authServer: encrypted
    return out


def save(redis, values: dict) -> list[str]:
    """Store each given key as JSON (secrets encrypted); None removes it. -> names updated.
    A webhook or auth server URL aimed at a refused address (imapapi.urlsafety) is a 400."""
    check_targets(values)
    pipe = redis.pipeline(transaction=True)
    for name, value in values.items():
        if value is None:
            pipe.hdel(keys.SETTINGS, name)
        else:
            pipe.hset(keys.SETTINGS, name, json.dumps(vault.seal_setting(name, value)))
    pipe.execute()
    return list(values)


def account_webhook(redis, account: str) -> str | None:
    """The per-account override (account field `webhooks`: a URL string, or {url: ...})."""
    return _account_url(redis.hget(keys.account(account), "webhooks"), account)


def _account_url(raw, account: str) -> str | None:
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw.decode() if isinstance(raw, bytes) else raw
    if isinstance(value, dict):
        value = value.get("url")
    value = vault.open_webhook(value, account)   # a URL with a password is stored encrypted
    return value if isinstance(value, str) and value else None


def sync_view(redis, account: str, names) -> tuple[dict, str | None]:
    """get_all(names) and target(account) in one round trip -> (values, target URL). Every
    sync pass of a sidecar reads both, and an account's connect read them six times over (its
    authenticationSuccess event, then the first pass): ~4 of its ~17 Redis round trips."""
    names = [n for n in names if n != "webhooks"]
    pipe = redis.pipeline(transaction=False)
    pipe.hget(keys.account(account), "webhooks")
    pipe.hmget(keys.SETTINGS, names + ["webhooks"])
    own, raw = pipe.execute()
    values = {}
    for name, value in zip(names + ["webhooks"], raw):
        try:
            values[name] = json.loads(value) if value is not None else None
        except ValueError:
            values[name] = None
        values[name] = vault.open_setting(name, values[name])
    url = _account_url(own, account) or values.pop("webhooks")
    values.pop("webhooks", None)
    return values, url if isinstance(url, str) and url else None


def target(redis, account: str | None) -> str | None:
    """Webhook URL for an account: its own override, else the global setting."""
    if account:
        own = account_webhook(redis, account)
        if own:
            return own
    url = get_all(redis, ["webhooks"])["webhooks"]
    return url if isinstance(url, str) and url else None


def event_allowed(filter_value, event: str) -> bool:
    """webhookEvents: never set -> all; '*' -> all; [] blocks everything."""
    if filter_value is None:
        return True
    if not isinstance(filter_value, list):
        return True
    return "*" in filter_value or event in filter_value


def wanted_for(redis, account: str, event: str) -> bool:
    """Should a webhook job be registered for this event right now?"""
    if not target(redis, account):
        return False
    return event_allowed(get_all(redis, ["webhookEvents"])["webhookEvents"], event)


def secret(redis) -> str | None:
    """The HMAC secret: the stored setting wins over the process setting (service.secret)."""
    stored = get_all(redis, ["webhookSecret"])["webhookSecret"]
    if isinstance(stored, str) and stored:
        return stored
    return get_settings().webhook_secret


def check_targets(values: dict) -> None:
    """400 naming the field for an IP-literal target that is never contacted (link-local,
    metadata; private too with outbound.allowPrivate=0). Names are checked when connecting."""
    from .errors import BadRequest
    from .settings import get_settings
    from .urlsafety import url_problem

    allow = get_settings().outbound_allow_private
    bad = [{"key": name, "message": problem} for name in ("webhooks", "authServer")
           if isinstance(values.get(name), str) and values[name]
           and (problem := url_problem(values[name], allow_private=allow))]
    if bad:
        raise BadRequest("Invalid input", code="InvalidInput", fields=bad)
