"""Decoding helpers: RFC 2047 encoded words, envelope addresses, modified UTF-7 names, ISO dates."""
from __future__ import annotations

import base64
import binascii
import codecs
import functools
import quopri
import re
from datetime import datetime, timezone

from imapclient.imap_utf7 import decode as _utf7_decode
from imapclient.imap_utf7 import encode as _utf7_encode

_WORD = re.compile(rb"=\?([^?\s]+)\?([QqBb])\?([^?\s]*)\?=")
_SPACE_ONLY = re.compile(rb"^[ \t\r\n]*$")


def as_str(value) -> str:
    """An IMAP atom/string as imapclient returns it (bytes, or int for numeric atoms) -> str."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def to_text(value, charset: str = "utf-8") -> str:
    """bytes -> str without ever failing: the charset if it decodes, else UTF-8, else Latin-1."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    raw = value if type(value) is bytes else bytes(value)
    if charset == "utf-8" or charset == "UTF-8":
        # The common case (every envelope field) skips the charset lookup: a listing decodes
        # a few hundred of these per page.
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.decode("latin-1")
    for cs in (charset, "utf-8"):
        try:
            return raw.decode(_codec(cs))
        except (UnicodeDecodeError, LookupError):
            continue
    return raw.decode("latin-1")


_ALIASES = {"ks_c_5601-1987": "cp949", "x-sjis": "shift_jis", "gb2312": "gb18030",
            "gbk": "gb18030", "unicode-1-1-utf-7": "utf-7", "iso-8859-8-i": "iso-8859-8"}


@functools.lru_cache(maxsize=256)
def _codec(charset: str) -> str:
    """Charset label -> Python codec name; LookupError (not cached) for unknown charsets."""
    charset = charset.split("*", 1)[0].strip().lower()   # RFC 2231 language suffix: utf-8*en
    charset = _ALIASES.get(charset, charset)
    codecs.lookup(charset)   # LookupError for unknown charsets, handled by callers
    return charset


def _word_bytes(encoding: bytes, payload: bytes) -> bytes:
    if encoding in (b"B", b"b"):
        payload = payload + b"=" * (-len(payload) % 4)
        try:
            return base64.b64decode(payload)
        except (binascii.Error, ValueError):
            return b""
    return quopri.decodestring(payload.replace(b"_", b" "), header=True)


def decode_words(value) -> str:
    """Decode RFC 2047 encoded words ('=?UTF-8?B?...?=') in a header value; raw 8-bit as UTF-8."""
    if value is None:
        return ""
    if type(value) is bytes:   # nearly always: ENVELOPE fields and header lines
        raw = value
    elif isinstance(value, str):
        if "=?" not in value:
            return value
        raw = value.encode("utf-8")
    else:
        raw = bytes(value)
    if b"=?" not in raw:   # most values: to_text inlined (19 calls per message read)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.decode("latin-1")
    out: list[str] = []
    pending: list = []   # [charset, bytes] of adjacent words: multi-byte chars may be split
    pos = 0

    def flush():
        if pending:
            out.append(to_text(pending[1], pending[0]))
            pending.clear()

    for match in _WORD.finditer(raw):
        gap = raw[pos:match.start()]
        # Whitespace between two encoded words is not part of the text (RFC 2047 §6.2).
        if gap and not (pending and _SPACE_ONLY.match(gap)):
            flush()
            out.append(to_text(gap))
        charset = match.group(1).decode("ascii", "replace").lower()
        data = _word_bytes(match.group(2), match.group(3))
        if pending and pending[0] == charset:
            pending[1] += data
        else:
            flush()
            pending.extend([charset, data])
        pos = match.end()
    flush()
    out.append(to_text(raw[pos:]))
    return "".join(out)


def address(addr) -> dict | None:
    """imapclient Address -> {name, address}; None for group end markers."""
    name = getattr(addr, "name", None)
    mailbox = getattr(addr, "mailbox", None)
    host = getattr(addr, "host", None)
    if mailbox is None and host is None:
        return None
    text = to_text(mailbox)
    if host is not None or mailbox is not None:
        text = f"{text}@{to_text(host)}"
    return {"name": decode_words(name), "address": text}


def addresses(addrs) -> list[dict]:
    """A tuple of envelope addresses -> [{name, address}] (group markers dropped)."""
    out = []
    for addr in addrs or ():
        item = address(addr)
        if item is not None:
            out.append(item)
    return out


def decode_mailbox(name) -> str:
    """Modified UTF-7 mailbox name (bytes or str) -> Unicode."""
    if isinstance(name, bytes):
        try:
            return _utf7_decode(name)
        except Exception:
            return to_text(name)
    try:
        return _utf7_decode(name.encode("ascii"))
    except (UnicodeEncodeError, Exception):
        return name


def encode_mailbox(name: str) -> str:
    """Unicode mailbox name -> modified UTF-7 (ASCII-only names are returned unchanged)."""
    if name.isascii():
        return name
    return _utf7_encode(name).decode("ascii")


def leaf_name(path: str, delimiter: str | None = None) -> str:
    """Decoded last segment of a mailbox path (a folder's `name`; INBOX is always "INBOX")."""
    if path == "INBOX":
        return path
    leaf = path.rsplit(delimiter, 1)[-1] if delimiter else path
    return decode_mailbox(leaf)


def normalize_path(path: str) -> str:
    """`inbox` in any case means INBOX (RFC 3501 §5.1)."""
    return "INBOX" if path.upper() == "INBOX" else path


def iso(dt) -> str | None:
    """datetime -> '2019-10-07T06:05:23.000Z' (naive datetimes are taken as UTC)."""
    if not isinstance(dt, datetime):
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    try:
        dt = dt.astimezone(timezone.utc)
    except (OverflowError, ValueError):
        return None
    return (f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:"
            f"{dt.second:02d}.{dt.microsecond // 1000:03d}Z")


def message_id(value) -> str | None:
    """Envelope Message-ID, trimmed; None when absent."""
    text = to_text(value).strip()
    return text or None
