"""Dashboard counters (per-minute buckets) and the maintained accounts-per-state counts, on real Redis."""
from __future__ import annotations

import time

import pytest

from imapapi import accounts, stats

SEED = {"account": "s1", "name": "S", "imap": {"host": "127.0.0.1", "port": 1, "secure": False,
                                              "auth": {"user": "u", "pass": "p"}}}


@pytest.fixture
def r(redis):
    redis.flushdb()
    yield redis
    redis.flushdb()


def test_window_sums_only_minutes_inside_it(r):
    now = time.time()
    stats.incr(r, {"events:messageNew": 2, "webhooks:success": 1}, now=now)
    stats.incr(r, {"events:messageNew": 5}, now=now - 2 * 3600)          # outside 1 h
    stats.incr(r, {"webhooks:fail": 0}, now=now)                          # zero: nothing stored
    assert stats.window(r, 3600, now=now) == {"events:messageNew": 2, "webhooks:success": 1}
    assert stats.window(r, 3 * 3600, now=now) == {"events:messageNew": 7, "webhooks:success": 1}


def test_window_crosses_midnight_and_caps_at_seven_days(r):
    midnight = (int(time.time()) // 86400) * 86400
    stats.incr(r, {"x": 1}, now=midnight - 30)      # yesterday's last minute
    stats.incr(r, {"x": 2}, now=midnight + 30)      # today's first minute
    assert stats.window(r, 3600, now=midnight + 60) == {"x": 3}
    stats.incr(r, {"x": 10}, now=midnight - 8 * 86400)
    assert stats.window(r, 10 ** 9, now=midnight + 60) == {"x": 3}
    ttl = r.ttl(stats.bucket_key("x", time.strftime("%Y%m%d", time.gmtime(midnight))))
    assert 7 * 86400 < ttl <= stats.BUCKET_TTL


def test_buffer_flushes_counts(r):
    buf = stats.Buffer(lambda: r, every=60)
    for _ in range(3):
        buf.add("apiCall:success")
    buf.flush()
    assert stats.window(r, 60) == {"apiCall:success": 3}


def test_state_counts_follow_upsert_state_changes_and_delete(r):
    assert stats.state_counts(r) == {}
    accounts.upsert(r, dict(SEED))
    assert stats.state_counts(r) == {"init": 1}                 # first read recounts
    accounts.upsert(r, {**SEED, "account": "s2"})
    accounts.upsert(r, dict(SEED))                                # re-post: not counted again
    accounts.set_state(r, "s1", "connecting")
    accounts.set_state(r, "s1", "connected")
    accounts.set_state(r, "s1", "connected")                      # same state: no change
    accounts.set_state(r, "s2", "authenticationError", {"response": "no"})
    accounts.set_state(r, "gone", "connected")                    # unknown account: ignored
    counts = stats.state_counts(r)
    assert {k: v for k, v in counts.items() if v} == {"connected": 1, "authenticationError": 1}
    accounts.delete(r, "s1")
    counts = stats.state_counts(r)
    assert {k: v for k, v in counts.items() if v} == {"authenticationError": 1}
    assert stats.recount_states(r) == {"authenticationError": 1}
