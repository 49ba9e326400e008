"""Whole IMAP responses (literals included) from a line/byte reader, and their parsed form."""
from __future__ import annotations

import re

from imapclient.response_parser import parse_response

# A server literal announces itself at the very end of a line: `{12}` (or `~{12}`, literal8).
_LITERAL = re.compile(rb"~?\{(\d+)\}$")
MAX_LITERALS = 1000   # per response: a broken server must not keep us reading forever


class ProtocolError(ValueError):
    """The bytes are not an IMAP response (e.g. EOF inside a literal)."""


def literal_size(line: bytes) -> int | None:
    """Pure: b'* STATUS {12}' -> 12; None when the line (CRLF stripped) ends without a literal."""
    match = _LITERAL.search(line)
    return int(match.group(1)) if match else None


def read_response(get_line, read) -> list:
    """One complete response in imaplib's shape: [b'line'] or [(b'line {n}', data), ..., b'tail'].

    `get_line()` returns the next line without CRLF; `read(n)` returns exactly n bytes (imaplib's
    own reader: it drains its buffer before the socket, so bytes already read ahead are not lost).
    Literal bytes are taken verbatim: a CRLF or `{3}` inside them is data, not framing."""
    parts = []
    line = get_line()
    for _ in range(MAX_LITERALS):
        size = literal_size(line)
        if size is None:
            parts.append(line)
            return parts
        data = read(size) if size else b""
        if len(data) != size:
            raise ProtocolError(f"EOF inside a {size}-byte literal")
        parts.append((line, data))
        line = get_line()   # the rest of the response; may announce another literal
    raise ProtocolError("too many literals in one response")


def first_line(parts: list) -> bytes:
    head = parts[0]
    return head[0] if isinstance(head, tuple) else head


def parse_untagged(parts: list):
    """Parts of an untagged response -> imapclient tuple, e.g. (b'STATUS', b'name', (...))."""
    head = first_line(parts)
    if not head.startswith(b"* "):
        raise ProtocolError(f"not an untagged response: {head[:80]!r}")
    rest = head[2:]
    if rest.startswith((b"OK ", b"NO ")) and len(parts) == 1:
        return tuple(rest.split(b" ", 1))
    first = parts[0]
    stripped = (first[0][2:], first[1]) if isinstance(first, tuple) else rest
    return parse_response([stripped] + list(parts[1:]))


def regroup(stored: list) -> list[list]:
    """imaplib's untagged_responses[typ] list -> one parts list per response.

    imaplib keeps a response with literals as several entries: (line, literal) tuples followed by
    the trailing bytes; a plain bytes entry always ends a response."""
    out, parts = [], []
    for item in stored or ():
        parts.append(item)
        if not isinstance(item, tuple):
            out.append(parts)
            parts = []
    if parts:
        out.append(parts + [b""])
    return out
