"""imapapi.smtp against real aiosmtpd servers: TLS modes, AUTH mechanisms, failure classes."""
from __future__ import annotations

import socket

import pytest
from aiosmtpd.controller import Controller

from imapapi import smtp as smtp_client
from tests.fixtures.dovecot import free_port
from tests.fixtures.smtp import Handler, _authenticator

RAW = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: t\r\n\r\nhello\r\n.\r\n"


def send(config, raw=RAW, timeout=5.0):
    return smtp_client.send(config, "a@example.com", ["b@example.com"], raw, timeout=timeout)


@pytest.fixture
def plain_server(smtp):
    """No TLS at all, LOGIN only: the other mechanism and AUTH without TLS."""
    ctl = Controller(Handler(smtp), hostname="127.0.0.1", port=free_port(),
                     authenticator=_authenticator, auth_require_tls=False,
                     auth_exclude_mechanism=["PLAIN"])
    ctl.start()
    yield ctl
    ctl.stop()


@pytest.mark.parametrize("secure", [False, True])
def test_starttls_and_implicit_tls_with_auth_plain(smtp, secure):
    result = send(smtp.account_config(secure=secure))
    assert result["response"].startswith("250 ") and result["accepted"] == ["b@example.com"]
    [got] = smtp.wait_for(1)
    assert got.login == smtp.user and got.port == (smtp.tls_port if secure else smtp.port)
    assert got.raw.endswith(b"hello\r\n.\r\n")      # dot-stuffing undone by the server


def test_auth_login_when_plain_is_not_offered(smtp, plain_server):
    config = {**smtp.account_config(), "port": plain_server.port}
    send(config)
    assert smtp.wait_for(1)[0].login == smtp.user


def test_no_auth_offered_is_permanent(smtp):
    # aiosmtpd offers AUTH only after STARTTLS here; ignoreTLS skips it
    with pytest.raises(smtp_client.SMTPFailure) as info:
        send({**smtp.account_config(), "ignoreTLS": True})
    assert not info.value.transient and "AUTH" in info.value.message


def test_require_tls_without_starttls_is_permanent(smtp, plain_server):
    with pytest.raises(smtp_client.SMTPFailure) as info:
        send({**smtp.account_config(), "port": plain_server.port, "requireTLS": True})
    assert not info.value.transient and "STARTTLS" in info.value.message


@pytest.mark.parametrize("reply, transient, code", [
    ("451 4.3.0 Try later", True, 451),
    ("452 4.3.1 Insufficient storage", True, 452),
    ("550 5.1.1 No such user", False, 550),
    ("554 5.7.1 Spam", False, 554),
])
def test_data_replies_are_classified(smtp, reply, transient, code):
    smtp.reply_next(reply)
    with pytest.raises(smtp_client.SMTPFailure) as info:
        send(smtp.account_config(secure=True))
    assert (info.value.transient, info.value.code) == (transient, code)
    assert reply.split(" ", 1)[1] in info.value.message


def test_wrong_password_is_permanent(smtp):
    with pytest.raises(smtp_client.SMTPFailure) as info:
        send(smtp.account_config(secure=True, password="nope"))
    assert not info.value.transient and info.value.code == 535


def test_self_signed_certificate_rejected_by_default(smtp):
    config = smtp.account_config(secure=True)
    del config["tls"]
    with pytest.raises(smtp_client.SMTPFailure) as info:
        send(config)
    assert not info.value.transient and "certificate" in info.value.message


def test_refused_and_silent_servers_are_transient():
    with pytest.raises(smtp_client.SMTPFailure) as info:
        send({"host": "127.0.0.1", "port": free_port()})
    assert info.value.transient
    # A server that accepts the connection but never greets: the timeout fires.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        with pytest.raises(smtp_client.SMTPFailure) as info:
            send({"host": "127.0.0.1", "port": silent.getsockname()[1]}, timeout=0.5)
    assert info.value.transient and "timed out" in info.value.message.lower()
