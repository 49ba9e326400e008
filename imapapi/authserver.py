"""Credentials for useAuthServer accounts: GET <authServer>?account=&proto= on every connect/send."""
from __future__ import annotations

import json
from urllib.parse import unquote, urlsplit, urlunsplit

import requests

from . import __version__, keys, urlsafety, webhook_settings
from .accounts import request_reconnect

CODE = "HTTPRequestError"            # lastError.serverResponseCode, as the original
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 10.0
USER_AGENT = f"imapapi-py/{__version__}"
MAX_BODY = 64 * 1024                 # a credentials answer is tiny; don't buffer a huge one
LIMITS = {"user": 256, "pass": 256, "accessToken": 4096}


class AuthServerError(Exception):
    """Credentials could not be fetched. The message is safe to store and show: it never
    contains the answer body or the URL's userinfo (either may hold secrets)."""

    code = CODE

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def uses_auth_server(config) -> bool:
    return isinstance(config, dict) and config.get("useAuthServer") is True


def validate(payload) -> dict:
    """The answer JSON -> {"user", "pass"} or {"user", "accessToken"} (unknown keys stripped)."""
    if not isinstance(payload, dict):
        raise AuthServerError("Auth server response is not a JSON object")
    user = payload.get("user")
    if not isinstance(user, str) or not user:
        raise AuthServerError("Auth server response has no user")
    present = [k for k in ("pass", "accessToken") if payload.get(k) is not None]
    if len(present) != 1:
        raise AuthServerError("Auth server response must have exactly one of pass or accessToken")
    key = present[0]
    secret = payload[key]
    if not isinstance(secret, str) or (key == "accessToken" and not secret):
        raise AuthServerError(f"Auth server response has an invalid {key}")
    for name, value in (("user", user), (key, secret)):
        if len(value) > LIMITS[name]:
            raise AuthServerError(f"Auth server response {name} is longer than {LIMITS[name]}")
    return {"user": user, key: secret}


def build_request(url: str, account: str, proto: str) -> tuple[str, dict, tuple | None]:
    """-> (url without userinfo, query params, Basic auth pair or None). Pure."""
    parts = urlsplit(url)
    auth = None
    if parts.username is not None:
        auth = (unquote(parts.username), unquote(parts.password or ""))
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = host + (f":{parts.port}" if parts.port else "")
        url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return url, {"account": account, "proto": proto}, auth


_sessions: dict = {}


def _session():
    # connect-time target check: link-local/metadata refused, private per outbound.allowPrivate
    from .settings import get_settings

    allow = get_settings().outbound_allow_private
    if allow not in _sessions:
        _sessions[allow] = urlsafety.session(allow_private=allow)
    return _sessions[allow]


def server_url(redis) -> str | None:
    value = webhook_settings.get_all(redis, ["authServer"])["authServer"]
    return value if isinstance(value, str) and value else None


def fetch(redis, account: str, proto: str, *, timeout: float = READ_TIMEOUT) -> dict:
    """Ask the auth server for this account's credentials; raises AuthServerError."""
    url = server_url(redis)
    if not url:
        raise AuthServerError("Auth server is not configured (authServer setting)")
    url, params, auth = build_request(url, account, proto)
    try:
        resp = _session().get(url, params=params, auth=auth, allow_redirects=False, stream=True,
                            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
                            timeout=(min(CONNECT_TIMEOUT, timeout), timeout))
        try:
            if not 200 <= resp.status_code < 300:
                raise AuthServerError(f"Auth server answered HTTP {resp.status_code}")
            body = b""
            for chunk in resp.iter_content(8192):
                body += chunk
                if len(body) > MAX_BODY:
                    break
        finally:
            resp.close()
    except requests.Timeout:
        raise AuthServerError("Auth server did not answer in time") from None
    except requests.ConnectionError:
        raise AuthServerError("Cannot connect to the auth server") from None
    except (requests.RequestException, OSError) as exc:
        raise AuthServerError(f"Auth server request failed ({type(exc).__name__})") from None
    if len(body) > MAX_BODY:
        raise AuthServerError("Auth server response is too large")
    try:
        payload = json.loads(body)
    except ValueError:
        raise AuthServerError("Auth server response is not valid JSON") from None
    return validate(payload)


def resolve(redis, account: str, proto: str, config: dict, *,
            timeout: float = READ_TIMEOUT) -> dict:
    """The config to log in with: unchanged, or with `auth` from the auth server when
    useAuthServer is set. The result is for this one login only: never store it."""
    if not uses_auth_server(config):
        return config
    return {**config, "auth": fetch(redis, account, proto, timeout=timeout)}


def retry_waiting(redis) -> list[str]:
    """Accounts parked in authenticationError by a failed fetch: ask for a reconnect now (the
    authServer setting changed), instead of waiting out the auth-error backoff (minutes)."""
    ids = sorted(m.decode() for m in redis.smembers(keys.ACCOUNTS))
    pipe = redis.pipeline(transaction=False)
    for account in ids:
        pipe.hmget(keys.account(account), "state", "lastErrorState")
    waiting = []
    for account, (state, error) in zip(ids, pipe.execute()):
        if state == b"authenticationError" and error and CODE.encode() in error:
            waiting.append(account)
    for account in waiting:
        # Same signal as PUT /reconnect: the sidecar sees a new reconnectRequested and restarts.
        request_reconnect(redis, account)
    return waiting


def xoauth2(user: str, token: str) -> str:
    """The SASL XOAUTH2 initial response (Google/Microsoft format), before base64."""
    return f"user={user}\x01auth=Bearer {token}\x01\x01"
