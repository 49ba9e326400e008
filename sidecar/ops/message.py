"""Ops messages.get (details from BODYSTRUCTURE/ENVELOPE/headers) and messages.text (partial reads)."""
from __future__ import annotations

import re

from imapapi import errors, ids
from sidecar.imap import bodystructure, objectid, replytext
from sidecar.imap.details import DETAIL_ITEMS, build_details, collect_text, wanted_parts

from .registry import op
from .msgutil import open_and_fetch

TEXT_TYPES = ("plain", "html", "*")
MAX_BYTES = 1024 ** 3
_SECTION = re.compile(r"^[1-9][0-9]{0,4}(\.[1-9][0-9]{0,4}){0,15}$")
MAX_PREFETCH = 16   # parts named by one text id fetched with its BODYSTRUCTURE
# Each is fetched partially: a part that fills this (or a crafted id naming a big attachment)
# is read again the ordinary way, so the prefetch never holds more than this per part.
PREFETCH_BYTES = 1024 * 1024


def check_text_args(text_type, max_bytes) -> tuple[str, int]:
    text_type = (text_type or "*").lower()
    if text_type not in TEXT_TYPES:
        raise errors.BadRequest("textType must be plain, html or *", code="InvalidInput",
                                fields=[{"key": "textType", "message": "Must be one of: plain, html, *"}])
    if not isinstance(max_bytes, int) or isinstance(max_bytes, bool) or not 0 <= max_bytes <= MAX_BYTES:
        raise errors.BadRequest("maxBytes out of range", code="InvalidInput",
                                fields=[{"key": "maxBytes", "message": "Must be 0..1073741824"}])
    return text_type, max_bytes


@op("messages.get")
def get_message(ctx, message: str, textType: str | None = None, maxBytes: int = 0):
    if textType is not None:
        textType, maxBytes = check_text_args(textType, maxBytes)
    with ctx.client() as client:
        mailbox_no, uid, _path, entry = open_and_fetch(
            ctx, client, message, lambda: list(DETAIL_ITEMS + objectid.items(client)))
        out = build_details(mailbox_no, entry)
        if textType is not None and b"BODYSTRUCTURE" in entry:
            structure = bodystructure.analyze(entry[b"BODYSTRUCTURE"])
            out["text"].update(collect_text(client, uid, structure, structure.groups, textType,
                                            maxBytes))
            if textType == "*":
                add_visible(out)
    return out


def add_visible(out: dict) -> None:
    """A reply with all text types asked for gets `text.visible`: its plain text without the
    quoted original (as the original API did)."""
    headers = out.get("headers") or {}
    if "plain" in out["text"] and ("in-reply-to" in headers or "references" in headers):
        out["text"]["visible"] = replytext.visible_text(out["text"]["plain"])


@op("messages.text")
def get_text(ctx, text: str, textType: str = "*", maxBytes: int = 0):
    textType, maxBytes = check_text_args(textType, maxBytes)
    _mailbox_no, _uid, groups = ids.decode_text_id(text)
    # The id names the parts: without a cap they come in the same FETCH as the BODYSTRUCTURE
    # (one round trip instead of one per part); with a cap they are read partially after it.
    # Only a part shorter than PREFETCH_BYTES counts as complete.
    parts = [] if maxBytes else [n for n in wanted_parts(groups, textType)
                                 if _SECTION.match(n)][:MAX_PREFETCH]
    with ctx.client() as client:
        _no, uid, _path, entry = open_and_fetch(
            ctx, client, text, ["UID", "BODYSTRUCTURE"] +
            [f"BODY.PEEK[{n}]<0.{PREFETCH_BYTES}>" for n in parts])
        structure = bodystructure.analyze(entry.get(b"BODYSTRUCTURE"))
        prefetched = {}
        for n in parts:
            value = entry.get(f"BODY[{n}]<0>".encode())
            if value is not None and len(value) < PREFETCH_BYTES:
                prefetched[n] = bytes(value)
        return collect_text(client, uid, structure, groups, textType, maxBytes, prefetched)
