"""Task <-> sidecar wire format: command/reply JSON round trips, deadlines, stream frames."""
from __future__ import annotations

import json
import time

import pytest

from imapapi import wire


def test_command_round_trip():
    cmd = wire.Command(account="a1", op="imapapi.messages.list",
                       args={"path": "Ärger", "page": 2}, deadline=123.5)
    raw = cmd.dumps()
    assert json.loads(raw)["op"] == "imapapi.messages.list"
    assert wire.Command.loads(raw) == cmd
    assert wire.Command.loads(raw.encode()) == cmd


def test_command_ids_are_unique():
    assert len({wire.Command(account="a", op="x").id for _ in range(1000)}) == 1000


def test_command_deadline():
    now = time.time()
    assert wire.Command(account="a", op="x", deadline=now - 1).expired()
    assert not wire.Command(account="a", op="x", deadline=now + 60).expired()
    assert not wire.Command(account="a", op="x").expired()       # 0 means no deadline
    assert wire.Command(account="a", op="x", deadline=100).expired(now=101)


def test_reply_round_trip_ok_and_error():
    ok = wire.Reply(id="c1", ok=True, result={"messages": [], "total": 0})
    assert wire.Reply.loads(ok.dumps()) == ok
    err = wire.Reply(id="c2", ok=False, error={"status": 404, "code": "MailboxNotFound",
                                                "message": "no", "path": "X"})
    assert wire.Reply.loads(err.dumps().encode()) == err
    streamed = wire.Reply(id="c3", ok=True, result={"contentType": "text/plain"},
                          stream="ia:stream:c3")
    assert wire.Reply.loads(streamed.dumps()).stream == "ia:stream:c3"


def test_reply_serializes_non_json_values_as_text():
    from datetime import datetime, timezone

    reply = wire.Reply(id="c", ok=True, result={"date": datetime(2024, 1, 2, tzinfo=timezone.utc)})
    assert wire.Reply.loads(reply.dumps()).result["date"].startswith("2024-01-02")


@pytest.mark.parametrize("chunk", [b"", b"abc", bytes(range(256)) * 10])
def test_data_frames_carry_bytes_exactly(chunk):
    assert wire.parse_frame(wire.data_frame(chunk)) == ("d", chunk)


def test_end_and_error_frames():
    assert wire.parse_frame(wire.end_frame({"size": 3})) == ("e", {"size": 3})
    assert wire.parse_frame(wire.end_frame()) == ("e", {})
    error = {"status": 504, "code": "Timeout", "message": "slow"}
    assert wire.parse_frame(wire.error_frame(error)) == ("x", error)


def test_stream_constants_are_sane():
    assert wire.STREAM_WINDOW >= 1 and wire.STREAM_CHUNK >= 64 * 1024
    assert wire.REPLY_TTL > 0 and wire.STREAM_TTL >= wire.REPLY_TTL
