"""ExtraPool: the cap of extra connections and how long an op waits for one."""
from __future__ import annotations

import threading
import time

import pytest

from imapapi import errors
from sidecar.extra import CAP, ExtraPool


class _Account:
    stopped = False


def full_pool() -> ExtraPool:
    pool = ExtraPool(_Account())
    pool.busy = CAP            # every extra connection is out with another op
    return pool


def test_at_the_cap_an_op_waits_only_its_own_time_left():
    pool = full_pool()
    started = time.monotonic()
    with pytest.raises(errors.GatewayTimeout):
        pool.acquire(0.2)
    assert 0.15 <= time.monotonic() - started < 1.0


def test_an_op_past_its_deadline_does_not_wait_at_all():
    pool = full_pool()
    started = time.monotonic()
    with pytest.raises(errors.GatewayTimeout):
        pool.acquire(-1.0)
    assert time.monotonic() - started < 0.05


def test_a_released_connection_goes_to_the_waiting_op():
    pool = full_pool()
    conn = object()
    threading.Timer(0.1, pool.release, args=(conn, False)).start()
    assert pool.acquire(2.0) is conn
    assert pool.busy == CAP
