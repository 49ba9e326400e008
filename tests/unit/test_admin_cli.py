"""`imap-api tokens ...` and `imap-api secrets ...` through the console entry point (real Redis)."""
from __future__ import annotations

import json
import os
import stat

import pytest
import redis as redis_lib

from imapapi import accounts, crypto, settings as settings_mod, tokens, vault
from launcher.cli import main

KEY = "5e" * 32


@pytest.fixture
def env(monkeypatch, tmp_path):
    db = int(os.environ.get("IMAPAPI_TEST_REDIS_DB", "13"))
    url = f"redis://127.0.0.1:6379/{db}"
    client = redis_lib.Redis.from_url(url)
    client.flushdb()
    previous_settings, previous_ring = settings_mod.get_settings(), vault._ring
    monkeypatch.setenv("REDIS_URL", url)
    monkeypatch.setenv("ENCRYPTION_KEY", KEY)
    monkeypatch.setenv("IMAPAPI_DOTENV", "0")
    monkeypatch.setenv("STATE_DIR", str(tmp_path / "state"))
    yield client
    settings_mod.configure(previous_settings)
    vault.install(previous_ring)
    client.flushdb()
    client.close()


def test_tokens_create_list_revoke(env, capsys):
    assert main(["tokens", "create", "--scope=api", "--account=acc1", "--description=ci"]) == 0
    token = capsys.readouterr().out.strip()
    record = tokens.verify(env, token)
    assert record["scopes"] == ["api"] and record["account"] == "acc1"
    assert main(["tokens", "list"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["id"] for r in rows] == [record["id"]] and token not in json.dumps(rows)
    assert main(["tokens", "revoke", record["id"]]) == 0
    assert tokens.verify(env, token) is None
    with pytest.raises(SystemExit):
        main(["tokens", "revoke", record["id"]])


def test_secrets_genkey_rotate_check(env, tmp_path, capsys):
    vault.install(crypto.Keyring([bytes.fromhex(KEY)]))
    accounts.upsert(env, {"account": "a", "imap": {"host": "h", "auth": {"user": "u", "pass": "pw"}}})
    new_key = tmp_path / "new.key"
    assert main(["secrets", "genkey", str(new_key)]) == 0
    assert stat.S_IMODE(new_key.stat().st_mode) == 0o600
    assert main(["secrets", "check"]) == 0
    assert main(["secrets", "rotate", f"--new-key-file={new_key}"]) == 0
    assert "re-encrypted 1 field" in capsys.readouterr().out
    with pytest.raises(SystemExit):                     # the old key alone no longer opens it
        main(["secrets", "check"])
    os.environ["ENCRYPTION_KEY"] = ""
    os.environ["KEY_FILE"] = str(new_key)
    try:
        assert main(["secrets", "check"]) == 0
    finally:
        del os.environ["KEY_FILE"]
