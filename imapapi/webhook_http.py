"""Webhook HTTP: signed POSTs with timeouts (imapapi.urlsafety sessions), the test POST, the log of recent deliveries."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import time
from urllib.parse import urlsplit, urlunsplit

import requests

from . import keys, stats, urlsafety, webhook_settings
from .settings import get_settings

log = logging.getLogger(__name__)
USER_AGENT = "imapapi-py/0.1"
RECENT = keys.WEBHOOK_RECENT
RECENT_MAX = 200
# Called with each recorded delivery (the worker's Prometheus metrics register here).
ON_DELIVERY: list = []


def sign(body: bytes, secret: str | None, timestamp: int | str) -> str | None:
    """Hex HMAC-SHA256 over "<timestamp>.<raw body>": the receiver checks both, so a captured
    delivery cannot be replayed later (docs/security.md has the check in Python)."""
    if not secret:
        return None
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


_sessions: dict[bool, "requests.Session"] = {}


def _session():
    # connect-time target check (link-local/metadata always refused, private per setting);
    # redirects are never followed
    allow = get_settings().outbound_allow_private
    if allow not in _sessions:
        _sessions[allow] = urlsafety.session(allow_private=allow)
    return _sessions[allow]


def split_auth(url: str) -> tuple[str, str | None]:
    """URL userinfo becomes Basic auth (as the original); -> (url without it, header or None)."""
    parts = urlsplit(url)
    if not parts.username:
        return url, None
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    cred = f"{parts.username}:{parts.password or ''}".encode()
    return (urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)),
            "Basic " + base64.b64encode(cred).decode())


def post(url: str, body: bytes, event_id: str, secret: str | None, timeout: float):
    """One POST; -> None on 2xx, else an error string. Never waits longer than the timeouts."""
    return post_detailed(url, body, event_id, secret, timeout)["error"]


def post_detailed(url: str, body: bytes, event_id: str, secret: str | None,
                  timeout: float) -> dict:
    """One POST -> {error (None on 2xx), status (None without an answer), seconds, response
    (the first 500 characters the receiver answered)}."""
    url, auth = split_auth(url)
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
               "X-IMAPAPI-Event-Id": event_id}
    timestamp = str(int(time.time()))
    signature = sign(body, secret, timestamp)
    if signature:
        headers["X-IMAPAPI-Timestamp"] = timestamp
        headers["X-IMAPAPI-Signature"] = signature
    if auth:
        headers["Authorization"] = auth
    started = time.monotonic()
    try:
        resp = _session().post(url, data=body, headers=headers, allow_redirects=False,
                             timeout=(min(3.0, timeout), timeout))
    except requests.RequestException as exc:
        return {"error": f"{type(exc).__name__}: {exc}"[:500], "status": None,
                "seconds": time.monotonic() - started, "response": None}
    out = {"error": None, "status": resp.status_code, "seconds": time.monotonic() - started,
           "response": resp.text[:500]}
    if not 200 <= resp.status_code < 300:
        out["error"] = f"HTTP {resp.status_code}"
    return out


def safe_url(url: str) -> str:
    """The URL without its userinfo (what the UI and logs may show)."""
    return split_auth(url)[0]


def record(redis, entry: dict) -> None:
    """Keep the last RECENT_MAX deliveries for the web UI and count them for /v1/stats."""
    try:
        pipe = redis.pipeline(transaction=False)
        pipe.lpush(RECENT, json.dumps(entry, separators=(",", ":")))
        pipe.ltrim(RECENT, 0, RECENT_MAX - 1)
        pipe.execute()
    except Exception:   # bookkeeping only: never fail a delivery over it
        pass
    stats.safe_incr(redis, {"webhooks:success" if entry.get("ok") else "webhooks:fail": 1})
    run_hooks(entry)


def run_hooks(entry: dict) -> None:
    for hook in ON_DELIVERY:
        try:
            hook(entry)
        except Exception:   # metrics must not break delivery
            log.exception("delivery hook failed")


def recent(redis, count: int = 50) -> list[dict]:
    return [json.loads(r) for r in redis.lrange(RECENT, 0, count - 1)]


def send_test(redis, url: str | None = None) -> dict:
    """POST a `test` event to the webhook URL now (no retries) -> what the receiver answered."""
    url = url or webhook_settings.target(redis, None)
    if not url:
        return {"error": "No webhook URL is set", "status": None, "seconds": 0.0,
                "response": None, "url": None}
    event = {"id": "test-" + os.urandom(8).hex(), "account": None, "event": "test",
             "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
             "data": {"message": "Test webhook from IMAP API"}}
    body = json.dumps(event, separators=(",", ":")).encode()
    result = post_detailed(url, body, event["id"], webhook_settings.secret(redis),
                           get_settings().webhook_timeout)
    result["url"] = safe_url(url)
    result["id"] = event["id"]
    return result
