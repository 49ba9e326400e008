"""LeaseKeeper on the real Redis: renewal rounds with the cached packed argument, self-fence."""
import os
import time
import uuid

import pytest
import redis as redis_lib

from imapapi import keys, leases
from sidecar.leasing import MARGIN, LeaseKeeper


@pytest.fixture()
def r():
    db = int(os.environ.get("IMAPAPI_TEST_REDIS_DB", "13"))
    client = redis_lib.Redis(host="127.0.0.1", port=6379, db=db)
    made: list[str] = []
    client.made = made
    yield client
    for acct in made:
        client.hdel(leases.LEASES, acct)
        client.hdel(keys.OWNERS, acct)
        client.delete(keys.account(acct))
    client.close()


def names(r, n):
    out = [f"keeper-test-{uuid.uuid4().hex[:10]}" for _ in range(n)]
    r.made.extend(out)
    for acct in out:
        r.hset(keys.account(acct), mapping={"account": acct, "state": "init"})
    return out


def keeper(r, ttl=10.0):
    lost: list[str] = []
    k = LeaseKeeper(r, f"keeper-{uuid.uuid4().hex[:6]}", ttl, on_lost=lost.extend)
    return k, lost


def test_rounds_extend_every_lease_and_drop_only_the_stolen_one(r):
    k, lost = keeper(r)
    accts = names(r, 3)
    k.acquire(accts)
    k.renew()                                    # fills the cached packed argument
    r.hdel(leases.LEASES, accts[0])              # e.g. expired and taken elsewhere
    before = {a: leases.current(r, a)[1] for a in accts[1:]}
    time.sleep(0.01)
    assert k.renew() == [accts[0]] and lost == [accts[0]]
    assert k.token(accts[0]) is None and not k.valid(accts[0])
    for acct in accts[1:]:
        assert k.valid(acct) and leases.current(r, acct)[1] > before[acct]
    # the next round packs the smaller set again: nothing more is lost
    assert k.renew() == [] and lost == [accts[0]]


def test_a_lease_taken_after_the_cached_round_is_renewed_too(r):
    k, _ = keeper(r)
    first, later = names(r, 2)
    k.acquire([first])
    k.renew()
    k.acquire([later])                           # the held set changed: the cache is stale
    before = leases.current(r, later)[1]
    time.sleep(0.01)
    assert k.renew() == []
    assert leases.current(r, later)[1] > before


def test_self_fence_drops_leases_past_their_deadline_and_only_then(r):
    k, lost = keeper(r, ttl=MARGIN + 0.2)
    accts = names(r, 2)
    k.acquire(accts)
    assert k.self_fence() == []                  # before the earliest deadline: no scan needed
    time.sleep(0.25)
    assert sorted(k.self_fence()) == sorted(accts) and sorted(lost) == sorted(accts)
    assert k.count() == 0 and k.self_fence() == []
