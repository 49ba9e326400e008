"""One-message FETCH helpers: a single UID FETCH, the BODY[...] value, partial section reads."""
from __future__ import annotations

from imapapi import errors

READ_CHUNK = 2 * 1024 * 1024   # bytes per partial FETCH when streaming (a round trip each)


def fetch_one(client, uid: int, items: list) -> dict:
    """UID FETCH one message; MessageNotFound when the uid is gone."""
    data = client.fetch([uid], items)
    entry = data.get(uid)
    if entry is None:
        raise errors.MessageNotFound()
    entry.setdefault(b"UID", uid)   # imapclient moves UID into the dict key in UID mode
    return entry


def body_value(entry: dict):
    """The BODY[...] item of a FETCH entry whatever its exact key (BODY[1]<0>, BODY[] ...)."""
    for key, value in entry.items():
        if isinstance(key, bytes) and key.startswith(b"BODY["):
            return value
    return None


def read_section(client, uid: int, section: str, offset: int, length: int) -> bytes:
    """BODY.PEEK[section]<offset.length>: at most `length` bytes, fewer at the end of the part."""
    entry = fetch_one(client, uid, [f"BODY.PEEK[{section}]<{offset}.{length}>"])
    value = body_value(entry)
    return bytes(value) if value else b""


def iter_section(client, uid: int, section: str, chunk: int = READ_CHUNK):
    """Yield a section's bytes in partial FETCHes, so memory stays at one chunk whatever the size."""
    offset = 0
    while True:
        data = read_section(client, uid, section, offset, chunk)
        if data:
            yield data
        offset += len(data)
        if len(data) < chunk:   # the server sends fewer bytes only at the end of the section
            return
