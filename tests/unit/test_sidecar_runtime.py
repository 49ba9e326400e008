"""Error translation at the protocol boundary and the selector/timer loop's token rules."""
import imaplib
import socket
import threading
import time
import types

import pytest
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError, LoginError

from imapapi import errors
from sidecar.connection import _classify, server_code, translate
from sidecar.idle import Reactor, is_keepalive


@pytest.mark.parametrize("exc,status,code", [
    (socket.timeout("timed out"), 504, "Timeout"),
    (IMAPClientAbortError("socket error: EOF"), 503, "IMAPUnavailable"),
    (imaplib.IMAP4.abort("EOF"), 503, "IMAPUnavailable"),
    (ConnectionResetError(104, "reset"), 503, "IMAPUnavailable"),
    (IMAPClientError("select failed: [NONEXISTENT] Mailbox doesn't exist"), 502, "UpstreamError"),
    (errors.MailboxNotFound(path="X"), 404, "MailboxNotFound"),
])
def test_translate(exc, status, code):
    err = translate(exc)
    assert err.status == status and err.code == code


def test_translate_leaves_programming_errors_to_the_caller():
    assert translate(KeyError("x")) is None


@pytest.mark.parametrize("exc,state,code", [
    (LoginError("b'[AUTHENTICATIONFAILED] Authentication failed.'"), "authenticationError",
     "AUTHENTICATIONFAILED"),
    (ConnectionRefusedError(111, "refused"), "connectError", "ECONNREFUSED"),
    (socket.gaierror(-2, "Name or service not known"), "connectError", "ENOTFOUND"),
    (socket.timeout("timed out"), "connectError", "ETIMEDOUT"),
])
def test_connect_failures_are_classified(exc, state, code):
    failure = _classify(exc)
    assert failure.state == state and failure.error["serverResponseCode"] == code
    if state == "authenticationError":
        assert failure.error["response"] == "[AUTHENTICATIONFAILED] Authentication failed."


def test_server_code():
    assert server_code("[ALERT] hi") == ("[ALERT] hi", "ALERT")
    assert server_code("plain") == ("plain", None)


def test_keepalive():
    assert is_keepalive([(b"OK", b"Still here")])
    assert not is_keepalive([(b"OK", b"Still here"), (3, b"EXISTS")])


def test_reactor_fires_once_per_arm_and_drops_stale_tokens():
    fired = []
    done = threading.Event()

    def dispatch(account, reason, token):
        fired.append((account.name, reason, token))
        done.set()

    reactor = Reactor(dispatch)
    reactor.start()
    a, b = types.SimpleNamespace(name="a"), types.SimpleNamespace(name="b")
    left, right = socket.socketpair()
    try:
        token = reactor.arm(a, left, time.time() + 60)
        reactor.arm(b, None, time.time() + 0.05)
        stale = reactor.arm(b, None, time.time() + 0.1)   # supersedes the first timer of b
        time.sleep(0.3)
        assert fired == [("b", "timer", stale)]
        assert reactor.current(b, stale) and not reactor.current(a, stale)
        right.send(b"* 1 EXISTS\r\n")
        assert done.wait(2)
        time.sleep(0.1)
        assert fired[-1] == ("a", "io", token)
        right.send(b"more")   # not re-armed: no second event
        time.sleep(0.2)
        assert len(fired) == 2
        left.setblocking(False)
        while True:           # drain: an armed readable socket may fire before the disarm
            try:
                if not left.recv(4096):
                    break
            except BlockingIOError:
                break
        reactor.arm(a, left, time.time() + 60)
        reactor.disarm(a)     # an op took the connection: data arriving now must not fire
        right.send(b"* 2 EXISTS\r\n")
        time.sleep(0.2)
        assert len(fired) == 2 and reactor.watched() == 0
        final = reactor.arm(a, None, time.time() + 60)
        reactor.disarm(a, final=True)   # the account stopped: its last token is stale too
        assert not reactor.current(a, final)
    finally:
        reactor.stop()
        left.close()
        right.close()
