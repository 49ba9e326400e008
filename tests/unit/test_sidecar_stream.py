"""Command execution and streamed replies through the real Redis (no IMAP needed)."""
import os
import threading
import time
import types

import pytest

from imapapi import errors, keys, rpc, wire
from sidecar.ops import OPS, op
from sidecar.runtime import Runtime
from sidecar.server import CommandServer

@op("test.stream")
def _stream_op(ctx, size: int, fail_after: int = -1):
    if size < 0:
        raise errors.MessageNotFound()
    writer = ctx.stream({"contentType": "application/octet-stream"})
    sent = 0
    while sent < size:
        if 0 <= fail_after <= sent:
            raise errors.UpstreamError("boom")
        chunk = bytes([sent // wire.STREAM_CHUNK % 256]) * min(wire.STREAM_CHUNK, size - sent)
        writer.write(chunk)
        sent += len(chunk)
    return {"size": sent}


@op("test.crash")
def _crash_op(ctx):
    raise RuntimeError("unexpected")


def _server(r):
    account = types.SimpleNamespace(id="acct", stopped=False,
                                    session=types.SimpleNamespace(registry=None))
    # execute() runs on the test's thread: no pool, reactor or hooks needed
    runtime = Runtime(sid="unit", redis=r, settings=None, pool=None, ramp=None, reactor=None,
                      hooks=None)
    server = CommandServer(runtime, {"acct": account}.get)
    server.ops = dict(OPS)
    return server


def _run(server, r, name, args, account="acct"):
    command = wire.Command(account=account, op=name, args=args, deadline=time.time() + 30)
    thread = threading.Thread(target=server.execute, args=(command,))
    thread.start()
    got = r.blpop([keys.reply(command.id)], timeout=10)
    assert got is not None
    return command, wire.Reply.loads(got[1]), thread


def test_stream_reply_comes_first_then_frames_with_back_pressure(r):
    server = _server(r)
    size = 40 * wire.STREAM_CHUNK + 123
    command, reply, thread = _run(server, r, "test.stream", {"size": size})
    assert reply.ok and reply.stream == keys.stream(command.id)
    assert reply.result == {"contentType": "application/octet-stream"}
    time.sleep(0.3)   # the op must be waiting for us, not racing ahead
    assert r.llen(reply.stream) <= wire.STREAM_WINDOW + 1
    data = b"".join(rpc.iter_stream(r, reply.stream, timeout=10))
    thread.join(5)
    assert len(data) == size and data[:1] == b"\x00" and data[-1:] == bytes([40])


def test_error_before_stream_is_a_normal_error_reply(r):
    _, reply, thread = _run(_server(r), r, "test.stream", {"size": -1})
    thread.join(5)
    assert not reply.ok and reply.error["status"] == 404 and reply.stream is None


def test_error_after_stream_started_is_an_error_frame(r):
    _, reply, thread = _run(_server(r), r, "test.stream",
                            {"size": 4 * wire.STREAM_CHUNK, "fail_after": wire.STREAM_CHUNK})
    with pytest.raises(errors.UpstreamError):
        list(rpc.iter_stream(r, reply.stream, timeout=10))
    thread.join(5)


def test_unexpected_exception_is_500_json_and_unknown_account_503(r):
    server = _server(r)
    _, reply, _ = _run(server, r, "test.crash", {})
    assert not reply.ok and reply.error["status"] == 500
    _, reply, _ = _run(server, r, "test.crash", {}, account="other")
    assert reply.error["status"] == 503 and reply.error["code"] == "IMAPUnavailable"
    _, reply, _ = _run(server, r, "no.such.op", {})
    assert reply.error["status"] == 400


@op("test.block")
def _block_op(ctx, seconds: float):
    time.sleep(seconds)
    return {"slept": seconds}


def test_listener_hands_over_so_a_slow_op_does_not_hold_up_the_next_command(r):
    from sidecar.pool import Pool

    pool = Pool(3, name="listen-test")
    stopping = threading.Event()
    account = types.SimpleNamespace(id="acct", stopped=False,
                                    session=types.SimpleNamespace(registry=None))
    runtime = Runtime(sid=f"unit-{os.getpid()}", redis=r, settings=None, pool=pool, ramp=None,
                      reactor=None, hooks=None, stopping=stopping)
    server = CommandServer(runtime, {"acct": account}.get)
    server.ops = dict(OPS)
    r.delete(server.queue_key)
    server.start()
    try:
        slow = wire.Command(account="acct", op="test.block", args={"seconds": 2},
                            deadline=time.time() + 30)
        quick = [wire.Command(account="acct", op="test.block", args={"seconds": 0},
                              deadline=time.time() + 30) for _ in range(3)]
        r.lpush(server.queue_key, slow.dumps())
        time.sleep(0.2)
        started = time.monotonic()
        for command in quick:
            r.lpush(server.queue_key, command.dumps())
        for command in quick:   # answered one after another while the slow op still runs
            got = r.blpop([keys.reply(command.id)], timeout=5)
            assert got is not None and wire.Reply.loads(got[1]).result == {"slept": 0}
        assert time.monotonic() - started < 1.5
        got = r.blpop([keys.reply(slow.id)], timeout=5)
        assert got is not None and wire.Reply.loads(got[1]).result == {"slept": 2}
    finally:
        stopping.set()
        server.join(3)
        assert server._stopped.is_set()   # the listener noticed and left
        pool.shutdown()
        r.delete(server.queue_key)


def test_writer_stops_at_once_when_the_reader_is_gone(r):
    """The API marks a stream it stopped reading (client gone): a writer waiting for room in
    the window gives up at once instead of after its stall limit."""
    from sidecar.context import StreamAborted, StreamWriter
    writer = StreamWriter(r, f"unit-gone-{time.time_ns()}")
    try:
        for _ in range(wire.STREAM_WINDOW + 1):
            writer.write(b"x")
        r.set(keys.stream_gone(writer.key), 1, ex=60)
        start = time.monotonic()
        with pytest.raises(StreamAborted):
            writer.write(b"y")
        assert time.monotonic() - start < 1
    finally:
        r.delete(writer.key, keys.stream_gone(writer.key))
