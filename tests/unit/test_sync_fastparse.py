"""The sweep's fast LIST/STATUS line parser gives exactly imapclient's answer, or steps aside."""
import pytest
from imapclient.response_parser import parse_response

from sidecar.sync.imapio import fast_list_row, fast_status, list_rows, parse_status_line

LIST_LINES = [
    (rb'(\HasNoChildren) "/" INBOX', True),
    (rb'(\HasNoChildren \Sent) "/" Sent', True),
    (rb'(\HasChildren) "." "Work Stuff"', True),
    (rb'() "/" "quote \" and \\ backslash"', True),
    (rb'(\Noselect \HasChildren) NIL Archive', True),
    (rb'(\HasNoChildren) "/" &AMQ-rger', True),
    (rb'(\HasNoChildren) "/" 2024', False),          # numeric atom: the lexer makes it an int
    (rb'(\HasNoChildren) "/" NIL', False),
    (rb'() "/" New2 ("OLDNAME" (New1))', False),     # extended data
    (rb'() "/" {3}', False),                          # literal
    (b'() "/" "\xc3\x84x"', False),                   # not a LIST answer's modified UTF-7
]


@pytest.mark.parametrize("line,fast", LIST_LINES)
def test_fast_list_row_matches_the_lexer(line, fast):
    got = fast_list_row(line)
    assert (got is not None) == fast
    if fast:
        assert got == tuple(parse_response([line]))
        assert list_rows([line]) == [got]


STATUS_LINES = [
    (b'"Sent" (MESSAGES 0 UIDNEXT 1 UIDVALIDITY 1733 HIGHESTMODSEQ 1)', True),
    (b'INBOX (MESSAGES 12 UIDNEXT 40 UIDVALIDITY 7 HIGHESTMODSEQ 99)', True),
    (b'"a \\"b\\"" (MESSAGES 1)', True),
    (b'Work ()', True),
    (b'2024 (MESSAGES 1)', False),
    (b'Work (MESSAGES)', False),
]


@pytest.mark.parametrize("line,fast", STATUS_LINES)
def test_fast_status_matches_the_lexer(line, fast):
    got = fast_status(line)
    assert (got is not None) == fast
    slow = parse_response([line])
    if fast:
        items = list(slow[1])
        assert got == (slow[0], {i.decode().upper(): int(v) for i, v in zip(items[::2], items[1::2])})
    # the public parser answers the same whichever path it took
    name = slow[0].decode() if isinstance(slow[0], bytes) else str(slow[0])
    assert parse_status_line(line)[0] == ("INBOX" if name.upper() == "INBOX" else name)
