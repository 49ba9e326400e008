"""Opaque ids (base64url, no padding), byte-compatible with the original IMAP API.

message id    = uint32BE(mailbox number) || uint32BE(uid)                      (11 chars)
text id       = message id bytes || msgpack([[plain parts], [html parts], [other text parts]])
attachment id = message id bytes || ASCII part number ("2", "1.2")

Mailbox numbers are allocated per (uidValidity, path) in the registry hash, so an id issued
before a UIDVALIDITY change resolves to the old (uidValidity, path) pair and can be refused.
"""
from __future__ import annotations

import base64
import binascii
import re
import secrets
import struct

import msgpack

from . import keys
from .errors import AccountNotFound, MessageNotFound, NotFound

_PART = re.compile(r"^\d+(\.\d+)*$")


def b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64decode(text: str) -> bytes:
    if not isinstance(text, str) or not re.fullmatch(r"[A-Za-z0-9_-]+", text or ""):
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not base64url") from exc


def encode_message_id(mailbox_no: int, uid: int) -> str:
    return b64encode(struct.pack(">II", mailbox_no, uid))


def decode_message_id(message_id: str) -> tuple[int, int]:
    """-> (mailbox number, uid). Text and attachment ids also decode (extra bytes ignored)."""
    try:
        raw = b64decode(message_id)
    except ValueError:
        raise MessageNotFound("Invalid message ID", code="MessageNotFound") from None
    if len(raw) < 8:
        raise MessageNotFound("Invalid message ID", code="MessageNotFound")
    mailbox_no, uid = struct.unpack(">II", raw[:8])
    if mailbox_no == 0 or uid == 0:
        raise MessageNotFound("Invalid message ID", code="MessageNotFound")
    return mailbox_no, uid


def encode_text_id(mailbox_no: int, uid: int, groups: list[list[str]]) -> str:
    packed = msgpack.packb([list(g) for g in groups], use_bin_type=True)
    return b64encode(struct.pack(">II", mailbox_no, uid) + packed)


def decode_text_id(text_id: str) -> tuple[int, int, list[list[str]]]:
    mailbox_no, uid = decode_message_id(text_id)
    raw = b64decode(text_id)
    try:
        groups = msgpack.unpackb(raw[8:], raw=False)
        groups = [[p for p in g if isinstance(p, str) and _PART.match(p)] for g in groups]
    except Exception:
        raise NotFound("Invalid text ID", code="TextNotFound") from None
    while len(groups) < 3:
        groups.append([])
    return mailbox_no, uid, groups[:3]


def encode_attachment_id(mailbox_no: int, uid: int, part: str) -> str:
    return b64encode(struct.pack(">II", mailbox_no, uid) + part.encode("ascii"))


def decode_attachment_id(attachment_id: str) -> tuple[int, int, str]:
    mailbox_no, uid = decode_message_id(attachment_id)
    part = b64decode(attachment_id)[8:].decode("ascii", "replace")
    if not _PART.match(part):
        raise NotFound("Requested file not found", code="AttachmentNotFound")
    return mailbox_no, uid, part


def mailbox_key(uid_validity: int, path: str) -> bytes:
    return struct.pack(">Q", int(uid_validity)) + path.encode("utf-8")


class MailboxRegistry:
    """Maps (uidValidity, path) <-> small mailbox numbers in Redis (deleted with the account).

    A registry starts counting at a random base, so the numbers of a deleted and re-added
    account's new registry do not repeat the old ones: its old ids still 404 (they could
    otherwise name another folder's message)."""

    # One round trip, atomic: concurrent allocators never hand out the same number twice. An
    # op or sync still running when the account was deleted gets 0 and writes nothing (the
    # registry would otherwise come back after the delete's purge).
    _ALLOC = """
    local n = redis.call('HGET', KEYS[1], ARGV[1])
    if n then return tonumber(n) end
    if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
    if redis.call('HEXISTS', KEYS[1], 'next') == 0 then
      redis.call('HSET', KEYS[1], 'next', ARGV[2])
    end
    n = redis.call('HINCRBY', KEYS[1], 'next', 1)
    redis.call('HSET', KEYS[1], ARGV[1], n, 'ix:' .. n, ARGV[1])
    return n
    """
    BASES = (1000, 1 << 24)   # the random first number's range (ids keep 32 bits for it)

    def __init__(self, redis, account_id: str):
        self.redis = redis
        self.key = keys.mailbox_registry(account_id)
        self.record = keys.account(account_id)
        self._cache: dict[bytes, int] = {}
        # number -> (uidValidity, path): a number never changes meaning while the registry
        # exists, so each single-message read needs no Redis round trip for it after the first
        self._resolved: dict[int, tuple[int, str]] = {}

    def number(self, uid_validity: int, path: str) -> int:
        mk = mailbox_key(uid_validity, path)
        if mk not in self._cache:
            base = secrets.randbelow(self.BASES[1] - self.BASES[0]) + self.BASES[0]
            number = int(self.redis.eval(self._ALLOC, 2, self.key, self.record, mk, base))
            if not number:
                raise AccountNotFound()
            self._cache[mk] = number
        return self._cache[mk]

    def resolve(self, mailbox_no: int) -> tuple[int, str]:
        """-> (uidValidity, path) the number was issued for; MessageNotFound if unknown."""
        found = self._resolved.get(mailbox_no)
        if found is not None:
            return found
        raw = self.redis.hget(self.key, f"ix:{mailbox_no}")
        if not raw or len(raw) < 8:
            raise MessageNotFound()
        found = struct.unpack(">Q", raw[:8])[0], raw[8:].decode("utf-8")
        if len(self._resolved) < 10000:
            self._resolved[mailbox_no] = found
        return found
