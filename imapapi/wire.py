"""Task <-> sidecar wire format: JSON commands on a per-sidecar Redis list, one JSON reply each.

A task LPUSHes a Command to keys.sidecar_commands(sid) and BLPOPs keys.reply(command.id).
The sidecar BRPOPs commands, drops those whose deadline has passed, runs the op on the
account's live connection and RPUSHes one Reply (EXPIRE REPLY_TTL).

Streamed results (message source, attachment): the Reply carries `stream` = keys.stream(id);
the sidecar RPUSHes msgpack frames to it: [b"d", bytes] data, [b"e", meta-json] end,
[b"x", error-json] error. It keeps at most STREAM_WINDOW frames unread (back-pressure).
"""
from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field

import msgpack

REPLY_TTL = 60          # seconds a reply waits for a reader that gave up
STREAM_TTL = 120        # seconds an unread stream lives
# Frames of 1 MiB: per frame the sidecar pays an RPUSH round trip and the API a BLPOP and a
# chunked write, so 256 KiB frames cost 4x the round trips for the same bytes. At most
# STREAM_WINDOW frames (8 MiB) of one download wait in Redis.
STREAM_WINDOW = 8       # frames the sidecar may have queued ahead of the reader
STREAM_CHUNK = 1024 * 1024


def new_id() -> str:
    return uuid.uuid4().hex


@dataclass
class Command:
    account: str
    op: str
    args: dict = field(default_factory=dict)
    deadline: float = 0.0          # epoch seconds; past it the sidecar does not start the op
    id: str = field(default_factory=new_id)

    def dumps(self) -> str:
        return json.dumps(vars(self), separators=(",", ":"))

    @classmethod
    def loads(cls, raw: bytes | str) -> "Command":
        return cls(**json.loads(raw))

    def expired(self, now: float | None = None) -> bool:
        return bool(self.deadline) and (now or time.time()) > self.deadline


@dataclass
class Reply:
    id: str
    ok: bool
    result: object = None
    error: dict | None = None
    stream: str | None = None

    def dumps(self) -> str:
        # vars(), not dataclasses.asdict(): that deep-copies the whole result first, which was
        # a quarter of the sidecar's CPU for a 20-message listing.
        return json.dumps(vars(self), separators=(",", ":"), default=str)

    @classmethod
    def loads(cls, raw: bytes | str) -> "Reply":
        return cls(**json.loads(raw))


def data_frame(chunk: bytes | memoryview) -> bytes:
    """A memoryview is packed as it is (no bytes() copy of the slice first)."""
    return msgpack.packb([b"d", chunk], use_bin_type=True)


# A data frame built in place: the 9-byte msgpack header of [b"d", bin32 of n bytes] (a bin32
# length is valid msgpack for any n), then the bytes, so a reused buffer becomes a frame with
# no packing copy (the sidecar reads the IMAP literal straight in behind the header).
DATA_HEADER = b"\x92\xc4\x01d\xc6"
DATA_HEADER_SIZE = len(DATA_HEADER) + 4


def put_data_header(buffer: bytearray, size: int) -> None:
    """Write the header for `size` payload bytes that follow it in `buffer`."""
    buffer[:DATA_HEADER_SIZE] = DATA_HEADER + size.to_bytes(4, "big")


def end_frame(meta: dict | None = None) -> bytes:
    return msgpack.packb([b"e", json.dumps(meta or {})], use_bin_type=True)


def error_frame(error: dict) -> bytes:
    return msgpack.packb([b"x", json.dumps(error)], use_bin_type=True)


def parse_frame(raw: bytes) -> tuple[str, object]:
    """-> ("d", bytes) | ("e", dict) | ("x", dict)."""
    kind, payload = msgpack.unpackb(raw, raw=False)
    kind = kind.decode() if isinstance(kind, bytes) else kind
    if kind == "d":
        return kind, payload
    return kind, json.loads(payload)
