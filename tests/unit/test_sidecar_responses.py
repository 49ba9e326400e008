"""The literal-aware response reader: whole responses from byte chunks split anywhere (pure)."""
import io

import pytest

from sidecar.imap.responses import (ProtocolError, literal_size, parse_untagged, read_response,
                                    regroup)

UTF8_STATUS = b"* STATUS {12}\r\n\xc3\x84rger/\xc3\x9cber (MESSAGES 1 UIDNEXT 2)\r\n"
UTF8_LIST = b'* LIST () "/" {3}\r\n\xc3\x84x\r\n'


class Chunks(io.RawIOBase):
    """A socket-like raw stream handing out the given chunks, one per read (short reads)."""

    def __init__(self, chunks):
        self.chunks = list(chunks)

    def readable(self):
        return True

    def readinto(self, buf):
        if not self.chunks:
            return 0
        chunk = self.chunks.pop(0)
        n = min(len(buf), len(chunk))
        buf[:n] = chunk[:n]
        if n < len(chunk):
            self.chunks.insert(0, chunk[n:])
        return n


def reader(data: bytes, cuts):
    """imaplib's view of `data` arriving in pieces cut at the given offsets."""
    bounds = [0, *cuts, len(data)]
    raw = Chunks(data[a:b] for a, b in zip(bounds, bounds[1:]) if b > a)
    file = io.BufferedReader(raw, buffer_size=8)   # tiny buffer: reads cross its refills too

    def get_line():
        line = file.readline()
        if not line.endswith(b"\r\n"):
            raise EOFError(line)
        return line[:-2]
    return get_line, file.read


def every_cut(data: bytes):
    return [[i] for i in range(1, len(data))] + [[i, i + 1] for i in range(1, len(data) - 1)]


READ_CASES = [
    # (stream, parsed responses)
    (UTF8_STATUS, [(b"STATUS", "Ärger/Über".encode(), (b"MESSAGES", 1, b"UIDNEXT", 2))]),
    (UTF8_LIST, [(b"LIST", (), b"/", "Äx".encode())]),
    (b'* LIST (\\NonExistent) "/" New2\r\n', [(b"LIST", (b"\\NonExistent",), b"/", b"New2")]),
    # literal bytes that look like framing: CRLF and a {3} inside the name
    (b"* STATUS {9}\r\na\r\nb{3}\r\n (MESSAGES 4)\r\n",
     [(b"STATUS", b"a\r\nb{3}\r\n", (b"MESSAGES", 4))]),
    # two literals in one response, then a second response in the same stream
    (b"* LIST () {1}\r\n/ {2}\r\nab\r\n* 3 EXISTS\r\n",
     [(b"LIST", (), b"/", b"ab"), (3, b"EXISTS")]),
    (b"* STATUS {0}\r\n (MESSAGES 1)\r\n", [(b"STATUS", b"", (b"MESSAGES", 1))]),
    (b"* OK Still here\r\n* 2 EXPUNGE\r\n", [(b"OK", b"Still here"), (2, b"EXPUNGE")]),
    (b"* 1 FETCH (UID 9 FLAGS (\\Seen))\r\n", [(1, b"FETCH", (b"UID", 9, b"FLAGS", (b"\\Seen",)))]),
]


@pytest.mark.parametrize("stream,expected", READ_CASES)
def test_read_response_any_split(stream, expected):
    for cuts in [[]] + every_cut(stream):
        get_line, read = reader(stream, cuts)
        got = [parse_untagged(read_response(get_line, read)) for _ in expected]
        assert got == expected, cuts
        with pytest.raises(EOFError):   # nothing left over, nothing swallowed
            get_line()


def test_eof_inside_literal():
    get_line, read = reader(b"* STATUS {12}\r\nshort", [])
    with pytest.raises(ProtocolError):
        read_response(get_line, read)


@pytest.mark.parametrize("line,size", [(b"* STATUS {12}", 12), (b"* LIST () \"/\" {0}", 0),
                                       (b"* 1 FETCH (BINARY[] ~{5}", 5), (b"* STATUS Work", None),
                                       (b"* STATUS {x}", None), (b"* OK {3} in text", None)])
def test_literal_size(line, size):
    assert literal_size(line) == size


def test_not_untagged():
    with pytest.raises(ProtocolError):
        parse_untagged([b"A1 OK done"])


@pytest.mark.parametrize("stored,groups", [
    ([b"Work (MESSAGES 1)"], [[b"Work (MESSAGES 1)"]]),
    ([(b"{2}", b"\xc3\x84"), b" (MESSAGES 1)", b"Plain (MESSAGES 2)"],
     [[(b"{2}", b"\xc3\x84"), b" (MESSAGES 1)"], [b"Plain (MESSAGES 2)"]]),
    ([(b"{1}", b"x")], [[(b"{1}", b"x"), b""]]),   # trailer not stored yet: still one response
    (None, []),
])
def test_regroup(stored, groups):
    assert regroup(stored) == groups
