"""Message details (the listing entry plus sender, replyTo, bcc, headers) and text collection.

Used by the messages.get / messages.text ops and by sync's messageNew payloads."""
from __future__ import annotations

import re

from . import bodystructure, listing
from .codec import addresses, decode_words, to_text
from .fetch import body_value, fetch_one, read_section
from .textdecode import TextDecoder, encoded_budget, unflow, utf8_cut

_FOLD = re.compile(rb"\r?\n(?=[ \t])")
_HEADER = re.compile(rb"^([^ \t\n:][^\n:]*):([^\n]*)", re.M)   # a line not starting with a blank
# A details FETCH: the listing items plus the raw header block.
DETAIL_ITEMS: tuple = listing.FETCH_ITEMS + (b"BODY.PEEK[HEADER]",)


def parse_headers(raw: bytes | None) -> dict[str, list[str]]:
    """Header block -> {lower-case name: [decoded value per occurrence]}."""
    out: dict[str, list[str]] = {}
    # one C pass finds the (name, value) of every unfolded line that has a colon
    for name, value in _HEADER.findall(_FOLD.sub(b"", raw or b"")):
        name = to_text(name).strip().lower()
        if name:
            value = value.strip()
            if name in out:
                out[name].append(decode_words(value))
            else:
                out[name] = [decode_words(value)]
    return out


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


def read_text_part(client, uid: int, part: bodystructure.Part, max_bytes: int,
                   prefetched: bytes | None = None) -> tuple[str, bool]:
    """Decoded text of one part -> (text, hasMore). With a cap, only about max_bytes of encoded
    data is fetched (partial FETCH), more only while the decoded text is still short.
    `prefetched`: the whole part, already fetched with the BODYSTRUCTURE (no cap only)."""
    decoder = TextDecoder(part.encoding, part.charset)
    pieces, produced, offset, complete = [], 0, 0, False
    while True:
        if max_bytes:
            want = encoded_budget(part.encoding, max_bytes - produced + 1)
            data = read_section(client, uid, part.number, offset, want)
        elif prefetched is not None:
            data, want, prefetched = prefetched, len(prefetched) + 1, None
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


def wanted_parts(groups, text_type: str) -> list[str]:
    """The part numbers a text request reads, in order (the id's groups for the type)."""
    wanted = {"plain": groups[:1], "html": groups[1:2]}.get(text_type, groups[:3])
    return [n for group in wanted for n in group]


def collect_text(client, uid: int, structure, groups, text_type: str, max_bytes: int,
                 prefetched: dict | None = None) -> dict:
    """{plain?, html?, <other>?, hasMore}: parts bucketed by subtype, each bucket capped in bytes.

    `prefetched`: {part number: bytes} of whole parts fetched already (no cap only)."""
    prefetched = prefetched or {}
    buckets: dict[str, list[str]] = {}
    used: dict[str, int] = {}
    has_more = False
    for number in wanted_parts(groups, text_type):
        part = structure.part(number)
        if part is None or part.type != "text":
            continue   # an id naming parts this message does not have: ignore them
        bucket = buckets.setdefault(part.subtype, [])
        spent = used.get(part.subtype, 0) + (1 if bucket else 0)   # the "\n" joining parts
        if max_bytes and spent >= max_bytes:
            has_more = True
            continue
        text, more = read_text_part(client, uid, part, max_bytes - spent if max_bytes else 0,
                                    None if max_bytes else prefetched.get(number))
        bucket.append(text)
        used[part.subtype] = spent + len(text.encode("utf-8"))
        has_more = has_more or more
    out: dict = {name: "\n".join(texts) for name, texts in buckets.items()}
    if text_type in ("plain", "html"):
        out = {text_type: out.get(text_type, "")}
    out["hasMore"] = has_more
    return out
