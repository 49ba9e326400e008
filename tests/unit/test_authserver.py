"""Auth server: answer validation, request building (Basic auth, params), XOAUTH2 strings, settings."""
from __future__ import annotations

import base64

import pytest

from imapapi import authserver, keys
from imapapi.authserver import AuthServerError, build_request, validate, xoauth2
from imapapi.smtp import xoauth2_response
from tests.checks import assert_error

from .api_helpers import app, client, field_keys  # noqa: F401  (fixtures)


@pytest.mark.parametrize("payload, expected", [
    ({"user": "u@example.com", "pass": "secret"}, {"user": "u@example.com", "pass": "secret"}),
    ({"user": "u", "pass": ""}, {"user": "u", "pass": ""}),            # empty pass is allowed
    ({"user": "u", "accessToken": "tok"}, {"user": "u", "accessToken": "tok"}),
    ({"user": "u", "pass": "p", "extra": 1}, {"user": "u", "pass": "p"}),   # unknown keys stripped
    ({"user": "u", "pass": "p", "accessToken": None}, {"user": "u", "pass": "p"}),
    ({"user": "u", "accessToken": "t" * 4096}, {"user": "u", "accessToken": "t" * 4096}),
])
def test_valid_answers(payload, expected):
    assert validate(payload) == expected


@pytest.mark.parametrize("payload, message", [
    ([], "not a JSON object"),
    ("user", "not a JSON object"),
    (None, "not a JSON object"),
    ({"pass": "p"}, "no user"),
    ({"user": "", "pass": "p"}, "no user"),
    ({"user": 5, "pass": "p"}, "no user"),
    ({"user": "u"}, "exactly one of pass or accessToken"),
    ({"user": "u", "pass": "p", "accessToken": "t"}, "exactly one of pass or accessToken"),
    ({"user": "u", "pass": 123}, "invalid pass"),
    ({"user": "u", "accessToken": ""}, "invalid accessToken"),
    ({"user": "u" * 257, "pass": "p"}, "user is longer than 256"),
    ({"user": "u", "pass": "p" * 257}, "pass is longer than 256"),
    ({"user": "u", "accessToken": "t" * 4097}, "accessToken is longer than 4096"),
])
def test_invalid_answers_name_the_problem_without_the_secret(payload, message):
    with pytest.raises(AuthServerError) as info:
        validate(payload)
    assert message in info.value.message
    assert info.value.code == "HTTPRequestError"
    for secret in ("p" * 257, "t" * 4097, "123"):
        assert secret not in info.value.message


def test_request_params_and_basic_auth_from_userinfo():
    url, params, auth = build_request("https://ad%40min:p%3Ass@auth.example:8443/creds?x=1",
                                      "acc 1", "smtp")
    assert url == "https://auth.example:8443/creds?x=1"      # userinfo removed from the URL
    assert params == {"account": "acc 1", "proto": "smtp"}
    assert auth == ("ad@min", "p:ss")                         # percent-decoded
    assert build_request("http://[::1]:81/a", "a", "imap") == (
        "http://[::1]:81/a", {"account": "a", "proto": "imap"}, None)
    url, _, auth = build_request("http://user@[::1]/", "a", "imap")
    assert (url, auth) == ("http://[::1]/", ("user", ""))


def test_uses_auth_server_only_when_true():
    assert authserver.uses_auth_server({"useAuthServer": True})
    for config in ({"useAuthServer": False}, {"auth": {"user": "u"}}, None, "x"):
        assert not authserver.uses_auth_server(config)
    plain = {"host": "h", "auth": {"user": "u", "pass": "p"}}
    assert authserver.resolve(None, "a", "imap", plain) is plain   # no Redis, no HTTP


def test_xoauth2_strings():
    # The SASL XOAUTH2 format (also what imapclient's oauth2_login sends for IMAP).
    assert xoauth2("me@example.com", "ya29.tok") == "user=me@example.com\x01auth=Bearer ya29.tok\x01\x01"
    respond = xoauth2_response("me@example.com", "ya29.tok")
    assert respond() == xoauth2("me@example.com", "ya29.tok")   # smtplib's initial response
    # The server's 334 error challenge is answered with an empty line (then it sends 5xx).
    assert respond(base64.b64decode(base64.b64encode(b'{"status":"401"}'))) == ""


def test_fetch_without_setting_is_a_clear_error(redis):
    redis.hdel(keys.SETTINGS, "authServer")
    with pytest.raises(AuthServerError, match="not configured"):
        authserver.fetch(redis, "a", "imap")


# -- the setting through /v1/settings -----------------------------------------------------------
def test_setting_round_trip_and_clear(client):
    url = "http://user:pw@127.0.0.1:9/creds"
    assert client.post("/v1/settings", json={"authServer": url}).get_json() == {
        "updated": ["authServer"]}
    # the password is a secret: shown masked (tests/unit/test_settings_masking.py)
    assert client.get("/v1/settings?authServer=true").get_json() == {
        "authServer": "http://user:******@127.0.0.1:9/creds"}
    assert "authServer" in client.get("/v1/settings").get_json()
    assert client.post("/v1/settings", json={"authServer": ""}).status_code == 200
    assert client.get("/v1/settings?authServer=true").get_json() == {"authServer": None}


@pytest.mark.parametrize("value", ["ftp://127.0.0.1/x", "not a url", 5, "http://" + "a" * 2050])
def test_bad_setting_is_400_naming_the_field(client, value):
    body = assert_error(client.post("/v1/settings", json={"authServer": value}), 400)
    assert "authServer" in field_keys(body)
