"""Secrets in Redis (real Redis): records and settings stored encrypted, legacy plaintext
migrated, rotation, and the start-up refusal when a key is missing."""
from __future__ import annotations

import json
import os
import types

import pytest

from imapapi import accounts, crypto, keys, vault, webhook_settings
from imapapi.schemas import stash_payload, take_payload
from tests.fixtures.sealed import sealed_redis

K1, K2 = os.urandom(32), os.urandom(32)
PW = "Sup3r-Secret-Pw!"


@pytest.fixture
def r():
    with sealed_redis(K1) as client:
        yield client


def everything(r) -> bytes:
    out = []
    for key in r.scan_iter():
        kind = r.type(key)
        if kind == b"hash":
            out.append(repr(r.hgetall(key)))
        elif kind == b"string":
            out.append(repr(r.get(key)))
        else:
            out.append(repr(r.dump(key)))
    return "".join(out).encode()


def account(pw=PW):
    return {"account": "a1", "name": "A",
            "imap": {"host": "127.0.0.1", "port": 143, "auth": {"user": "u", "pass": pw}},
            "smtp": {"host": "127.0.0.1", "port": 25, "auth": {"user": "u", "pass": pw}},
            "webhooks": f"http://hook:{pw}@127.0.0.1:9/x"}


def test_account_secrets_stored_encrypted_read_in_clear(r):
    accounts.upsert(r, account())
    assert PW.encode() not in everything(r)
    stored = json.loads(r.hget(keys.account("a1"), "imap"))
    assert stored["host"] == "127.0.0.1" and stored["auth"]["user"] == "u"   # still inspectable
    assert crypto.is_encrypted(stored["auth"]["pass"])
    record = accounts.get_record(r, "a1")
    assert record["imap"]["auth"]["pass"] == PW and record["smtp"]["auth"]["pass"] == PW
    assert webhook_settings.account_webhook(r, "a1") == f"http://hook:{PW}@127.0.0.1:9/x"
    assert accounts.public_view(record)["imap"]["auth"]["pass"] == "******"


def test_reposting_unchanged_account_keeps_ciphertext(r):
    accounts.upsert(r, account())
    before = r.hget(keys.account("a1"), "imap")
    accounts.upsert(r, account())
    assert r.hget(keys.account("a1"), "imap") == before        # no spurious reconnect
    accounts.upsert(r, account("other-password"))
    assert r.hget(keys.account("a1"), "imap") != before


def test_ciphertext_copied_to_another_account_does_not_open(r):
    accounts.upsert(r, account())
    accounts.upsert(r, {**account(), "account": "a2"})
    r.hset(keys.account("a2"), "imap", r.hget(keys.account("a1"), "imap"))
    with pytest.raises(crypto.CryptoError):
        accounts.get_record(r, "a2")


def test_settings_secrets_encrypted(r):
    webhook_settings.save(r, {"webhookSecret": PW, "authServer": f"http://u:{PW}@127.0.0.1:1/",
                              "webhooks": "http://127.0.0.1:9/h"})
    assert PW.encode() not in everything(r)
    got = webhook_settings.get_all(r)
    assert got["webhookSecret"] == PW and got["authServer"].endswith("@127.0.0.1:1/")
    assert got["webhooks"] == "http://127.0.0.1:9/h"


def test_pending_payload_encrypted(r):
    ref = stash_payload(r, account())
    assert PW.encode() not in everything(r)
    assert take_payload(r, ref)["imap"]["auth"]["pass"] == PW


def write_legacy(r):
    """Records as an older version wrote them: everything in clear."""
    data = account()
    r.sadd(keys.ACCOUNTS, "a1")
    r.hset(keys.account("a1"), mapping={"account": "a1", "imap": json.dumps(data["imap"]),
                                        "smtp": json.dumps(data["smtp"]),
                                        "webhooks": json.dumps(data["webhooks"])})
    r.hset(keys.SETTINGS, "webhookSecret", json.dumps(PW))


