"""Per-IMAP-host login pacing (GCRA in Redis, shared by replicas): a burst of `rate`, then waits."""
import os
import uuid

import pytest
import redis as redis_lib

from imapapi import keys
from sidecar.loginrate import _TAKE, LoginGate


@pytest.fixture()
def r():
    db = int(os.environ.get("IMAPAPI_TEST_REDIS_DB", "13"))
    client = redis_lib.Redis(host="127.0.0.1", port=6379, db=db)
    yield client
    client.close()


def test_a_burst_of_rate_logins_goes_then_the_next_must_wait(r):
    gate = LoginGate(r, rate=5)
    host = f"imap-{uuid.uuid4().hex}.test"
    key = keys.login_rate(host)
    try:
        waits = [int(r.eval(_TAKE, 1, key, gate.step_ms, gate.burst_ms)) for _ in range(6)]
        assert waits[:5] == [0] * 5
        assert 0 < waits[5] <= 200   # the sixth waits for the next slot (1/5 s apart)
        assert 0 < r.pttl(key) <= 3000   # the slot key never lingers
    finally:
        r.delete(key)


def test_hosts_are_paced_separately_and_case_insensitively(r):
    gate = LoginGate(r, rate=1)
    a, b = f"a-{uuid.uuid4().hex}.test", f"b-{uuid.uuid4().hex}.test"
    try:
        assert gate.wait(a) == 0.0
        assert int(r.eval(_TAKE, 1, keys.login_rate(a.upper()), gate.step_ms, gate.burst_ms)) > 0
        assert gate.wait(b) == 0.0
        assert gate.wait(None) == 0.0
    finally:
        r.delete(keys.login_rate(a), keys.login_rate(b))


def test_take_gets_a_slot_without_waiting_or_says_no(r):
    gate = LoginGate(r, rate=2)
    host = f"take-{uuid.uuid4().hex}.test"
    try:
        assert [gate.take(host) for _ in range(3)] == [True, True, False]   # burst of 2, no wait
        assert gate.take(None) is True
    finally:
        r.delete(keys.login_rate(host))
