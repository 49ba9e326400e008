"""Protocol log redaction (table) and the logs setting / capped list on real Redis."""
from __future__ import annotations

import json

import pytest

from imapapi import keys, protolog

R = protolog.REDACTED


@pytest.mark.parametrize("lines, expected", [
    ([("c", b'A1 LOGIN "me@example.com" "s3cret"\r\n'), ("s", b"A1 OK Logged in\r\n")],
     [f"A1 LOGIN {R}", "A1 OK Logged in"]),
    ([("c", b"a2 login me s3cret\r\n")], [f"a2 LOGIN {R}"]),
    ([("c", b"A3 AUTHENTICATE XOAUTH2 dXNlcj1tZQFhdXRoPUJlYXJlciB0b2tlbgEB\r\n"),
      ("s", b"+ eyJzdGF0dXMiOiI0MDEifQ==\r\n"), ("c", b"\r\n"),
      ("s", b"A3 NO [AUTHENTICATIONFAILED] Invalid\r\n"), ("c", b"A4 NOOP\r\n")],
     [f"A3 AUTHENTICATE XOAUTH2 {R}", f"+ {R}", R, "A3 NO [AUTHENTICATIONFAILED] Invalid",
      "A4 NOOP"]),
    ([("c", b"A5 AUTHENTICATE PLAIN\r\n"), ("s", b"+\r\n"), ("c", b"AG1lAHMzY3JldA==\r\n"),
      ("s", b"A5 OK done\r\n")],
     [f"A5 AUTHENTICATE PLAIN {R}", "+", R, "A5 OK done"]),
    ([("c", b"A6 LOGIN {2}\r\n"), ("s", b"+ Ready\r\n"), ("cl", b"me"), ("c", b" {6}\r\n"),
      ("cl", b"s3cret"), ("c", b"\r\n"), ("s", b"A6 OK\r\n"), ("cl", b"after")],
     [f"A6 LOGIN {R}", "+ Ready", f"[2 bytes, {R}]", R, f"[6 bytes, {R}]", R, "A6 OK", "after"]),
    ([("s", b"* 1 FETCH (BODY[] {1000}\r\n"), ("sl", b"x" * 1000)],
     ["* 1 FETCH (BODY[] {1000}", "x" * protolog.LITERAL_MAX + "... [literal 1000 bytes, cut]"]),
    ([("c", b"A7 SELECT INBOX\r\n"), ("s", b"* 3 EXISTS\r\n")], ["A7 SELECT INBOX", "* 3 EXISTS"]),
])
def test_redactor(lines, expected):
    red = protolog.Redactor()
    out = []
    for kind, data in lines:
        if kind == "c":
            out.append(red.client(data))
        elif kind == "s":
            out.append(red.server(data))
        else:
            out.append(red.literal(data, kind[0]))
    assert out == expected
    assert not any("s3cret" in o or "dXNlcj1t" in o for o in out)


@pytest.fixture
def r(redis):
    redis.flushdb()
    yield redis
    redis.flushdb()


def test_setting_defaults_and_enabled(r):
    assert protolog.get(r) == protolog.DEFAULTS
    s = protolog.save(r, {"accounts": ["a"], "maxLogLines": 5, "resetLoggedAccounts": True})
    assert s == {"all": False, "accounts": ["a"], "maxLogLines": 5}
    assert protolog.enabled(s, "a") and not protolog.enabled(s, "b")
    assert protolog.enabled({**s, "all": True}, "b")
    assert not protolog.enabled({**s, "maxLogLines": 0}, "a")


def test_capped_list_and_off_deletes(r):
    r.hset(keys.account("a"), "account", "a")
    protolog.set_account(r, "a", True)
    protolog.append(r, "a", [protolog.entry("c", "x", f"line {i}") for i in range(8)], 5)
    lines = [json.loads(x) for x in protolog.read(r, "a")]
    assert [x["msg"] for x in lines] == [f"line {i}" for i in range(3, 8)]
    assert {"t", "cid", "src", "msg"} <= set(lines[0])
    protolog.set_account(r, "a", False)
    assert not r.exists(protolog.log_key("a")) and list(protolog.read(r, "a")) == []


def test_nothing_logged_for_a_deleted_account(r):
    protolog.set_account(r, "gone", True)
    protolog.append(r, "gone", [protolog.entry("c", "x", "A9 LOGOUT")], 5)
    assert not r.exists(protolog.log_key("gone")) and not r.sismember(keys.LOGGED, "gone")
