"""API tokens on real Redis: shown once, only the hash stored, scopes, account binding, revoke."""
from __future__ import annotations

import os

import pytest
import redis as redis_lib

from imapapi import tokens


@pytest.fixture
def r():
    db = int(os.environ.get("IMAPAPI_TEST_REDIS_DB", "13"))
    client = redis_lib.Redis.from_url(f"redis://127.0.0.1:6379/{db}")
    client.flushdb()
    tokens._used_written.clear()
    yield client
    client.flushdb()
    client.close()


def dump_everything(r) -> bytes:
    out = b""
    for key in r.scan_iter():
        out += key + repr(r.hgetall(key) if r.type(key) == b"hash" else r.dump(key)).encode()
    return out


def test_create_stores_only_the_hash(r):
    token, record = tokens.create(r, ["api"], description="ci")
    assert len(token) >= 43 and set(token) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert record["scopes"] == ["api"] and record["account"] is None and record["id"]
    assert token.encode() not in dump_everything(r)
    assert tokens.digest(token).encode() in r.hkeys(tokens.TOKENS)


def test_verify_and_last_used(r):
    token, record = tokens.create(r, ["*"])
    assert tokens.list_tokens(r)[0]["lastUsed"] is None
    got = tokens.verify(r, token)
    assert got["id"] == record["id"] and "hash" not in got
    assert tokens.list_tokens(r)[0]["lastUsed"]
    assert tokens.verify(r, token + "x") is None
    assert tokens.verify(r, "") is None and tokens.verify(r, None) is None
    assert tokens.verify(r, "a" * 5000) is None


def test_revoke_by_id_or_token(r):
    t1, rec1 = tokens.create(r, ["api"])
    t2, _ = tokens.create(r, ["metrics"])
    assert tokens.revoke(r, rec1["id"]) and tokens.verify(r, t1) is None
    assert not tokens.revoke(r, rec1["id"])
    assert tokens.revoke(r, t2) and not tokens.any_exist(r)
    assert not tokens.revoke(r, "")


def test_list_never_shows_secrets(r):
    token, _ = tokens.create(r, ["api", "ui"], account="acc1", description="d")
    rows = tokens.list_tokens(r)
    assert len(rows) == 1 and set(rows[0]) == {"id", "scopes", "account", "description",
                                               "created", "lastUsed"}
    assert token not in repr(rows) and tokens.digest(token) not in repr(rows)


@pytest.mark.parametrize("scopes,account,scope,target,ok", [
    (["api"], None, "api", "a", True),
    (["api"], None, "api", None, True),
    (["api"], None, "metrics", None, False),
    (["*"], None, "metrics", None, True),
    (["*"], None, "ui", None, True),
    (["api"], "a", "api", "a", True),
    (["api"], "a", "api", "b", False),       # another account's routes
    (["api"], "a", "api", None, False),      # global routes
    (["*"], "a", "api", "b", False),
    (["metrics"], None, "api", "a", False),
])
def test_allows(scopes, account, scope, target, ok):
    assert tokens.allows({"scopes": scopes, "account": account}, scope, target) is ok


@pytest.mark.parametrize("scopes", [[], ["root"], ["api", "nope"], None])
def test_bad_scopes(r, scopes):
    with pytest.raises(ValueError):
        tokens.create(r, scopes)
