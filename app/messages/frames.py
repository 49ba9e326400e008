"""A download's stream frames read off a Redis connection, a data frame's payload received straight into the bytes the WSGI server writes."""
# rpc.iter_stream reads each 1 MiB frame through redis-py and hiredis: 64 KiB socket reads fed
# into hiredis's growing buffer, a bytes object made from it, and msgpack's copy of the
# payload: three copies and a realloc per frame, about half the API's CPU for a download. Here
# the BLPOP reply is parsed by hand. Its header is looked at with MSG_PEEK and taken off the
# socket up to the payload of a data frame (wire.DATA_HEADER); with SO_RCVLOWAT at the
# payload's size, one recv() then wakes once all of it is queued and returns it as the bytes
# object Gunicorn writes (it takes bytes only): no copy, no zeroed buffer, one wake-up per
# frame instead of one per TCP read (perf: memmove, memset and page faults were a quarter of
# the API's CPU for a download). Any other reply (end, error, nil, small frames, a TLS or Unix
# socket) is read into a buffer as before. Same frames, same errors as rpc.iter_stream.
from __future__ import annotations

import socket

from redis.exceptions import RedisError

from imapapi import errors, keys, wire

HEADER_READ = 4096   # enough for the reply's header lines (key names are short)


class ProtocolError(ConnectionError):
    """The reply was not what BLPOP answers: the connection is dropped."""


def iter_frames(redis, stream_key: str, *, timeout: float):
    """Yield the byte chunks of a streamed result; ApiError on an error frame or a stall."""
    pool = redis.connection_pool
    conn = pool.get_connection()
    pending = False     # a reply not read to its end leaves the connection out of step
    done = False        # the end or error frame was read: the sidecar has stopped writing
    key = stream_key.encode()
    head = bytearray(HEADER_READ)
    try:
        while True:
            conn.send_command("BLPOP", key, max(1, int(round(timeout))))
            pending = True
            raw = _read_blpop(conn._sock, key, head)
            pending = False
            if raw is None:
                raise errors.GatewayTimeout("Timeout waiting for streamed data")
            if isinstance(raw, bytes):   # a data frame's payload
                yield raw
                continue
            if raw[:len(wire.DATA_HEADER)] == wire.DATA_HEADER:
                yield bytes(raw[wire.DATA_HEADER_SIZE:])
                continue
            kind, payload = wire.parse_frame(bytes(raw))
            if kind == "d":
                yield payload
                continue
            done = True
            pending = True
            conn.send_command("DEL", key)
            conn.read_response()
            pending = False
            if kind == "e":
                return
            raise errors.from_dict(payload)
    except socket.timeout:
        raise errors.GatewayTimeout("Timeout waiting for streamed data") from None
    finally:
        if pending:
            conn.disconnect()
        pool.release(conn)
        if not done:
            _say_gone(redis, stream_key)


def _say_gone(redis, stream_key: str) -> None:
    """We stop reading before the end (client gone, stall): tell the sidecar, which would
    otherwise wait out its stall limit with the account's connection, and drop what it queued."""
    try:
        pipe = redis.pipeline(transaction=False)
        pipe.set(keys.stream_gone(stream_key), 1, ex=wire.STREAM_TTL)
        pipe.delete(stream_key)
        pipe.execute()
    except (RedisError, OSError):
        pass   # Redis is gone too: the sidecar's stall limit still ends the download


def _read_blpop(sock, key: bytes, head: bytearray) -> bytes | memoryview | None:
    """One BLPOP reply: nil -> None, a data frame -> its payload (bytes), any other value ->
    a view of it (in its own buffer). MSG_PEEK and SO_RCVLOWAT need a TCP socket (poll()
    ignores the mark on Unix sockets, and an SSLSocket has neither)."""
    if type(sock) is not socket.socket or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return _read_reply(sock, key)
    got = sock.recv_into(head, len(head), socket.MSG_PEEK)   # waits for the reply's start
    prefix = b"*2\r\n$%d\r\n%s\r\n$" % (len(key), key)
    end = head.find(b"\r\n", len(prefix), got)
    if end < 0 or head[:len(prefix)] != prefix:
        return _read_reply(sock, key)            # nil, an error, or a header split in two
    start = end + 2
    body = start + wire.DATA_HEADER_SIZE
    if got < body or head[start:start + len(wire.DATA_HEADER)] != wire.DATA_HEADER:
        return _read_reply(sock, key)
    size = int(head[len(prefix):end]) - wire.DATA_HEADER_SIZE
    if size != int.from_bytes(head[body - 4:body], "big") or size <= 0:
        raise ProtocolError("data frame of the wrong length")
    _recv_exactly(sock, memoryview(head)[:body])   # the reply's header, off the socket
    payload = _recv_bytes(sock, size)
    _recv_exactly(sock, memoryview(head)[:2])      # the value's CRLF
    return payload


def _recv_bytes(sock, size: int) -> bytes:
    """`size` bytes as one bytes object received in place."""
    # poll() wakes once `size` bytes are queued (Linux lifts the receive buffer to fit), and
    # the recv() that follows takes them all
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, size)
    try:
        data = sock.recv(size)
    finally:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 1)
    if not data:
        raise ProtocolError("Redis closed the connection")
    if len(data) == size:
        return data
    rest = bytearray(size)   # the mark was capped or a signal came: the rest as before
    rest[:len(data)] = data
    _recv_exactly(sock, memoryview(rest)[len(data):])
    return bytes(rest)


def _recv_exactly(sock, view: memoryview) -> None:
    have = 0
    while have < len(view):
        have += _recv_some(sock, view, have)


def _read_reply(sock, key: bytes) -> memoryview | None:
    """One BLPOP reply read into buffers: nil -> None, else the popped value (a view of its
    own buffer)."""
    head = bytearray(HEADER_READ)
    got = _recv_some(sock, head, 0)
    while True:
        if head[:1] == b"-":
            end = head.find(b"\r\n", 0, got)
            if end >= 0:
                raise ProtocolError(bytes(head[1:end]).decode("utf-8", "replace"))
        elif head[:5] == b"*-1\r\n" or head[:3] == b"_\r\n":   # RESP2 / RESP3 nil: timed out
            return None
        else:
            prefix = b"*2\r\n$%d\r\n%s\r\n$" % (len(key), key)
            if got >= len(prefix) and head[:len(prefix)] != prefix:
                raise ProtocolError("unexpected BLPOP reply")
            end = head.find(b"\r\n", len(prefix), got)
            if end >= 0:
                break
        if got == len(head):
            raise ProtocolError("BLPOP reply header too long")
        got += _recv_some(sock, head, got)
    size = int(head[len(prefix):end])
    start = end + 2
    value = bytearray(size + 2)            # the value and its CRLF
    have = min(got - start, size + 2)
    value[:have] = head[start:start + have]
    view = memoryview(value)
    while have < size + 2:
        have += _recv_some(sock, view, have)
    return view[:size]


def _recv_some(sock, buffer, offset: int) -> int:
    got = sock.recv_into(memoryview(buffer)[offset:])
    if not got:
        raise ProtocolError("Redis closed the connection")
    return got
