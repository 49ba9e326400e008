"""Per-account IMAP protocol logs: the `logs` setting, the capped Redis list, and redaction.

Opt-in as the original (`POST /v1/settings {"logs": {"all", "accounts", "maxLogLines"}}`): the
sidecar appends each protocol line (both directions, time, connection id) to `iam:{account}:g`
while logging is on for the account; turning it off deletes the list. Credentials never reach
Redis: LOGIN/AUTHENTICATE arguments, SASL continuation payloads (XOAUTH2 tokens) are replaced
before a line is stored, and literals longer than LITERAL_MAX are cut with their size noted.
"""
from __future__ import annotations

import json
import re
import time

from . import keys

DEFAULTS = {"all": False, "accounts": [], "maxLogLines": 10000}
LOGGED = keys.LOGGED                # what "off" deletes
SETTINGS_CHANNEL = keys.SETTINGS_CHANNEL
LITERAL_MAX = 256               # bytes of a literal kept in the log; the rest is cut
LINE_MAX = 2048                 # characters of one line kept
REDACTED = "[redacted]"


def log_key(account: str) -> str:
    """LIST: the account's protocol log (JSON lines, oldest first)."""
    return keys.account_prefix(account) + "g"


def normalize(value) -> dict:
    """The stored `logs` setting with defaults filled in (unset or malformed -> logging off)."""
    out = dict(DEFAULTS)
    if isinstance(value, dict):
        out["all"] = bool(value.get("all", False))
        accounts = value.get("accounts") or []
        out["accounts"] = [str(a) for a in accounts if isinstance(a, str)]
        try:
            out["maxLogLines"] = max(0, int(value.get("maxLogLines", DEFAULTS["maxLogLines"])))
        except (TypeError, ValueError):
            pass
    return out


def get(redis) -> dict:
    raw = redis.hget(keys.SETTINGS, "logs")
    try:
        return normalize(json.loads(raw) if raw else None)
    except ValueError:
        return dict(DEFAULTS)


def enabled(setting: dict, account: str) -> bool:
    return bool(setting["maxLogLines"]) and (setting["all"] or account in setting["accounts"])


def save(redis, value: dict) -> dict:
    """Store the `logs` setting (resetLoggedAccounts is an action, not stored), delete the logs
    of accounts no longer logged, and tell the sidecars. -> the stored setting."""
    setting = normalize(value)
    redis.hset(keys.SETTINGS, "logs", json.dumps(setting))
    prune(redis, setting)
    redis.publish(SETTINGS_CHANNEL, "logs")
    return setting


def prune(redis, setting: dict | None = None) -> list[str]:
    """Delete the log list of every account whose logging is off; -> those accounts."""
    setting = setting or get(redis)
    gone = []
    for raw in redis.smembers(LOGGED):
        account = raw.decode() if isinstance(raw, bytes) else raw
        if not enabled(setting, account):
            gone.append(account)
    if gone:
        pipe = redis.pipeline(transaction=True)
        for account in gone:
            pipe.delete(log_key(account))
            pipe.srem(LOGGED, account)
        pipe.execute()
    return gone


def set_account(redis, account: str, on: bool) -> dict:
    """Turn logging on or off for one account (the web UI's per-account switch)."""
    setting = get(redis)
    accounts = [a for a in setting["accounts"] if a != account]
    if on:
        accounts.append(account)
    setting["accounts"] = accounts
    return save(redis, setting)


# Only while the account exists: the LOGOUT of a deleted account is logged after the delete
# purged its keys, and must not bring the list (or its LOGGED member) back.
_APPEND = """
if redis.call('EXISTS', KEYS[3]) == 0 then return 0 end
redis.call('SADD', KEYS[1], ARGV[1])
for i = 3, #ARGV do redis.call('RPUSH', KEYS[2], ARGV[i]) end
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[2]), -1)
return 1
"""


def append(redis, account: str, entries: list[dict], max_lines: int) -> None:
    """RPUSH a batch of entries and trim to the last max_lines (one round trip)."""
    if not entries:
        return
    redis.eval(_APPEND, 3, LOGGED, log_key(account), keys.account(account), account, max_lines,
               *[json.dumps(e, separators=(",", ":"), ensure_ascii=False) for e in entries])


def read(redis, account: str, chunk: int = 1000):
    """Yield the stored lines (bytes, each ending in a newline), oldest first."""
    key = log_key(account)
    start = 0
    while True:
        rows = redis.lrange(key, start, start + chunk - 1)
        if not rows:
            return
        for row in rows:
            yield row + b"\n"
        start += len(rows)


def entry(src: str, cid: str, msg: str, now: float | None = None) -> dict:
    """One log line: t (epoch ms), cid (connection id), src 'c' (client) or 's' (server)."""
    return {"t": int((now or time.time()) * 1000), "cid": cid, "src": src, "msg": msg}


_COMMAND = re.compile(rb"^(\S+) (UID )?([A-Za-z]+)\b", re.I)
_LITERAL = re.compile(rb"\{(\d+)\+?\}$")


class Redactor:
    """Turns raw protocol lines into loggable text, per connection (it keeps the SASL state).

    client(): a line the client sent; server(): a line the server sent; literal(): the bytes of
    a literal that followed a `{n}` line in either direction.
    """

    def __init__(self):
        self._secret_tag: bytes | None = None   # until this tag's reply, client data is secret
        self._sasl = False                       # ... and server continuations too (SASL)

    @property
    def in_secret(self) -> bool:
        """Inside a LOGIN-with-literals or AUTHENTICATE exchange (client data is secret)."""
        return self._secret_tag is not None

    @staticmethod
    def _text(data: bytes) -> str:
        text = data.rstrip(b"\r\n").decode("utf-8", "replace")
        if len(text) > LINE_MAX:
            text = text[:LINE_MAX] + f"... [{len(text)} characters, cut]"
        return text

    def client(self, line: bytes) -> str:
        if self._secret_tag is not None:
            return REDACTED           # a SASL response (the XOAUTH2 token), a LOGIN literal line
        match = _COMMAND.match(line)
        if match:
            tag, command = match.group(1), match.group(3).upper()
            if command == b"LOGIN":
                if _LITERAL.search(line.rstrip(b"\r\n")):
                    self._secret_tag = tag   # arguments continue as literals
                return f"{tag.decode('ascii', 'replace')} LOGIN {REDACTED}"
            if command == b"AUTHENTICATE":
                self._secret_tag, self._sasl = tag, True
                parts = line.split()
                mech = parts[2].decode("ascii", "replace") if len(parts) > 2 else ""
                return f"{tag.decode('ascii', 'replace')} AUTHENTICATE {mech} {REDACTED}"
        return self._text(line)

    def server(self, line: bytes) -> str:
        if self._secret_tag is not None:
            if line.startswith(self._secret_tag + b" "):
                self._secret_tag, self._sasl = None, False
            elif self._sasl and line.startswith(b"+"):
                return "+ " + REDACTED if line.strip() != b"+" else "+"
        return self._text(line)

    def literal(self, data: bytes, src: str) -> str:
        if src == "c" and self._secret_tag is not None:
            return f"[{len(data)} bytes, {REDACTED}]"
        if len(data) > LITERAL_MAX:
            head = data[:LITERAL_MAX].decode("utf-8", "replace")
            return f"{head}... [literal {len(data)} bytes, cut]"
        return data.decode("utf-8", "replace")
