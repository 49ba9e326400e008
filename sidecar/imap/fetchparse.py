"""A faster drop-in for imapclient's parse_fetch_response (same result; falls back to it when unsure)."""
# imapclient lexes FETCH replies one byte at a time through Python iterators: for a 20-message
# listing page that was ~60 % of the FETCH's wall time, more than Dovecot and the socket
# together. Here one regex takes a whole token per step and tuples are built with a stack;
# the typed conversions (ENVELOPE, INTERNALDATE, BODYSTRUCTURE) stay imapclient's own, so
# every field has exactly imapclient's types. Anything this lexer is not sure it reads the
# way imapclient does (a quote inside an atom, '%', control bytes, an unclosed bracket or
# quote, a stray ')') hands the whole reply to imapclient's parser, errors included.
from __future__ import annotations

import logging
import re
from collections import defaultdict
from datetime import datetime

from imapclient.fixed_offset import FixedOffset
from imapclient.response_types import BodyData

from . import compat
from .compat import convert_envelope, convert_internaldate

log = logging.getLogger(__name__)
_stock_parse = compat.stock_parse_fetch_response

# One token per match, after optional whitespace; groups: "(", ")", a quoted string's content,
# an atom (IMAP atom bytes, with [...] sections that may hold spaces and parens, e.g.
# BODY[HEADER.FIELDS (FROM TO)]<0>), any other single byte (imapclient treats those specially),
# and a quote glued to the end of an atom (imapclient rejects that).
_TOKEN = re.compile(
    rb'[ \t\r\n]*(?:'
    rb'(\()|(\))'
    rb'|"([^"\\]*(?:\\.[^"\\]*)*)"'
    rb'|((?:[^\x00-\x20()%"\[]+|\[[^\]]*\])(?:[^\x00-\x20()%"\[]+|\[[^\]]*\])*)'
    rb'|([^ \t\r\n]))(?:(?<=[^\x00-\x20()%"])(")?)?', re.S)
_ESCAPE = re.compile(rb'\\([\\"])')


# The two date shapes servers send nearly always; anything else goes to imapclient's parser.
_INTERNALDATE = re.compile(rb" ?(\d{1,2})-([A-Za-z]{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)")
_RFC2822 = re.compile(rb"(?:[A-Za-z]{3}, )?(\d{1,2}) ([A-Za-z]{3}) (\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)")
_MONTHS = {m: i for i, m in enumerate(
    b"jan feb mar apr may jun jul aug sep oct nov dec".split(), 1)}
_ZONES: dict[bytes, FixedOffset] = {}


def _fast_date(value, pattern):
    """-> an aware datetime as imapclient builds it (FixedOffset zone), or None when unsure."""
    m = pattern.fullmatch(value) if isinstance(value, bytes) else None
    if m is None:
        return None
    day, month, year, hour, minute, second, sign, zh, zm = m.groups()
    month = _MONTHS.get(month.lower())
    zone_key = sign + zh + zm
    if month is None or zone_key == b"-0000":   # imapclient makes "-0000" a naive datetime
        return None
    zone = _ZONES.get(zone_key)
    if zone is None:
        seconds = (int(zh) * 3600 + int(zm) * 60) * (-1 if sign == b"-" else 1)
        zone = _ZONES.setdefault(zone_key, FixedOffset(seconds / 60))   # as imapclient: float
    try:
        return datetime(int(year), month, int(day), int(hour), int(minute), int(second),
                        tzinfo=zone)
    except ValueError:
        return None


def _internaldate(value, normalise_times: bool):
    if not normalise_times:
        fast = _fast_date(value, _INTERNALDATE)
        if fast is not None:
            return fast
    return convert_internaldate(value, normalise_times)


def _envelope(value, normalise_times: bool):
    if not normalise_times and isinstance(value, tuple) and len(value) >= 10 and value[0]:
        fast = _fast_date(value[0], _RFC2822)
        if fast is not None:
            envelope = convert_envelope((None,) + value[1:], normalise_times)
            envelope.date = fast
            return envelope
    return convert_envelope(value, normalise_times)


