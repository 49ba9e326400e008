"""Incremental transfer-encoding and charset decoding to UTF-8, safe on data cut at any byte."""
from __future__ import annotations

import binascii
import codecs
import re

_B64_JUNK = re.compile(rb"[^A-Za-z0-9+/=]")
_QP_TAIL = re.compile(rb"=(?:[0-9A-Fa-f]?|\r)$")
_ALIASES = {"ks_c_5601-1987": "cp949", "x-sjis": "shift_jis", "gb2312": "gb18030",
            "gbk": "gb18030", "unicode-1-1-utf-7": "utf-7", "iso-8859-8-i": "iso-8859-8",
            "us-ascii": "utf-8", "ascii": "utf-8", "unknown-8bit": "utf-8", "x-unknown": "utf-8"}


def charset_codec(charset: str | None) -> str:
    """A Python codec name for a MIME charset; unknown or missing -> utf-8.

    us-ascii maps to utf-8 because mislabelled 8-bit text is far more often UTF-8 than not."""
    name = (charset or "utf-8").split("*", 1)[0].strip().strip('"').lower()
    name = _ALIASES.get(name, name)
    try:
        return codecs.lookup(name).name
    except LookupError:
        return "utf-8"


class TransferDecoder:
    """feed(encoded bytes) -> decoded bytes; keeps an incomplete quantum/escape for the next feed."""

    def __init__(self, encoding: str | None):
        self.encoding = (encoding or "7bit").strip().lower()
        self._carry = b""

    def feed(self, data: bytes) -> bytes:
        data = self._carry + data
        self._carry = b""
        if self.encoding == "base64":
            data = _B64_JUNK.sub(b"", data)
            cut = len(data) - len(data) % 4
            data, self._carry = data[:cut], data[cut:]
            return _b64(data)
        if self.encoding == "quoted-printable":
            # an "=" escape or soft line break may be split by the chunk boundary
            tail = _QP_TAIL.search(data[-3:])
            if tail:
                cut = len(data) - (len(data[-3:]) - tail.start())
                data, self._carry = data[:cut], data[cut:]
            return binascii.a2b_qp(data)
        return data

    def finish(self) -> bytes:
        """Decode whatever is left at the real end of the part (not at a cap)."""
        rest, self._carry = self._carry, b""
        if not rest:
            return b""
        if self.encoding == "base64":
            return _b64(rest + b"=" * (-len(rest) % 4))
        if self.encoding == "quoted-printable":
            return binascii.a2b_qp(rest.rstrip(b"=\r"))
        return rest


def _b64(data: bytes) -> bytes:
    try:
        return binascii.a2b_base64(data)
    except binascii.Error:
        # padding in the middle (concatenated parts): decode quantum by quantum, skip bad ones
        out = bytearray()
        for i in range(0, len(data) - 3, 4):
            try:
                out += binascii.a2b_base64(data[i:i + 4])
            except binascii.Error:
                pass
        return bytes(out)


class TextDecoder:
    """Transfer encoding + charset -> str, incrementally; a cut multibyte character is dropped."""

    def __init__(self, encoding: str | None, charset: str | None):
        self.transfer = TransferDecoder(encoding)
        self.chars = codecs.getincrementaldecoder(charset_codec(charset))(errors="replace")
        self._cr = False

    def feed(self, data: bytes) -> str:
        return self._newlines(self.chars.decode(self.transfer.feed(data), final=False))

    def finish(self, *, complete: bool) -> str:
        """complete=True at the real end of the part; False when the data was cut at a cap, so a
        trailing partial escape or multibyte sequence is dropped instead of becoming U+FFFD."""
        if not complete:
            return ""
        text = self.chars.decode(self.transfer.finish(), final=True)
        return self._newlines(text, final=True)

    def _newlines(self, text: str, final: bool = False) -> str:
        # CRLF may be split between feeds: hold a trailing CR back until we see the next char
        if self._cr:
            text = "\r" + text
            self._cr = False
        if text.endswith("\r") and not final:
            text, self._cr = text[:-1], True
        return text.replace("\r\n", "\n").replace("\r", "\n")


def utf8_cut(text: str, max_bytes: int) -> tuple[str, bool]:
    """Cut text so its UTF-8 form is at most max_bytes, on a character boundary -> (text, cut?)."""
    if max_bytes <= 0:
        return text, False
    raw = text.encode("utf-8")
    if len(raw) <= max_bytes:
        return text, False
    return raw[:max_bytes].decode("utf-8", "ignore"), True


def encoded_budget(encoding: str | None, max_bytes: int) -> int:
    """How many encoded bytes probably yield max_bytes of output: the first partial FETCH size.

    An estimate only; the caller fetches more when the decoded text falls short."""
    encoding = (encoding or "").lower()
    if encoding == "base64":
        # 3 bytes per 4 chars, plus a CRLF every 76 chars, plus one quantum of slack
        return (max_bytes + 2) // 3 * 4 * 78 // 76 + 8
    if encoding == "quoted-printable":
        return max_bytes + max_bytes // 4 + 16
    return max_bytes + 4


def unflow(text: str, delsp: bool = False) -> str:
    """RFC 3676 format=flowed -> plain lines (soft breaks joined, space-stuffing removed)."""
    out: list[str] = []
    buf = ""
    for line in text.split("\n"):
        if line.startswith(" "):
            line = line[1:]
        if line.endswith(" ") and line != "-- ":
            buf += line[:-1] if delsp else line
            continue
        out.append(buf + line)
        buf = ""
    if buf:
        out.append(buf)
    return "\n".join(out)
