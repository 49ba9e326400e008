"""sidecar/imap/literal.py on a real Dovecot over STARTTLS: the streamed FETCH gives the stored bytes, keeps the connection in step."""
from __future__ import annotations

import socket

import pytest
from imapclient import IMAPClient

from imapapi import errors
from sidecar.imap import compat, tlsread
from sidecar.imap.literal import fetch_streamed
from tests.fixtures.dovecot import insecure_context
from tests.integration.helpers import message

pytestmark = pytest.mark.integration

SSL_CTRL_GET_READ_AHEAD = 40
BODY = b"".join(b"line %07d of a streamed body, CRLF ended\r\n" % i for i in range(120_000))


@pytest.fixture
def mailbox(dovecot):
    """(a STARTTLS connection like the sidecar's with INBOX selected, user, password)."""
    user, password = "literal-user", "literal-pass"
    dovecot.add_user(user, password)
    client = IMAPClient(dovecot.host, port=dovecot.port, ssl=False, timeout=30)
    compat.quiet_imaplib(client)
    client.starttls(insecure_context())
    client.login(user, password)
    client.select_folder("INBOX")
    client.delete_messages(client.search(["ALL"]))
    client.expunge()
    yield client, user, password
    client.logout()


def plant(dovecot, user, password, raw: bytes) -> None:
    dovecot.append(user, password, "INBOX", raw)


def collect(client, uid: int, view_size: int = 100_000, fail_after: int | None = None):
    """fetch_streamed into a list of chunks read through `view_size` windows."""
    chunks: list[bytes] = []
    sizes: list[int] = []

    def consume(size, reader):
        sizes.append(size)
        view = memoryview(bytearray(view_size))
        while reader.left:
            got = reader.readinto(view)
            chunks.append(bytes(view[:got]))
            if fail_after is not None and sum(map(len, chunks)) >= fail_after:
                raise errors.GatewayTimeout("reader went away")

    returned = fetch_streamed(client, uid, "", consume)
    return returned, sizes, b"".join(chunks)


def uid_of(client, subject: str) -> int:
    return client.search(["SUBJECT", subject])[-1]


def test_streamed_fetch_gives_the_stored_bytes(dovecot, mailbox):
    client, user, password = mailbox
    raw = message("streamed") + BODY
    plant(dovecot, user, password, raw)
    client.noop()
    returned, sizes, got = collect(client, uid_of(client, "streamed"))
    assert got == raw and returned == sizes[0] == len(raw)
    # the connection is in step: the next command answers normally
    assert client.fetch([uid_of(client, "streamed")], ["RFC822.SIZE"])


def test_consumer_error_is_raised_after_the_literal_is_drained(dovecot, mailbox):
    client, user, password = mailbox
    raw = message("abandoned") + BODY
    plant(dovecot, user, password, raw)
    client.noop()
    uid = uid_of(client, "abandoned")
    with pytest.raises(errors.GatewayTimeout):
        collect(client, uid, fail_after=300_000)
    # the rest of the literal was read and dropped: the same connection streams it again whole
    assert collect(client, uid)[2] == raw


def test_unsolicited_responses_before_the_literal(dovecot, mailbox):
    client, user, password = mailbox
    raw = message("first") + BODY[:50_000]
    plant(dovecot, user, password, raw)
    client.noop()
    uid = uid_of(client, "first")
    # another client's append and flag change: EXISTS and FETCH FLAGS arrive with our FETCH
    plant(dovecot, user, password, message("second"))
    other = dovecot.client(user, password)
    other.select_folder("INBOX")
    other.add_flags([uid], [b"\\Flagged"])
    other.logout()
    assert collect(client, uid)[2] == raw
    assert b"\\Flagged" in client.get_flags([uid])[uid]


def test_gone_uid_is_message_not_found(mailbox):
    client, _user, _password = mailbox
    with pytest.raises(errors.MessageNotFound):
        collect(client, 999_999)
    client.noop()


def test_bulk_reads_are_tuned_and_put_back(dovecot, mailbox):
    """The TLS fast path is in use (tlsread.py finds the SSL object), and after the literal
    the connection reads as before: no read-ahead, a low-water mark of 1 byte."""
    client, user, password = mailbox
    raw = message("tuned") + BODY
    plant(dovecot, user, password, raw)
    client.noop()
    sock = compat.raw_socket(client)
    ptr = tlsread.ssl_pointer(sock)
    assert ptr is not None
    assert collect(client, uid_of(client, "tuned"))[2] == raw
    assert tlsread._libssl().SSL_ctrl(ptr, SSL_CTRL_GET_READ_AHEAD, 0, None) == 0
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT) == 1
    assert client.noop()


@pytest.mark.parametrize("extra", [-1, 1, 5_000, 2 * tlsread.AHEAD_TAIL + 7])
def test_literals_around_the_read_ahead_tail(dovecot, mailbox, extra):
    """Literals just under and over AHEAD_TAIL, read through windows smaller and larger than
    it: every byte arrives and the next command finds the connection in step."""
    client, user, password = mailbox
    head = message(f"tail {extra}")
    size = tlsread.AHEAD_TAIL + extra
    raw = head + BODY[:size - len(head)]
    plant(dovecot, user, password, raw)
    client.noop()
    uid = uid_of(client, f"tail {extra}")
    for view_size in (4096, 100_000):
        assert collect(client, uid, view_size=view_size)[2] == raw
        assert client.fetch([uid], ["RFC822.SIZE"])[uid][b"RFC822.SIZE"] == len(raw)


def test_plaintext_connection(dovecot, mailbox):
    """Without TLS the literal is read with recv_into on the socket itself."""
    _client, user, password = mailbox
    raw = message("plain") + BODY
    plant(dovecot, user, password, raw)
    plain = dovecot.client(user, password)
    try:
        plain.select_folder("INBOX", readonly=True)
        uid = uid_of(plain, "plain")
        assert collect(plain, uid)[2] == raw
        assert plain.noop()
    finally:
        plain.logout()
