"""Build outgoing messages with the standard library `email` package, and reply/forward headers."""
from __future__ import annotations

import base64
import binascii
import mimetypes
import re
import uuid
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, localtime

from .errors import BadRequest

# Headers the composer owns: a caller value would break the MIME structure or leak Bcc.
RESERVED_HEADERS = {"bcc", "mime-version", "content-type", "content-transfer-encoding",
                    "content-disposition"}
_RE_PREFIX = re.compile(r"^\s*re\s*(\[\d+\])?\s*:", re.I)
_FWD_PREFIX = re.compile(r"^\s*(fwd?|fw)\s*:", re.I)
_MSGID = re.compile(r"<[^<>\s]+>")


def bad(key: str, message: str) -> BadRequest:
    """A 400 in the validation shape, naming the offending field."""
    return BadRequest("Invalid input", code="InvalidInput", fields=[{"key": key, "message": message}])


# -- reply / forward (pure) ------------------------------------------------------------------
def _ids(value) -> list[str]:
    """Message-ID tokens from a header value (or list of values), each wrapped in <>."""
    if not value:
        return []
    if isinstance(value, (list, tuple)):
        value = " ".join(str(v) for v in value if v)
    found = _MSGID.findall(value)
    if found:
        return found
    return [f"<{tok.strip('<>')}>" for tok in str(value).split() if tok.strip("<>")]


def reference_headers(parent: dict, action: str = "reply") -> dict:
    """Headers a reply/forward of `parent` gets: {inReplyTo?, references, subject?, to?}.

    parent: {messageId, inReplyTo?, references?, subject?, from: [addr], replyTo: [addr]}.
    References follow RFC 5322 3.6.4: the parent's References (or its In-Reply-To when it has
    none), then the parent's own Message-ID last.
    """
    out: dict = {}
    parent_id = (_ids(parent.get("messageId")) or [None])[0]
    chain = _ids(parent.get("references")) or _ids(parent.get("inReplyTo"))
    refs: list[str] = []
    for token in chain:
        if token not in refs and token != parent_id:
            refs.append(token)
    if parent_id:
        refs.append(parent_id)
        if action == "reply":
            out["inReplyTo"] = parent_id
    if refs:
        out["references"] = " ".join(refs)
    subject = (parent.get("subject") or "").strip()
    if subject:
        if action == "forward":
            out["subject"] = subject if _FWD_PREFIX.match(subject) else f"Fwd: {subject}"
        else:
            out["subject"] = subject if _RE_PREFIX.match(subject) else f"Re: {subject}"
    if action == "reply":
        recipients = parent.get("replyTo") or parent.get("from") or []
        out["to"] = [{"name": a.get("name") or "", "address": a["address"]}
                     for a in recipients if a.get("address")]
    return out


def apply_reference(payload: dict, parent: dict, action: str) -> dict:
    """Copy of the submit payload with reference-derived headers; caller values win for
    subject and to, never for In-Reply-To/References (they must point at the parent)."""
    derived = reference_headers(parent, action)
    out = dict(payload)
    if not out.get("subject") and derived.get("subject"):
        out["subject"] = derived["subject"]
    if action == "reply" and not (out.get("to") or out.get("cc") or out.get("bcc")):
        out["to"] = derived.get("to") or []
    out["inReplyTo"] = derived.get("inReplyTo")
    out["references"] = derived.get("references")
    if action == "forward" and payload.get("reference", {}).get("attachments", True):
        out["attachments"] = list(payload.get("attachments") or []) + list(
            parent.get("attachments") or [])
    return out


# -- composition -----------------------------------------------------------------------------
def ascii_address(address: str) -> str:
    """IDN domain in its ASCII (punycode) form: what headers and RCPT TO can carry without
    SMTPUTF8. A non-ASCII local part stays as is (only SMTPUTF8 can carry it)."""
    local, _, domain = address.rpartition("@")
    if domain and not domain.isascii():
        domain = domain.encode("idna").decode("ascii")
    return f"{local}@{domain}" if local else address


def _address(obj: dict) -> Address:
    local, _, domain = ascii_address(obj["address"]).rpartition("@")
    return Address(display_name=obj.get("name") or "", username=local, domain=domain)


def needs_smtputf8(payload: dict) -> bool:
    return any(not ascii_address(a["address"]).isascii()
               for field in ("from", "to", "cc", "bcc", "replyTo")
               for a in ([payload[field]] if isinstance(payload.get(field), dict)
                         else payload.get(field) or []))


def _domain(payload: dict) -> str:
    address = (payload.get("from") or {}).get("address") or ""
    return address.rpartition("@")[2] or "localhost"


def new_message_id(domain: str) -> str:
    return f"<{uuid.uuid4()}@{domain}>"


def decode_attachment(index: int, att: dict) -> bytes:
    content = att.get("content")
    if not isinstance(content, str):
        raise bad(f"attachments.{index}.content", "Missing data for required field.")
    try:
        # validate=True refuses stray characters instead of silently dropping them
        return base64.b64decode("".join(content.split()), validate=True)
    except (binascii.Error, ValueError):
        raise bad(f"attachments.{index}.content", "Not valid base64 content") from None


def _mime_type(att: dict) -> tuple[str, str]:
    ctype = (att.get("contentType") or "").lower().split(";")[0].strip()
    if not ctype and att.get("filename"):
        ctype = mimetypes.guess_type(att["filename"])[0] or ""
    if "/" not in ctype or ctype.startswith(("multipart/", "message/")):
        # multipart/message bodies can not be set from bytes; ship them opaque
        ctype = "application/octet-stream"
    maintype, subtype = ctype.split("/", 1)
    return maintype, subtype


