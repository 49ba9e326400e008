"""Requests during a handover (real Redis): 503 state "handover" at once, never a 10 s wait."""
import os
import time
import uuid

import pytest
import redis as redis_lib

from imapapi import errors, keys, leases, rpc, wire
from sidecar.leasing import LeaseKeeper


@pytest.fixture()
def r():
    db = int(os.environ.get("IMAPAPI_TEST_REDIS_DB", "13"))
    client = redis_lib.Redis(host="127.0.0.1", port=6379, db=db)
    made: list = []
    client.made = made
    yield client
    for acct, sid in made:
        client.delete(keys.account(acct), keys.sidecar_commands(sid))
        client.hdel(keys.OWNERS, acct)
        client.hdel(keys.LEASES, acct)
        client.zrem(keys.SIDECARS, sid)
        client.hdel(keys.SIDECARS_INFO, sid)
    client.close()


def setup(r, *, beat_age: float, lease_ttl: float | None):
    acct, sid = f"ho-{uuid.uuid4().hex[:8]}", f"sc-{uuid.uuid4().hex[:8]}"
    r.made.append((acct, sid))
    r.hset(keys.account(acct), mapping={"account": acct, "state": "connected"})
    if lease_ttl is not None:
        leases.acquire(r, sid, [acct], ttl=lease_ttl)
    else:
        r.hset(keys.OWNERS, acct, sid)
    sec, usec = r.time()
    r.zadd(keys.SIDECARS, {sid: sec + usec / 1e6 - beat_age})
    return acct, sid


def test_holder_alive_with_a_lease_gets_the_command_on_an_expiring_queue(r):
    acct, sid = setup(r, beat_age=0.5, lease_ttl=10)
    command = rpc.enqueue(r, acct, "messages.list", timeout=5)
    queued = r.lrange(keys.sidecar_commands(sid), 0, -1)
    assert [wire.Command.loads(q).id for q in queued] == [command.id]
    assert 0 < r.ttl(keys.sidecar_commands(sid)) <= rpc.QUEUE_TTL


@pytest.mark.parametrize("beat_age,lease_ttl", [
    (rpc.HEARTBEAT_SUSPECT + 1, 10),   # holder silent (killed, frozen): lease not yet expired
    (0.5, None),                       # holder beats but holds no lease (ran out, released)
])
def test_silent_holder_or_no_lease_answers_503_handover_at_once(r, beat_age, lease_ttl):
    acct, sid = setup(r, beat_age=beat_age, lease_ttl=lease_ttl)
    t0 = time.monotonic()
    with pytest.raises(errors.NotConnected) as caught:
        rpc.enqueue(r, acct, "messages.list", timeout=5)
    assert time.monotonic() - t0 < 1
    body = caught.value.to_dict()
    assert body["status"] == 503 and body["state"] == "handover"
    assert r.llen(keys.sidecar_commands(sid)) == 0


def test_commands_queued_for_a_replica_that_went_silent_are_answered_503_by_the_janitor(r):
    acct, sid = setup(r, beat_age=0.5, lease_ttl=10)
    command = rpc.enqueue(r, acct, "messages.list", timeout=30)
    r.zadd(keys.SIDECARS, {sid: time.time() - rpc.HEARTBEAT_SUSPECT - 1})   # it stopped beating
    live = LeaseKeeper(r, f"live-{uuid.uuid4().hex[:6]}", 10, on_lost=lambda names: None)
    r.made.append(("", live.sid))
    assert live.janitor() >= 1
    with pytest.raises(errors.NotConnected) as caught:
        rpc.wait(r, command.id, timeout=1)
    assert caught.value.to_dict()["state"] == "handover"
    assert r.llen(keys.sidecar_commands(sid)) == 0
