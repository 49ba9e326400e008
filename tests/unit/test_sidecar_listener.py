"""The sidecar's command listeners through the real Redis: a reply written with the next BRPOP, spares, NoScript, stop."""
import os
import threading
import time
import types

import pytest

from imapapi import keys, rpc, wire
from sidecar import server as server_mod
from sidecar.ops import OPS, op
from sidecar.pool import Pool
from sidecar.runtime import Runtime
from sidecar.server import SPARE, CommandServer

@op("test.listener.who")
def _who_op(ctx, seconds: float = 0):
    time.sleep(seconds)
    return {"thread": threading.current_thread().name}


@op("test.listener.bytes_key")
def _bytes_key_op(ctx):
    return {b"not-json": 1}


@pytest.fixture
def served(r):
    """A started CommandServer on its own pool; stopped (and checked stopped) afterwards."""
    pool = Pool(8, name="listener-test")
    stopping = threading.Event()
    account = types.SimpleNamespace(id="acct", stopped=False,
                                    session=types.SimpleNamespace(registry=None))
    runtime = Runtime(sid=f"unit-listener-{os.getpid()}-{time.time_ns()}", redis=r,
                      settings=None, pool=pool, ramp=None, reactor=None, hooks=None,
                      stopping=stopping)
    server = CommandServer(runtime, {"acct": account}.get)
    server.ops = dict(OPS)
    server.start()
    yield server
    stopping.set()
    server.join(4)
    assert server._stopped.is_set()
    pool.shutdown()
    r.delete(server.queue_key)


def _send(r, server, name, args=None):
    command = wire.Command(account="acct", op=name, args=args or {}, deadline=time.time() + 30)
    r.lpush(server.queue_key, command.dumps())
    return command


def _reply(r, command, timeout=5):
    got = r.blpop([keys.reply(command.id)], timeout=timeout)
    assert got is not None, "no reply"
    return wire.Reply.loads(got[1])


def test_one_at_a_time_the_waiting_listeners_serve_and_no_other_starts(r, served):
    threads = set()
    for _ in range(20):
        reply = _reply(r, _send(r, served, "test.listener.who"))
        assert reply.ok
        threads.add(reply.result["thread"])
    assert len(threads) <= SPARE   # each reply went out with its listener's next BRPOP
    assert served._alive == SPARE


def test_a_burst_of_slow_commands_gets_more_listeners_which_retire_after(r, served):
    slow = [_send(r, served, "test.listener.who", {"seconds": 2}) for _ in range(4)]
    quick = _reply(r, _send(r, served, "test.listener.who"))
    assert quick.ok
    # answered while all the slow ones still ran: not queued behind them
    assert not r.exists(*[keys.reply(command.id) for command in slow])
    assert all(_reply(r, command).ok for command in slow)
    deadline = time.monotonic() + 3
    while served._alive != SPARE and time.monotonic() < deadline:
        time.sleep(0.05)
    assert served._alive == SPARE and served._waiting == SPARE


def test_a_reply_redis_has_no_script_for_goes_by_eval(r, served, monkeypatch):
    monkeypatch.setattr(rpc, "_REPLY_SHA", "0" * 40)   # as after a Redis restart
    for _ in range(3):
        assert _reply(r, _send(r, served, "test.listener.who")).ok
    assert served._alive == SPARE


def test_a_result_json_cannot_carry_is_still_answered_as_500(r, served):
    reply = _reply(r, _send(r, served, "test.listener.bytes_key"))
    assert not reply.ok and reply.error["status"] == 500
    assert _reply(r, _send(r, served, "test.listener.who")).ok


def test_stopping_lets_a_running_command_answer_then_the_listeners_leave(r, served):
    command = _send(r, served, "test.listener.who", {"seconds": 0.5})
    time.sleep(0.1)
    served.runtime.stopping.set()
    assert _reply(r, command).ok
    served.join(4)
    assert served._stopped.is_set() and served._alive == 0


def test_a_broken_connection_is_dropped_and_the_listener_goes_on(r, served, monkeypatch):
    real = server_mod.Link.read
    failed = []

    def flaky(link):
        if not failed:
            failed.append(1)
            link.conn.disconnect()   # as when Redis closes it under us
        return real(link)

    monkeypatch.setattr(server_mod.Link, "read", flaky)
    time.sleep(1.2)   # a BRPOP round (1 s timeout) reads through flaky()
    assert failed
    assert _reply(r, _send(r, served, "test.listener.who"), timeout=8).ok
