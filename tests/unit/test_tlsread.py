"""sidecar/imap/tlsread.py on local sockets: exact fills, the low-water mark put back, no SSL object found where there is none."""
from __future__ import annotations

import socket
import ssl
import threading

from sidecar.imap import tlsread


def test_fill_reads_exactly_and_puts_the_low_water_mark_back():
    server = socket.create_server(("127.0.0.1", 0))
    sender = socket.create_connection(server.getsockname())
    receiver, _ = server.accept()
    try:
        data = bytes(range(256)) * 1000   # 256,000 bytes in pieces
        writer = threading.Thread(target=lambda: [sender.sendall(data[i:i + 7000])
                                                  for i in range(0, len(data), 7000)])
        writer.start()
        reader = tlsread.BulkReader(receiver)
        buffer = bytearray(len(data))
        view = memoryview(buffer)
        assert reader.fill(view[:200_000], ahead=True) == 200_000
        assert receiver.getsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT) == tlsread.LOWAT
        assert reader.fill(view[200_000:], ahead=False) == len(data) - 200_000
        assert receiver.getsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT) == 1
        writer.join()
        assert buffer == data
        reader.close()
        assert receiver.getsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT) == 1
    finally:
        for sock in (server, sender, receiver):
            sock.close()


def test_fill_stops_short_when_the_peer_closes():
    server = socket.create_server(("127.0.0.1", 0))
    sender = socket.create_connection(server.getsockname())
    receiver, _ = server.accept()
    try:
        sender.sendall(b"x" * 10)
        sender.close()
        reader = tlsread.BulkReader(receiver)
        assert reader.fill(memoryview(bytearray(100)), ahead=False) == 10
    finally:
        server.close()
        receiver.close()


def test_no_ssl_object_before_the_handshake():
    context = ssl.create_default_context()
    with socket.socket() as raw, socket.socket() as plain:
        with context.wrap_socket(raw, do_handshake_on_connect=False,
                                 server_hostname="x") as wrapped:
            assert tlsread.ssl_pointer(wrapped) is None
        assert tlsread.ssl_pointer(plain) is None
