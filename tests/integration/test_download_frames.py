"""app/messages/frames.py against the real Redis: the frames a sidecar pushes come out as the same bytes, ends and errors."""
from __future__ import annotations

import uuid

import msgpack
import redis as redis_lib
import pytest

from app.messages.frames import iter_frames
from imapapi import errors, keys, wire

pytestmark = pytest.mark.integration


def in_place(data: bytes) -> bytes:
    """A data frame as the sidecar builds it in its buffer (sidecar/ops/download.py)."""
    buffer = bytearray(wire.DATA_HEADER_SIZE + len(data))
    buffer[wire.DATA_HEADER_SIZE:] = data
    wire.put_data_header(buffer, len(data))
    return bytes(buffer)


@pytest.fixture
def key(redis):
    name = f"ia:test:stream:{uuid.uuid4().hex}"
    yield name
    redis.delete(name)


def test_frames_of_every_size_come_out_as_pushed(redis, key):
    chunks = [b"x", bytes(range(256)) * 4097, b"\r\n$5\r\n*2\r\n", b"\0" * (1 << 20)]
    redis.rpush(key, *[in_place(c) for c in chunks[:2]], wire.data_frame(chunks[2]),
                in_place(chunks[3]), wire.end_frame({"size": 1}))
    assert list(iter_frames(redis, key, timeout=5)) == chunks
    assert not redis.exists(key)                 # the reader removes a finished stream
    assert redis.ping()                          # and leaves the pooled connection in step


def test_error_frame_after_data_raises_its_api_error(redis, key):
    redis.rpush(key, in_place(b"abc"), wire.error_frame(errors.GatewayTimeout("slow").to_dict()))
    frames = iter_frames(redis, key, timeout=5)
    assert next(frames) == b"abc"
    with pytest.raises(errors.GatewayTimeout, match="slow"):
        next(frames)
    assert redis.ping()


def test_no_frame_in_time_is_a_gateway_timeout(redis, key):
    with pytest.raises(errors.GatewayTimeout):
        next(iter_frames(redis, key, timeout=1))
    assert redis.ping()


def test_reader_dropped_between_frames_returns_a_usable_connection(redis, key):
    redis.rpush(key, in_place(b"one"), in_place(b"two"))
    frames = iter_frames(redis, key, timeout=5)
    assert next(frames) == b"one"
    frames.close()                               # the HTTP client went away
    assert redis.ping()                          # the pooled connection is still in step
    assert not redis.exists(key)                 # what was queued is dropped
    assert redis.get(keys.stream_gone(key)) == b"1"   # and the sidecar is told to stop
    assert 0 < redis.ttl(keys.stream_gone(key)) <= wire.STREAM_TTL
    redis.delete(keys.stream_gone(key))


def test_finished_stream_leaves_no_gone_marker(redis, key):
    redis.rpush(key, in_place(b"one"), wire.end_frame({"size": 3}))
    assert list(iter_frames(redis, key, timeout=5)) == [b"one"]
    assert not redis.exists(key) and not redis.exists(keys.stream_gone(key))


def test_msgpack_reads_frames_built_in_place(key):
    assert msgpack.unpackb(in_place(b"payload")) == [b"d", b"payload"]


def test_big_frames_on_a_fresh_connection(redis_url, key):
    """Frames bigger than a new connection's receive window (the low-water mark cannot be
    met at once, the payload comes in parts) and frames of every size after them."""
    fresh = redis_lib.Redis.from_url(redis_url)
    try:
        chunks = [bytes(range(256)) * (32 << 10), b"y" * 300_000, b"z"]   # 8 MiB first
        fresh.rpush(key, *[in_place(c) for c in chunks], wire.end_frame({"size": 1}))
        assert list(iter_frames(fresh, key, timeout=5)) == chunks
        assert fresh.ping()
    finally:
        fresh.close()


def test_payloads_are_bytes(redis, key):
    """Gunicorn writes bytes only (no bytearray or memoryview)."""
    redis.rpush(key, in_place(b"a" * 70_000), wire.data_frame(b"b"), wire.end_frame({"size": 1}))
    assert [type(chunk) for chunk in iter_frames(redis, key, timeout=5)] == [bytes, bytes]
