"""Sidecar ops for sending: look up a referenced message, flag it, and file the Sent copy."""
from __future__ import annotations

import base64
from email import policy
from email.parser import BytesParser

from imapapi import errors, ids, outbox
from imapapi.compose import strip_bcc

from .registry import op

SENT_NAMES = ("Sent", "Sent Items", "Sent Messages", "Sent Mail", "INBOX/Sent", "INBOX.Sent")


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _select_reference(ctx, client, message: str, readonly: bool) -> tuple[int, str]:
    """Select the referenced message's folder -> (uid, path); MessageNotFound when it is gone."""
    not_found = errors.MessageNotFound("Referenced message was not found")
    mailbox_no, uid = ids.decode_message_id(message)
    try:
        uid_validity, path = ctx.registry.resolve(mailbox_no)
    except errors.MessageNotFound:
        raise not_found from None
    try:
        info = client.select_folder(path, readonly=readonly)
    except Exception as exc:
        if "NONEXISTENT" in str(exc).upper() or "doesn't exist" in str(exc):
            raise not_found from None
        raise
    if int(info.get(b"UIDVALIDITY", uid_validity)) != int(uid_validity):
        raise not_found  # the id was issued for an older incarnation of this folder
    return uid, path


def _addresses(header) -> list[dict]:
    if header is None:
        return []
    try:
        return [{"name": a.display_name or "", "address": a.addr_spec}
                for a in header.addresses if a.addr_spec and a.addr_spec != "<>"]
    except Exception:  # malformed header: nothing usable to reply to
        return []


def _attachments(msg) -> list[dict]:
    """Every leaf part with a filename or attachment disposition, content base64-encoded."""
    out = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        disposition = part.get_content_disposition()
        filename = part.get_filename()
        if not filename and disposition != "attachment":
            continue  # the text/html bodies of the original, not attachments
        data = part.get_payload(decode=True) or b""
        entry = {"filename": filename or "attachment", "contentType": part.get_content_type(),
                 "content": base64.b64encode(data).decode("ascii"),
                 "contentDisposition": disposition or "attachment"}
        if part.get("Content-ID"):
            entry["cid"] = str(part["Content-ID"]).strip().strip("<>")
        out.append(entry)
    return out


@op("submit.reference")
def reference(ctx, message: str, attachments: bool = False):
    """The referenced message's threading headers, addresses and flags (+ attachments)."""
    item = "BODY.PEEK[]" if attachments else "BODY.PEEK[HEADER]"
    with ctx.client() as client:
        uid, path = _select_reference(ctx, client, message, readonly=True)
        fetched = client.fetch([uid], [item, "FLAGS"])
    data = fetched.get(uid)
    if not data:
        raise errors.MessageNotFound("Referenced message was not found")
    raw = data.get(b"BODY[]") or data.get(b"BODY[HEADER]") or b""
    msg = BytesParser(policy=policy.default).parsebytes(raw, headersonly=not attachments)

    def header(name):
        try:
            value = msg[name]
        except Exception:
            return None
        return str(value) if value is not None else None

    out = {
        "path": path, "uid": uid, "flags": [_text(f) for f in data.get(b"FLAGS", ())],
        "messageId": header("Message-ID"), "inReplyTo": header("In-Reply-To"),
        "references": header("References"), "subject": header("Subject"),
        "from": _addresses(msg["From"]), "replyTo": _addresses(msg["Reply-To"]),
    }
    if attachments:
        out["attachments"] = _attachments(msg)
    return out


@op("submit.flag")
def flag(ctx, message: str, flag: str):
    """Add one flag (\\Answered, $Forwarded) to the referenced message."""
    with ctx.client() as client:
        uid, path = _select_reference(ctx, client, message, readonly=False)
        client.add_flags([uid], [flag])
    return {"path": path, "uid": uid, "flag": flag}


def pick_sent_folder(folders) -> str | None:
    """From LIST results [(flags, delimiter, name)]: the folder flagged \\Sent (RFC 6154), else
    the first of the usual names that exists (any case)."""
    for flags, _delim, name in folders:
        if b"\\Sent" in flags or "\\Sent" in [_text(f) for f in flags]:
            return _text(name)
    names = {_text(name).lower(): _text(name) for _f, _d, name in folders}
    for candidate in SENT_NAMES:
        if candidate.lower() in names:
            return names[candidate.lower()]
    return None


@op("submit.sentcopy")
def sent_copy(ctx, queue_id: str):
    """APPEND the sent message (Bcc stripped) with \\Seen to Sent; Gmail files it itself."""
    raw = outbox.raw_message(ctx.redis, queue_id)
    if raw is None:
        raise errors.NotFound("Queued message is gone", code="QueueItemNotFound")
    with ctx.client() as client:
        caps = {_text(c).upper() for c in client.capabilities()}
        if "X-GM-EXT-1" in caps:
            return {"skipped": "gmail"}
        folder = pick_sent_folder(client.list_folders())
        if folder is None:
            return {"skipped": "noSentFolder"}
        resp = client.append(folder, strip_bcc(raw), flags=(b"\\Seen",))
    out = {"path": folder}
    text = _text(resp or b"")
    if "APPENDUID" in text.upper():
        try:
            out["uid"] = int(text.upper().split("APPENDUID", 1)[1].split("]")[0].split()[1])
        except (IndexError, ValueError):
            pass
    return out