def _strip_part_mime_version(msg: EmailMessage) -> None:
    """The email package writes MIME-Version into every sub-part; only the top needs it."""
    for part in msg.walk():
        if part is not msg and "MIME-Version" in part:
            del part["MIME-Version"]


def estimate_size(payload: dict) -> int:
    """Decoded size of the content the caller sent (text, html, attachments)."""
    total = len((payload.get("text") or "").encode()) + len((payload.get("html") or "").encode())
    for att in payload.get("attachments") or []:
        total += len(att.get("content") or "") * 3 // 4
    return total


def build(payload: dict, *, now=None) -> tuple[bytes, str]:
    """-> (raw RFC 5322 bytes with CRLF, Message-ID header value). Bcc is never written.

    Input the email package refuses (e.g. a line break in a header value) is a 400, not a 500.
    """
    try:
        return _build(payload, now)
    except BadRequest:
        raise
    except (ValueError, TypeError, IndexError) as exc:   # IndexError: email's parser on "<>"
        raise bad("_schema", f"Can not build the message: {exc}") from None


def _build(payload: dict, now) -> tuple[bytes, str]:
    msg = EmailMessage(policy=policy.default)
    for field, header in (("from", "From"), ("to", "To"), ("cc", "Cc")):
        value = payload.get(field)
        if not value:
            continue
        try:
            msg[header] = _address(value) if isinstance(value, dict) else [_address(a) for a in value]
        except (ValueError, IndexError, KeyError, TypeError) as exc:
            raise bad(field, f"Invalid address: {exc}") from None
    if payload.get("subject"):
        msg["Subject"] = payload["subject"]
    msg["Date"] = format_datetime(now or localtime())
    message_id = payload.get("messageId")
    if message_id:
        message_id = message_id.strip()
        if not message_id.startswith("<"):
            message_id = f"<{message_id}>"
    else:
        message_id = new_message_id(_domain(payload))
    msg["Message-ID"] = message_id
    if payload.get("inReplyTo"):
        msg["In-Reply-To"] = payload["inReplyTo"]
    if payload.get("references"):
        msg["References"] = payload["references"]
    for name, value in (payload.get("headers") or {}).items():
        if name.lower() in RESERVED_HEADERS or (
                name.lower() in ("in-reply-to", "references") and payload.get("reference")):
            continue
        try:
            if name in msg:
                msg.replace_header(name, str(value))
            else:
                msg[name] = str(value)
        except (ValueError, TypeError) as exc:
            raise bad(f"headers.{name}", str(exc)) from None
    if msg["Message-ID"] != message_id:
        message_id = str(msg["Message-ID"])  # a caller header replaced it: report what is sent
    _set_body(msg, payload)
    _strip_part_mime_version(msg)
    # Only a non-ASCII local part forces raw UTF-8 headers (RFC 6532); else stay 7-bit clean.
    out_policy = policy.SMTPUTF8 if needs_smtputf8(payload) else policy.SMTP
    return msg.as_bytes(policy=out_policy), message_id


def _cte(content: str) -> dict:
    """Quoted-printable for non-ASCII text: 7-bit clean mail needs no 8BITMIME anywhere."""
    return {} if content.isascii() else {"cte": "quoted-printable"}


def _set_body(msg: EmailMessage, payload: dict) -> None:
    text, html = payload.get("text"), payload.get("html")
    if text is not None and html is not None:
        msg.set_content(text, **_cte(text))
        msg.add_alternative(html, subtype="html", **_cte(html))
        html_part = msg.get_payload()[1]
    elif html is not None:
        msg.set_content(html, subtype="html", **_cte(html))
        html_part = msg
    else:
        msg.set_content(text or "", **_cte(text or ""))
        html_part = None
    attachments = payload.get("attachments") or []
    decoded = [(att, decode_attachment(i, att)) for i, att in enumerate(attachments)]
    # Images referenced by cid belong next to the HTML in multipart/related; the rest go to mixed.
    related = [(a, d) for a, d in decoded if a.get("cid") and html_part is not None]
    for att, data in related:
        maintype, subtype = _mime_type(att)
        cid = att["cid"].strip("<>")
        html_part.add_related(data, maintype, subtype, cid=f"<{cid}>",
                              filename=att.get("filename") or None, disposition="inline")
    for att, data in decoded:
        if any(att is a for a, _ in related):
            continue
        maintype, subtype = _mime_type(att)
        kwargs = {"filename": att.get("filename") or None,
                  "disposition": att.get("contentDisposition") or "attachment"}
        if att.get("cid"):
            kwargs["cid"] = f"<{att['cid'].strip('<>')}>"
        msg.add_attachment(data, maintype, subtype, **kwargs)


def envelope(payload: dict) -> dict:
    """SMTP envelope: MAIL FROM the sender, RCPT TO every to, cc and bcc address (deduplicated)."""
    rcpt: list[str] = []
    for field in ("to", "cc", "bcc"):
        for addr in payload.get(field) or []:
            address = ascii_address(addr["address"])
            if address not in rcpt:
                rcpt.append(address)
    return {"from": ascii_address(payload["from"]["address"]), "to": rcpt}


def strip_bcc(raw: bytes) -> bytes:
    """Defensive: the raw message without any Bcc header (used for the Sent copy)."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    lines = re.split(rb"\r\n(?![ \t])", head)
    kept = [line for line in lines if not line.lower().startswith(b"bcc:")]
    return b"\r\n".join(kept) + sep + body
