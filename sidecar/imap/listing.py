"""Message listing: paging math and the per-message entry builder (ENVELOPE + BODYSTRUCTURE)."""
from __future__ import annotations

import math

from imapapi.ids import encode_message_id

from . import bodystructure, codec, objectid

# FETCH items of every listing entry (messages.list, search, details, messageNew): BODYSTRUCTURE
# gives `attachments` and `text {id, encodedSize}`; callers add objectid.items(client) (emailId).
FETCH_ITEMS: tuple[bytes, ...] = (b"UID", b"FLAGS", b"RFC822.SIZE", b"ENVELOPE", b"INTERNALDATE",
                                  b"BODYSTRUCTURE")


def page_window(total: int, page: int, page_size: int) -> dict:
    """Newest first: page 0 holds the highest sequence numbers. Out-of-range pages are clamped.

    -> {page, pages, first, last} where first..last is the sequence range (None when empty)."""
    page_size = max(1, int(page_size))
    pages = max(1, math.ceil(total / page_size))
    page = min(max(0, int(page)), pages - 1)
    if total <= 0:
        return {"page": 0, "pages": 1, "first": None, "last": None}
    last = total - page * page_size
    first = max(1, last - page_size + 1)
    return {"page": page, "pages": pages, "first": first, "last": last}


def build_entry(mailbox_no: int, data: dict) -> dict:
    """One FETCH response (imapclient dict) -> the JSON listing entry, all text decoded."""
    uid = int(data[b"UID"])
    flags = [codec.as_str(f) for f in data.get(b"FLAGS", ())]
    lowered = {f.lower() for f in flags}
    env = data.get(b"ENVELOPE")
    date = codec.iso(getattr(env, "date", None)) or codec.iso(data.get(b"INTERNALDATE"))
    from_ = codec.addresses(getattr(env, "from_", None))
    entry = {
        "id": encode_message_id(mailbox_no, uid),
        "uid": uid,
        "date": date,
        "size": data.get(b"RFC822.SIZE"),
        "flags": flags,
        "unseen": "\\seen" not in lowered,
        "subject": codec.decode_words(getattr(env, "subject", None)),
        "from": from_[0] if from_ else None,
        "to": codec.addresses(getattr(env, "to", None)),
        "cc": codec.addresses(getattr(env, "cc", None)),
        "messageId": codec.message_id(getattr(env, "message_id", None)),
        "inReplyTo": codec.message_id(getattr(env, "in_reply_to", None)),
    }
    entry.update(objectid.entry_ids(data))   # emailId/threadId when the FETCH asked for them
    for flag, key in (("\\flagged", "flagged"), ("\\answered", "answered"), ("\\draft", "draft")):
        if flag in lowered:
            entry[key] = True
    if b"BODYSTRUCTURE" in data:
        entry.update(bodystructure.summary(data[b"BODYSTRUCTURE"], mailbox_no, uid))
    return entry
