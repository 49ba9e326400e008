"""Walk an imapclient BODYSTRUCTURE into attachments and text part groups (pure, no I/O)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote_to_bytes

from imapapi import ids
from sidecar.imap.codec import decode_words, to_text

_PARAM = re.compile(r"^([^*]+)(?:\*(\d+))?(\*)?$")
TEXT_GROUPS = ("plain", "html")   # group 0, group 1; any other text subtype goes to group 2


@dataclass
class Part:
    """One leaf of the MIME tree, with what the text/attachment code needs to fetch and decode it."""

    number: str
    type: str
    subtype: str
    params: dict = field(default_factory=dict)
    content_id: str | None = None
    encoding: str = "7bit"
    size: int = 0
    disposition: str | None = None
    disposition_params: dict = field(default_factory=dict)
    related: bool = False        # somewhere below a multipart/related

    @property
    def content_type(self) -> str:
        return f"{self.type}/{self.subtype}"

    @property
    def charset(self) -> str | None:
        return self.params.get("charset")

    @property
    def filename(self) -> str | None:
        return self.disposition_params.get("filename") or self.params.get("name")

    @property
    def is_text(self) -> bool:
        """A text/* leaf shown as the message body (not one attached with a disposition)."""
        return self.type == "text" and self.disposition in (None, "inline")


@dataclass
class Structure:
    parts: list[Part]
    attachments: list[Part]
    groups: list[list[str]]                  # [[plain parts], [html parts], [other text parts]]
    encoded_size: dict[str, int]             # text subtype -> encoded bytes

    def part(self, number: str) -> Part | None:
        for p in self.parts:
            if p.number == number:
                return p
        return None


def _s(value) -> str | None:
    if value is None:
        return None
    return to_text(value)


def decode_params(raw) -> dict:
    """Flat (k, v, k, v) params -> {lower key: str}; RFC 2231 continuations/charsets and RFC 2047."""
    if not isinstance(raw, (tuple, list)):
        return {}
    pieces: dict[str, list] = {}
    plain: dict[str, str] = {}
    for i in range(0, len(raw) - 1, 2):
        key = (_s(raw[i]) or "").strip().lower()
        value = raw[i + 1]
        value = value if isinstance(value, bytes) else (_s(value) or "").encode("utf-8")
        if "*" not in key:   # nearly every parameter: no RFC 2231 continuation or charset
            plain[key] = value
            continue
        match = _PARAM.match(key)
        if not match or (match.group(2) is None and match.group(3) is None):
            plain[key] = value
            continue
        index = int(match.group(2) or 0)
        pieces.setdefault(match.group(1), []).append((index, bool(match.group(3)), value))
    out = {k: decode_words(v) for k, v in plain.items()}
    for name, items in pieces.items():
        items.sort(key=lambda item: item[0])
        charset, data = "utf-8", b""
        for n, (_index, encoded, value) in enumerate(items):
            if encoded:
                if n == 0 and value.count(b"'") >= 2:
                    # charset'language'value (RFC 2231 §4); only the first piece carries it
                    cs, _lang, value = value.split(b"'", 2)
                    charset = cs.decode("ascii", "replace") or charset
                data += unquote_to_bytes(value)
            else:
                data += value
        # an RFC 2231 value beats the plain one of the same name (clients send both)
        out[name] = to_text(data, charset)
    return out


def _is_multipart(node) -> bool:
    return isinstance(node, (tuple, list)) and len(node) > 0 and isinstance(node[0], (list, tuple))


def _disposition(raw) -> tuple[str | None, dict]:
    if isinstance(raw, (tuple, list)) and raw and raw[0] is not None:
        return (_s(raw[0]) or "").lower() or None, decode_params(raw[1] if len(raw) > 1 else None)
    return None, {}


def _leaf(node, number: str, related: bool) -> Part:
    ctype = (_s(node[0]) or "application").lower()
    subtype = (_s(node[1]) or "octet-stream").lower()
    size = node[6] if len(node) > 6 and isinstance(node[6], int) else 0
    # where the disposition sits depends on the body type (RFC 3501 §7.4.2 body-type-*)
    if ctype == "text":
        disp_index = 9
    elif ctype == "message" and subtype in ("rfc822", "global") and len(node) > 9 \
            and isinstance(node[8], (tuple, list)):
        disp_index = 11
    else:
        disp_index = 8
    disposition, disp_params = _disposition(node[disp_index] if len(node) > disp_index else None)
    cid = _s(node[3]) if len(node) > 3 else None
    return Part(number=number, type=ctype, subtype=subtype, params=decode_params(node[2]),
                content_id=cid.strip() if cid else None,
                encoding=(_s(node[5]) or "7bit").lower() if len(node) > 5 else "7bit",
                size=size, disposition=disposition, disposition_params=disp_params,
                related=related)


def _walk(node, prefix: str, related: bool, out: list[Part]) -> None:
    if _is_multipart(node):
        children = node[0]
        subtype = (_s(node[1]) or "mixed").lower() if len(node) > 1 else "mixed"
        inner_related = related or subtype == "related"
        for i, child in enumerate(children, 1):
            _walk(child, f"{prefix}.{i}" if prefix else str(i), inner_related, out)
        return
    # A top-level single-part body is part "1". An attached message/rfc822 is one leaf: its own
    # text and attachments belong to that message, not to this one (the original merged them).
    out.append(_leaf(node, prefix or "1", related))


def analyze(bodystructure) -> Structure:
    """BODYSTRUCTURE (imapclient BodyData or raw tuples) -> Structure."""
    parts: list[Part] = []
    if bodystructure:
        _walk(bodystructure, "", False, parts)
    attachments, groups, sizes = [], [[], [], []], {}
    for part in parts:
        if part.is_text:
            index = TEXT_GROUPS.index(part.subtype) if part.subtype in TEXT_GROUPS else 2
            groups[index].append(part.number)
            sizes[part.subtype] = sizes.get(part.subtype, 0) + part.size
        else:
            attachments.append(part)
    return Structure(parts=parts, attachments=attachments, groups=groups, encoded_size=sizes)


def attachment_entry(part: Part, mailbox_no: int, uid: int) -> dict:
    """One `attachments[]` item as the API shows it."""
    entry = {
        "id": ids.encode_attachment_id(mailbox_no, uid, part.number),
        "contentType": part.content_type,
        "encodedSize": part.size,
        "filename": part.filename or False,
        "embedded": part.related,
        "inline": part.disposition == "inline" or (part.disposition is None and part.related),
    }
    if part.content_id:
        cid = part.content_id
        entry["contentId"] = cid if cid.startswith("<") else f"<{cid}>"
    return entry


def summary(bodystructure, mailbox_no: int, uid: int) -> dict:
    """-> {"attachments": [...]} (only when any) and {"text": {id, encodedSize}} for a list entry."""
    structure = analyze(bodystructure)
    out: dict = {}
    if structure.attachments:
        out["attachments"] = [attachment_entry(p, mailbox_no, uid) for p in structure.attachments]
    out["text"] = {"id": ids.encode_text_id(mailbox_no, uid, structure.groups),
                   "encodedSize": structure.encoded_size}
    return out
