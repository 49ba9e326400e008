"""Table-driven tests for the visible part of a plain-text reply (sidecar/imap/replytext.py)."""
import pytest

from sidecar.imap.replytext import visible_text

CASES = [
    ("gmail top post",
     "Sounds good.\r\n\r\nOn Mon, 4 Mar 2024 at 10:00, Carol <carol@example.com> wrote:\r\n"
     "> See attached.\r\n> \r\n", "Sounds good."),
    ("attribution wrapped over two lines",
     "Sounds good.\n\nOn Mon, 4 Mar 2024 at 10:00, Carol <carol@\nexample.com> wrote:\n\n> x\n",
     "Sounds good."),
    ("german attribution", "Danke!\n\nAm 04.03.2024 um 10:00 schrieb Carol <c@e.com>:\n> Hallo\n",
     "Danke!"),
    ("outlook original message", "Yes\n\n-----Original Message-----\nFrom: Carol\nSent: Mon\n\nq\n",
     "Yes"),
    ("outlook underscore rule", "Yes\n________________________________\nFrom: Carol\nSent: Mon\n",
     "Yes"),
    ("bottom quote without attribution", "Fine by me\n\n> earlier text\n>\n> more\n\n",
     "Fine by me"),
    ("inline answers are kept", "On Mon, Carol wrote:\n> q1\nanswer1\n> q2\nanswer2\n",
     "On Mon, Carol wrote:\n> q1\nanswer1\n> q2\nanswer2"),
    ("inline answers, trailing quote cut", "On Mon, Carol wrote:\n> q1\nanswer1\n\n> q2\n",
     "On Mon, Carol wrote:\n> q1\nanswer1"),
    ("'wrote:' in a sentence is not a quote", "Note\nOn Monday Bob wrote: hello\n",
     "Note\nOn Monday Bob wrote: hello"),
    ("underscores without a header block", "Sign here\n____________\nthanks\n",
     "Sign here\n____________\nthanks"),
    ("nothing but a quote", "> all quoted\n", ""),
    ("empty", "", ""),
]


@pytest.mark.parametrize("text,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_visible_text(text, expected):
    assert visible_text(text) == expected
