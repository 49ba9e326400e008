"""Secrets at rest: AES-256-GCM round trips, owner binding, key ids, key files, rotation."""
from __future__ import annotations

import os
import stat

import pytest

from imapapi import crypto


def ring(*keys, **kw):
    return crypto.Keyring(list(keys), **kw)


K1, K2 = os.urandom(32), os.urandom(32)


def test_round_trip_and_format():
    r = ring(K1)
    value = crypto.encrypt(r, "verysecret", "account:a")
    assert value.startswith(f"$ia1${crypto.key_id(K1)}$")
    assert "verysecret" not in value
    assert crypto.decrypt(r, value, "account:a") == "verysecret"
    # a fresh nonce every time: equal passwords do not give equal ciphertexts
    assert crypto.encrypt(r, "verysecret", "account:a") != value


def test_ciphertext_cannot_move_to_another_account():
    r = ring(K1)
    value = crypto.encrypt(r, "pw", "account:a")
    with pytest.raises(crypto.CryptoError) as err:
        crypto.decrypt(r, value, "account:b")
    assert "pw" not in str(err.value)


@pytest.mark.parametrize("mangle", [
    lambda v: v[:-2] + ("A" if v[-2] != "A" else "B") + v[-1],   # flipped ciphertext bits
    lambda v: v[:12],                                            # truncated
    lambda v: "$ia1$nodollar",                                   # no key id separator
    lambda v: v + "!!",                                          # not base64
])
def test_altered_values_are_refused(mangle):
    r = ring(K1)
    with pytest.raises(crypto.CryptoError):
        crypto.decrypt(r, mangle(crypto.encrypt(r, "pw", "c")), "c")


def test_missing_key_is_named_not_guessed():
    value = crypto.encrypt(ring(K1), "pw", "c")
    with pytest.raises(crypto.KeyUnavailable) as err:
        crypto.decrypt(ring(K2), value, "c")
    assert err.value.kid == crypto.key_id(K1)
    assert crypto.key_id(K1) in str(err.value)


def test_plaintext_passes_through_and_seal_is_idempotent():
    r = ring(K1)
    assert crypto.decrypt(r, "legacy-plain", "c") == "legacy-plain"
    sealed = crypto.seal(r, "legacy-plain", "c")
    assert crypto.is_encrypted(sealed) and crypto.seal(r, sealed, "c") == sealed


def test_keyring_reads_all_keys_encrypts_with_first():
    old = crypto.encrypt(ring(K2), "pw", "c")
    both = ring(K1, K2)
    assert crypto.decrypt(both, old, "c") == "pw"
    assert crypto.value_key_id(crypto.encrypt(both, "x", "c")) == crypto.key_id(K1)


def test_rotate_value():
    old, new = ring(K1), ring(K2)
    value = crypto.encrypt(old, "pw", "c")
    rotated = crypto.rotate_value(old, new, value, "c")
    assert crypto.value_key_id(rotated) == crypto.key_id(K2)
    assert crypto.decrypt(new, rotated, "c") == "pw"
    assert crypto.rotate_value(old, new, rotated, "c") is None        # already done: skipped
    plain = crypto.rotate_value(old, new, "legacy", "c")               # plaintext gets encrypted
    assert crypto.decrypt(new, plain, "c") == "legacy"


@pytest.mark.parametrize("text", [K1.hex(), K1.hex().upper()])
def test_parse_key_hex(text):
    assert crypto.parse_key(text) == K1


def test_parse_key_base64_and_passphrase():
    import base64
    assert crypto.parse_key(base64.b64encode(K1).decode()) == K1
    assert crypto.parse_key(base64.urlsafe_b64encode(K1).decode().rstrip("=")) == K1
    derived = crypto.parse_key("correct horse battery staple")
    assert len(derived) == 32 and derived == crypto.parse_key("correct horse battery staple")
    with pytest.raises(crypto.KeyConfigError):
        crypto.parse_key("short")


def test_generated_key_file_is_private_and_never_overwritten(tmp_path):
    path = crypto.write_new_key_file(tmp_path / "state" / "secret.key")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    keys = crypto.read_key_file(path)
    assert len(keys) == 1 and len(keys[0]) == 32
    with pytest.raises(FileExistsError):
        crypto.write_new_key_file(path)
    assert crypto.read_key_file(path) == keys


def test_load_keyring_precedence_and_generation(tmp_path):
    assert crypto.load_keyring(state_dir=str(tmp_path)) is None          # nothing, no generate
    r = crypto.load_keyring(state_dir=str(tmp_path), generate=True)
    again = crypto.load_keyring(state_dir=str(tmp_path), generate=True)
    assert r.primary == again.primary                                      # same key next start
    key_file = tmp_path / "k"
    key_file.write_text(f"# comment\n{K1.hex()}\n{K2.hex()}\n")
    from_file = crypto.load_keyring(key_file=str(key_file), state_dir=str(tmp_path))
    assert from_file.primary == K1 and set(from_file.ids) == {crypto.key_id(K1), crypto.key_id(K2)}
    explicit = crypto.load_keyring(encryption_key=K2.hex(), key_file=str(key_file))
    assert explicit.primary == K2


def test_bad_key_file_is_one_clear_error(tmp_path):
    with pytest.raises(crypto.KeyConfigError, match="cannot read key file"):
        crypto.load_keyring(key_file=str(tmp_path / "missing"))
    (tmp_path / "empty").write_text("# nothing\n")
    with pytest.raises(crypto.KeyConfigError, match="holds no key"):
        crypto.load_keyring(key_file=str(tmp_path / "empty"))


def test_unknown_key_id_rereads_the_key_file(tmp_path, monkeypatch):
    monkeypatch.setattr(crypto, "_RELOAD_EVERY", 0.0)
    key_file = tmp_path / "k"
    key_file.write_text(K1.hex() + "\n")
    r = crypto.load_keyring(key_file=str(key_file))
    value = crypto.encrypt(ring(K2), "pw", "c")
    with pytest.raises(crypto.KeyUnavailable):
        crypto.decrypt(r, value, "c")
    key_file.write_text(K1.hex() + "\n" + K2.hex() + "\n")   # operator adds the next key
    assert crypto.decrypt(r, value, "c") == "pw"
