"""Ops messages.get (details from BODYSTRUCTURE/ENVELOPE/headers) and messages.text (partial reads)."""
from __future__ import annotations

import re

from imapapi import errors, ids
from sidecar.imap import bodystructure, listing, replytext
from sidecar.imap.codec import addresses, decode_words, to_text
from sidecar.imap.textdecode import TextDecoder, encoded_budget, unflow, utf8_cut

from . import op
from .msgutil import body_value, fetch_one, open_message, read_section

TEXT_TYPES = ("plain", "html", "*")
MAX_BYTES = 1024 ** 3
_FOLD = re.compile(rb"\r?\n(?=[ \t])")


def parse_headers(raw: bytes | None) -> dict[str, list[str]]:
    """Header block -> {lower-case name: [decoded value per occurrence]}."""
    out: dict[str, list[str]] = {}
    for line in _FOLD.sub(b"", raw or b"").split(b"\n"):
        line = line.rstrip(b"\r")
        if b":" not in line or line[:1] in (b" ", b"\t"):
            continue
        name, value = line.split(b":", 1)
        name = to_text(name).strip().lower()
        if name:
            out.setdefault(name, []).append(decode_words(value.strip()))
    return out


def _bodystructure_builder(entry: dict, data: dict, mailbox_no: int) -> None:
    """Listing entry builder: `attachments` (when any) and `text {id, encodedSize}`."""
    if b"BODYSTRUCTURE" in data:
        entry.update(bodystructure.summary(data[b"BODYSTRUCTURE"], mailbox_no, int(data[b"UID"])))


# Listing entries (messages.list, search, details) all get attachments/text from BODYSTRUCTURE.
if b"BODYSTRUCTURE" not in listing.FETCH_ITEMS:
    listing.FETCH_ITEMS.append(b"BODYSTRUCTURE")
if _bodystructure_builder not in listing.ENTRY_BUILDERS:
    listing.ENTRY_BUILDERS.append(_bodystructure_builder)


def build_details(mailbox_no: int, data: dict) -> dict:
    """Listing items + BODY.PEEK[HEADER] -> the list entry plus sender, replyTo, bcc, headers."""
    out = listing.build_entry(mailbox_no, data)
    env = data.get(b"ENVELOPE")
    for name, attr in (("sender", "sender"), ("replyTo", "reply_to")):
        found = addresses(getattr(env, attr, None))
        if found:
            out[name] = found[0]
    out["bcc"] = addresses(getattr(env, "bcc", None))
    out["headers"] = parse_headers(_header_bytes(data))
    return out


def _header_bytes(entry: dict) -> bytes:
    for key, value in entry.items():
        if isinstance(key, bytes) and key.startswith(b"BODY[HEADER"):
            return bytes(value or b"")
    return b""


def check_text_args(text_type, max_bytes) -> tuple[str, int]:
    text_type = (text_type or "*").lower()
    if text_type not in TEXT_TYPES:
        raise errors.BadRequest("textType must be plain, html or *", code="InvalidInput",
                                fields=[{"key": "textType", "message": "Must be one of: plain, html, *"}])
    if not isinstance(max_bytes, int) or isinstance(max_bytes, bool) or not 0 <= max_bytes <= MAX_BYTES:
        raise errors.BadRequest("maxBytes out of range", code="InvalidInput",
                                fields=[{"key": "maxBytes", "message": "Must be 0..1073741824"}])
    return text_type, max_bytes


def read_text_part(client, uid: int, part: bodystructure.Part, max_bytes: int) -> tuple[str, bool]:
    """Decoded text of one part -> (text, hasMore). With a cap, only about max_bytes of encoded
    data is fetched (partial FETCH), more only while the decoded text is still short."""
    decoder = TextDecoder(part.encoding, part.charset)
    pieces, produced, offset, complete = [], 0, 0, False
    while True:
        if max_bytes:
            want = encoded_budget(part.encoding, max_bytes - produced + 1)
            data = read_section(client, uid, part.number, offset, want)
        else:
            # no cap: the whole part in one FETCH (BODYSTRUCTURE sizes are not trusted as limits)
            value = body_value(fetch_one(client, uid, [f"BODY.PEEK[{part.number}]"]))
            data = bytes(value) if value else b""
            want = len(data) + 1
        offset += len(data)
        text = decoder.feed(data)
        pieces.append(text)
        produced += len(text.encode("utf-8"))
        if len(data) < want:
            complete = True
            pieces.append(decoder.finish(complete=True))
            break
        if max_bytes and produced > max_bytes:
            break
    text = "".join(pieces)
    if part.params.get("format", "").lower() == "flowed":
        text = unflow(text, delsp=part.params.get("delsp", "").lower() == "yes")
    text, cut = utf8_cut(text, max_bytes)
    return text, cut or not complete


def collect_text(client, uid: int, structure, groups, text_type: str, max_bytes: int) -> dict:
    """{plain?, html?, <other>?, hasMore}: parts bucketed by subtype, each bucket capped in bytes."""
    wanted = {"plain": groups[:1], "html": groups[1:2]}.get(text_type, groups[:3])
    buckets: dict[str, list[str]] = {}
    used: dict[str, int] = {}
    has_more = False
    for number in [n for group in wanted for n in group]:
        part = structure.part(number)
        if part is None or part.type != "text":
            continue   # an id naming parts this message does not have: ignore them
        bucket = buckets.setdefault(part.subtype, [])
        spent = used.get(part.subtype, 0) + (1 if bucket else 0)   # the "\n" joining parts
        if max_bytes and spent >= max_bytes:
            has_more = True
            continue
        text, more = read_text_part(client, uid, part, max_bytes - spent if max_bytes else 0)
        bucket.append(text)
        used[part.subtype] = spent + len(text.encode("utf-8"))
        has_more = has_more or more
    out: dict = {name: "\n".join(texts) for name, texts in buckets.items()}
    if text_type in ("plain", "html"):
        out = {text_type: out.get(text_type, "")}
    out["hasMore"] = has_more
    return out


@op("messages.get")
def get_message(ctx, message: str, textType: str | None = None, maxBytes: int = 0):
    if textType is not None:
        textType, maxBytes = check_text_args(textType, maxBytes)
    with ctx.client() as client:
        mailbox_no, uid, _path = open_message(ctx, client, message)
        entry = fetch_one(client, uid, list(listing.FETCH_ITEMS) + [b"BODY.PEEK[HEADER]"])
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
    with ctx.client() as client:
        _no, uid, _path = open_message(ctx, client, text)
        entry = fetch_one(client, uid, ["UID", "BODYSTRUCTURE"])
        structure = bodystructure.analyze(entry.get(b"BODYSTRUCTURE"))
        return collect_text(client, uid, structure, groups, textType, maxBytes)
