"""Unit tests for incremental transfer/charset decoding and safe cuts of partial data."""
import base64
import quopri

import pytest

from sidecar.imap.textdecode import (TextDecoder, TransferDecoder, charset_codec, encoded_budget,
                                     unflow, utf8_cut)

SAMPLE = ("Tere, Jõgeva! Привет мир. 日本語のテキスト. " * 40).encode("utf-8")


def _b64_lines(data: bytes) -> bytes:
    return base64.encodebytes(data).replace(b"\n", b"\r\n")


def _feed_in_chunks(decoder, data: bytes, size: int) -> bytes:
    out = b""
    for i in range(0, len(data), size):
        out += decoder.feed(data[i:i + size])
    return out + decoder.finish()


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 76, 1000])
@pytest.mark.parametrize("encoding,encode", [
    ("base64", _b64_lines),
    ("quoted-printable", lambda d: quopri.encodestring(d).replace(b"\n", b"\r\n")),
    ("7bit", lambda d: d),
])
def test_transfer_decoder_any_chunk_boundary(encoding, encode, size):
    assert _feed_in_chunks(TransferDecoder(encoding), encode(SAMPLE), size) == SAMPLE


def test_qp_soft_line_break_split_at_every_position():
    encoded = b"abc=\r\ndef=C3=B5g=\r\nh"
    for cut in range(len(encoded) + 1):
        dec = TransferDecoder("quoted-printable")
        assert dec.feed(encoded[:cut]) + dec.feed(encoded[cut:]) + dec.finish() == "abcdefõgh".encode()


@pytest.mark.parametrize("charset,text", [
    ("iso-8859-1", "Größe café"),
    ("windows-1251", "Привет, мир"),
    ("shift_jis", "日本語のテキスト"),
    ("utf-8", "Jõgeva 日本"),
])
def test_charsets_decoded_byte_by_byte(charset, text):
    raw = text.encode(charset)
    dec = TextDecoder("8bit", charset)
    out = "".join(dec.feed(raw[i:i + 1]) for i in range(len(raw))) + dec.finish(complete=True)
    assert out == text


def test_cut_multibyte_character_is_dropped_not_replaced():
    raw = "aé日".encode("utf-8")[:-1]            # the last character lost its final byte
    dec = TextDecoder("8bit", "utf-8")
    assert dec.feed(raw) + dec.finish(complete=False) == "aé"


def test_cut_inside_base64_quantum_and_qp_escape():
    data = _b64_lines("ÕÄÖÜ õäöü".encode())
    dec = TextDecoder("base64", "utf-8")
    out = dec.feed(data[:7]) + dec.finish(complete=False)
    assert "\ufffd" not in out and "ÕÄÖÜ õäöü".startswith(out)
    dec = TextDecoder("quoted-printable", "utf-8")
    assert dec.feed(b"caf=C3=A") + dec.finish(complete=False) == "caf"


def test_crlf_normalised_even_when_split():
    dec = TextDecoder("7bit", None)
    assert dec.feed(b"a\r") + dec.feed(b"\nb\rc") + dec.finish(complete=True) == "a\nb\nc"


def test_utf8_cut_on_character_boundary():
    assert utf8_cut("aõb", 2) == ("a", True)
    assert utf8_cut("aõb", 3) == ("aõ", True)
    assert utf8_cut("aõb", 4) == ("aõb", False)
    assert utf8_cut("日本", 5) == ("日", True)
    assert utf8_cut("abc", 0) == ("abc", False)


def test_charset_fallbacks():
    assert charset_codec(None) == "utf-8"
    assert charset_codec("x-no-such") == "utf-8"
    assert charset_codec("US-ASCII") == "utf-8"
    assert charset_codec("ISO-8859-1") == "iso8859-1"
    assert charset_codec("utf-8*en") == "utf-8"


@pytest.mark.parametrize("encoding", ["base64", "quoted-printable", "7bit"])
def test_encoded_budget_covers_ascii_output(encoding):
    text = b"x" * 10000
    encoded = {"base64": _b64_lines, "quoted-printable": quopri.encodestring,
               "7bit": lambda d: d}[encoding](text)
    budget = encoded_budget(encoding, 4096)
    dec = TransferDecoder(encoding)
    assert len(dec.feed(encoded[:budget])) >= 4096
    assert budget < 4096 * 1.5


def test_unflow():
    assert unflow("Hello \nworld\n>quoted\n-- \nsig") == "Hello world\n>quoted\n-- \nsig"
    assert unflow("a \nb", delsp=True) == "ab"
    assert unflow(" From me") == "From me"