def test_migrate_encrypts_legacy_plaintext(r):
    write_legacy(r)
    assert accounts.get_record(r, "a1")["imap"]["auth"]["pass"] == PW   # readable before
    assert vault.migrate(r, vault.keyring()) == 4
    assert PW.encode() not in everything(r)
    assert accounts.get_record(r, "a1")["smtp"]["auth"]["pass"] == PW
    assert webhook_settings.get_all(r, ["webhookSecret"])["webhookSecret"] == PW
    assert vault.migrate(r, vault.keyring()) == 0                       # idempotent


def test_rotate(r):
    accounts.upsert(r, account())
    webhook_settings.save(r, {"webhookSecret": PW})
    old, new = vault.keyring(), crypto.Keyring([K2])
    assert vault.rotate(r, old, new) == 4
    assert vault.unknown_key_ids(r, new) == set()
    assert vault.unknown_key_ids(r, old) == {crypto.key_id(K2)}
    vault.install(new)
    assert accounts.get_record(r, "a1")["imap"]["auth"]["pass"] == PW
    assert vault.rotate(r, new, new) == 0
    assert r.get(keys.SECRETS_KEY_ID).decode() == crypto.key_id(K2)


def settings(tmp_path, **kw):
    base = {"encryption_key": None, "key_file": None, "state_dir": str(tmp_path)}
    return types.SimpleNamespace(**{**base, **kw})


def test_startup_refuses_records_under_a_missing_key(r, tmp_path):
    accounts.upsert(r, account())                                       # under K1
    with pytest.raises(crypto.KeyUnavailable) as err:
        vault.startup(r, settings(tmp_path, encryption_key=K2.hex()))
    assert crypto.key_id(K1) in str(err.value) and "not configured" in str(err.value)
    ring = vault.startup(r, settings(tmp_path, encryption_key=K1.hex()))
    assert ring.primary == K1


def test_startup_generates_once_and_a_keyless_second_machine_refuses(r, tmp_path):
    ring = vault.startup(r, settings(tmp_path / "m1"), generate=True)
    assert (tmp_path / "m1" / crypto.KEY_FILE_NAME).exists()
    assert vault.startup(r, settings(tmp_path / "m1")).primary == ring.primary
    with pytest.raises(crypto.KeyConfigError, match="does not have"):
        vault.startup(r, settings(tmp_path / "m2"))
    assert not (tmp_path / "m2" / crypto.KEY_FILE_NAME).exists()



def test_startup_sees_a_key_a_sibling_process_created_meanwhile(r, tmp_path, monkeypatch):
    """Processes of one start share the state dir: one may create the key and mark Redis
    between another's look at the dir and at Redis. That one must use the key, not refuse."""
    real = crypto.load_keyring
    made = {}

    def sibling_wins_after_first_look(**kw):
        got = real(**kw)
        if not made:   # the sibling creates the key and marks Redis right after our first look
            made["ring"] = real(state_dir=str(tmp_path), generate=True)
            r.set(vault.KEY_MARKER, made["ring"].primary_id)
        return got

    monkeypatch.setattr(crypto, "load_keyring", sibling_wins_after_first_look)
    ring = vault.startup(r, settings(tmp_path))
    assert ring.primary == made["ring"].primary


def test_a_key_file_is_complete_whenever_it_exists(tmp_path):
    path = crypto.write_new_key_file(tmp_path / crypto.KEY_FILE_NAME)
    assert len(crypto.read_key_file(path)) == 1 and oct(path.stat().st_mode & 0o777) == "0o600"
    with pytest.raises(FileExistsError):
        crypto.write_new_key_file(path)
    assert [p.name for p in tmp_path.iterdir()] == [crypto.KEY_FILE_NAME]   # no temp file left

def test_startup_migrates_legacy(r, tmp_path):
    write_legacy(r)
    vault.startup(r, settings(tmp_path, encryption_key=K1.hex()))
    assert PW.encode() not in everything(r)
