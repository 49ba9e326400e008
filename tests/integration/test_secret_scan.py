"""No secret in clear anywhere (issue 12): a representative flow with known passwords, a webhook
secret, an auth server password and an API token, then every key of the test Redis DB (all
types, Celery queues and kombu message bodies included) and every process log is scanned."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest

from tests.checks import wait_until
from tests.integration.helpers import message

pytestmark = pytest.mark.integration


def values(redis, key: bytes) -> list[bytes]:
    """Every byte string stored under a key, whatever its type."""
    kind = redis.type(key)
    if kind == b"string":
        return [redis.get(key) or b""]
    if kind == b"hash":
        return [x for kv in redis.hgetall(key).items() for x in kv]
    if kind == b"list":
        return redis.lrange(key, 0, -1)
    if kind == b"set":
        return list(redis.smembers(key))
    if kind == b"zset":
        return [m for m, _ in redis.zrange(key, 0, -1, withscores=True)]
    if kind == b"stream":
        return [x for _, fields in redis.xrange(key, "-", "+") for kv in fields.items() for x in kv]
    return [redis.dump(key) or b""]


def unwrapped(value: bytes) -> list[bytes]:
    """A value plus what hides inside it: kombu messages carry base64 bodies (task args)."""
    out = [value]
    try:
        doc = json.loads(value)
    except (ValueError, UnicodeDecodeError):
        return out
    docs = doc if isinstance(doc, list) else [doc]
    for item in docs:
        if isinstance(item, dict) and isinstance(item.get("body"), str):
            try:
                out.append(base64.b64decode(item["body"]))
            except ValueError:
                pass
    return out


def hits(haystacks: dict[str, bytes], needles: dict[str, str]) -> list[str]:
    found = []
    for where, data in haystacks.items():
        for name, secret in needles.items():
            if secret.encode() in data:
                found.append(f"{name} in {where}")
    return found


def test_no_secret_in_redis_or_logs(api, stack, redis, new_account, smtp, webhook_receiver):
    tag = str(int(time.time() * 1000))
    imap_pw = f"imapPw{tag}Xq"
    hook_pw = f"hookPw{tag}Zr"
    webhook_secret = f"whSecret{tag}Yk"
    auth_pw = f"authPw{tag}Wm"
    smtp_cfg = smtp.account_config(secure=False)
    account_id = f"scan{tag}"

    # protocol log on for this account: the LOGIN line must be stored redacted
    assert api.post("/v1/settings", json={"logs": {"accounts": [account_id]}}).status_code == 200
    saved = api.post("/v1/settings", json={
        "webhookSecret": webhook_secret, "authServer": f"http://creds:{auth_pw}@127.0.0.1:9/",
        "webhookEvents": ["*"]})
    assert saved.status_code == 200, saved.text
    # an API token (auth goes on for the API while it exists; revoked at the end)
    created = api.post("/v1/tokens", json={"scopes": ["*"], "description": "scan"})
    assert created.status_code == 200, created.text
    token = created.json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    try:
        wait_until(lambda: api.get("/v1/accounts").status_code == 401, 10)
        # a wrong token is logged as a failure, without the token
        assert api.get("/v1/accounts", headers={"Authorization": f"Bearer {token}x"}).status_code == 401
        api.headers.update(headers)
        stack.http.headers.update(headers)      # wait_state polls through its own session
        hook = webhook_receiver.url("scan").replace("http://", f"http://hook:{hook_pw}@")
        acc = new_account(account=account_id, password=imap_pw, smtp=smtp_cfg, webhooks=hook)
        assert api.get("/v1/accounts").status_code == 200
        assert api.get(f"/v1/account/{acc.id}").json()["imap"]["auth"]["pass"] == "******"
        acc.append(message(f"scan {tag}"))
        entries = wait_until(lambda: api.get(f"/v1/account/{acc.id}/messages",
                                             params={"path": "INBOX"}).json().get("messages"), 20)
        msg_id = entries[0]["id"]
        source = api.get(f"/v1/account/{acc.id}/message/{msg_id}/source",
                         params={"access_token": token}, headers={"Authorization": None})
        assert source.status_code == 200 and f"scan {tag}".encode() in source.content
        sent = api.post(f"/v1/account/{acc.id}/submit", json={
            "from": {"address": "sender@example.com"}, "to": [{"address": "bob@example.com"}],
            "subject": f"sent {tag}", "text": "hello"})
        assert sent.status_code in (200, 202), sent.text
        smtp.wait_for(1)
        # the webhook arrived signed over "<timestamp>.<body>", with Basic auth from the URL
        webhook_receiver.wait_for(
            lambda evs: any(e.get("event") == "messageNew" for e in evs), 30, "scan")
        got = [r for r in webhook_receiver.received("scan")
               if r["json"] and r["json"].get("event") == "messageNew"][0]
        ts = got["headers"]["x-imapapi-timestamp"]
        assert got["headers"]["x-imapapi-signature"] == hmac.new(
            webhook_secret.encode(), ts.encode() + b"." + got["body"], hashlib.sha256).hexdigest()
        assert got["headers"]["authorization"] == "Basic " + base64.b64encode(
            f"hook:{hook_pw}".encode()).decode()
        wait_until(lambda: redis.exists(f"iam:{acc.id}:g"), 10)
    finally:
        api.headers.pop("Authorization", None)
        stack.http.headers.pop("Authorization", None)
        api.delete(f"/v1/tokens/{created.json()['id']}", headers=headers)
        api.post("/v1/settings", json={"webhookSecret": "", "authServer": "",
                                       "logs": {"accounts": []}})
    wait_until(lambda: api.get("/v1/accounts").status_code == 200, 10)   # open again

    needles = {"imap password": imap_pw, "smtp password": smtp_cfg["auth"]["pass"],
               "webhook URL password": hook_pw, "webhook secret": webhook_secret,
               "auth server password": auth_pw, "API token": token}
    haystacks = {}
    keys = list(redis.scan_iter(count=1000))
    assert len(keys) > 20                                    # the flow really left data behind
    types = {redis.type(k) for k in keys}
    assert {b"hash", b"stream", b"string"} <= types
    for key in keys:
        for i, value in enumerate(values(redis, key)):
            for j, part in enumerate(unwrapped(value)):
                haystacks[f"redis {key.decode(errors='replace')}[{i}.{j}]"] = part
    logs = sorted(stack.log_dir.glob("**/*.log"))
    assert logs
    for path in logs:
        haystacks[f"log {path.name}"] = path.read_bytes()
    assert b"auth 401" in b"".join(p.read_bytes() for p in logs)   # the failure was logged
    # the scan does find what is stored in clear (ids, users): it would find a leaked secret
    assert hits(haystacks, {"account id": account_id, "smtp user": smtp_cfg["auth"]["user"]})
    assert not hits(haystacks, needles), hits(haystacks, needles)