class Unusual(Exception):
    """Input this lexer does not read exactly like imapclient: use imapclient's parser."""


def parse_atoms(data: list) -> list:
    """imaplib's FETCH data (bytes lines and (text, literal) pairs) -> the top-level atoms."""
    top: list = []
    stack: list[list] = []
    current = top
    for chunk in data:
        if isinstance(chunk, tuple):
            text, literal = chunk
        else:
            text, literal = chunk, None
        if literal is not None and not text.endswith(b"}"):
            raise Unusual("literal without a {n} marker")
        if text.endswith(b"}") and literal is None:
            raise Unusual("literal marker without a literal")
        # findall runs the whole chunk in C; the loop below only dispatches on the groups.
        for opened, closed, quoted, token, odd, glued in _TOKEN.findall(text):
            if token:
                if glued:
                    raise Unusual("quote right after an atom")   # imapclient rejects this
                if token[:1] == b"{":
                    if literal is None or token[-1:] != b"}" or not text.endswith(token):
                        raise Unusual("literal marker")
                    if int(token[1:-1]) != len(literal):
                        raise Unusual("literal size")
                    current.append(literal)
                    literal, text = None, b""   # one literal per chunk, at its end
                elif token == b"NIL":
                    current.append(None)
                elif token.isdigit() and (token[:1] != b"0" or len(token) == 1):
                    current.append(int(token))
                else:
                    current.append(token)
            elif opened:
                stack.append(current)
                current = []
            elif closed:
                if not stack:
                    raise Unusual("')' outside a list")
                done = tuple(current)
                current = stack.pop()
                current.append(done)
            elif odd:
                raise Unusual(f"byte {odd!r}")
            else:   # a quoted string (possibly empty)
                if b"\\" in quoted:
                    quoted = _ESCAPE.sub(rb"\1", quoted)
                current.append(quoted)
    if stack:
        raise Unusual("unclosed list")
    return top


def parse_fetch_response(text: list, normalise_times: bool = True, uid_is_key: bool = True):
    """Same contract as imapclient.response_parser.parse_fetch_response."""
    if text == [None]:
        return defaultdict()
    try:
        return _parse(text, normalise_times, uid_is_key)
    except (Unusual, ValueError):
        # imapclient's parser reads it its own way, or raises its own ProtocolError
        return _stock_parse(text, normalise_times, uid_is_key)


def _parse(text: list, normalise_times: bool, uid_is_key: bool) -> defaultdict:
    atoms = parse_atoms(text)
    if len(atoms) % 2:
        raise Unusual("a message number without its list")
    parsed: defaultdict = defaultdict(dict)
    for i in range(0, len(atoms), 2):
        seq, items = atoms[i], atoms[i + 1]
        if type(seq) is not int or not isinstance(items, tuple) or len(items) % 2:
            raise Unusual("not a FETCH reply")
        key = seq
        fields: dict = {b"SEQ": seq}
        for j in range(0, len(items), 2):
            name, value = items[j], items[j + 1]
            if not isinstance(name, bytes):
                raise Unusual("item name")
            name = name.upper()
            if name == b"UID":
                if type(value) is not int:
                    raise Unusual("UID")
                if uid_is_key:
                    key = value
                else:
                    fields[name] = value
            elif name == b"INTERNALDATE":
                fields[name] = _internaldate(value, normalise_times)
            elif name == b"ENVELOPE":
                fields[name] = _envelope(value, normalise_times)
            elif name in (b"BODY", b"BODYSTRUCTURE"):
                fields[name] = BodyData.create(value)
            else:
                fields[name] = value
        parsed[key].update(fields)
    return parsed


def install() -> bool:
    """Make IMAPClient.fetch in this process use this parser (the sidecar calls it at start).

    Only where this imapclient has the names we rely on; otherwise its own parser stays."""
    needed = compat.install_fetch_parser(parse_fetch_response)
    if not needed:
        log.warning("imapclient's internals changed: FETCH replies use its own (slower) parser")
    return needed
