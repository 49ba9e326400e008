"""Lease and fencing Lua on the real Redis: acquire, renew, expire, steal, release, wrong token;
the sidecar's LeaseKeeper rounds over them (cached packed argument, self-fence)."""
import os
import time
import uuid

import pytest
import redis as redis_lib

from imapapi import accounts, keys, leases
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


def names(r, n=1):
    out = [f"lease-test-{uuid.uuid4().hex[:10]}" for _ in range(n)]
    r.made.extend(out)
    for acct in out:
        r.hset(keys.account(acct), mapping={"account": acct, "state": "init"})
    return out


def owner_entry(r, acct):
    v = r.hget(keys.OWNERS, acct)
    return v.decode() if v else None


def test_acquire_free_lease_sets_owner_and_a_fresh_token(r):
    a, b = names(r, 2)
    got = leases.acquire(r, "s1", [a, b], ttl=10)
    assert set(got) == {a, b}
    assert got[a] != got[b]   # one global counter: tokens never repeat
    assert owner_entry(r, a) == "s1"
    tok, exp, owner = leases.current(r, a)
    assert (tok, owner) == (got[a], "s1")
    assert exp > leases.redis_now_ms(r) + 9000


def test_held_lease_is_not_taken_by_another_sidecar(r):
    (a,) = names(r)
    first = leases.acquire(r, "s1", [a], ttl=10)
    assert leases.acquire(r, "s2", [a], ttl=10) == {}
    assert owner_entry(r, a) == "s1"
    # the holder acquiring again extends and keeps its token (no owner change)
    assert leases.acquire(r, "s1", [a], ttl=10) == first


def test_expired_lease_is_stolen_with_a_higher_token_and_the_old_holder_is_fenced(r):
    (a,) = names(r)
    old = leases.acquire(r, "s1", [a], ttl=0.05)[a]
    time.sleep(0.1)
    new = leases.acquire(r, "s2", [a], ttl=10)[a]
    assert new > old
    assert owner_entry(r, a) == "s2"
    # the old holder finds out at its next renewal, and cannot write meanwhile
    assert leases.renew(r, "s1", {a: old}, ttl=10) == [a]
    with pytest.raises(leases.Fenced):
        leases.set_state(r, a, old, "connected")
    assert leases.set_state(r, a, new, "connected")
    assert r.hget(keys.account(a), "state") == b"connected"
    assert owner_entry(r, a) == "s2"   # the failed renewal did not re-claim the owner entry


def test_expired_lease_cannot_be_renewed_or_written_even_if_nobody_took_it(r):
    (a,) = names(r)
    tok = leases.acquire(r, "s1", [a], ttl=0.05)[a]
    time.sleep(0.1)
    assert leases.renew(r, "s1", {a: tok}, ttl=10) == [a]
    with pytest.raises(leases.Fenced):
        leases.set_state(r, a, tok, "connected")
    # taking it again is a new acquisition: a new token
    assert leases.acquire(r, "s1", [a], ttl=10)[a] > tok


def test_renew_extends_in_one_batch_and_reports_only_the_lost(r):
    accts = names(r, 5)
    held = leases.acquire(r, "s1", accts, ttl=1)
    before = {a: leases.current(r, a)[1] for a in accts}
    r.hdel(leases.LEASES, accts[0])              # e.g. the account was deleted
    stolen = dict(held)
    stolen[accts[1]] = held[accts[1]] - 1000     # a token that is not the current one
    time.sleep(0.01)
    lost = leases.renew(r, "s1", stolen, ttl=10)
    assert sorted(lost) == sorted(accts[:2])
    for a in accts[2:]:
        assert leases.current(r, a)[1] > before[a] + 8000
        assert leases.current(r, a)[0] == held[a]   # renewal keeps the token


def test_renew_repairs_a_missing_owner_entry(r):
    (a,) = names(r)
    held = leases.acquire(r, "s1", [a], ttl=10)
    r.hdel(keys.OWNERS, a)
    assert leases.renew(r, "s1", held, ttl=10) == []
    assert owner_entry(r, a) == "s1"


def test_release_with_the_current_token_frees_the_lease_at_once(r):
    (a,) = names(r)
    held = leases.acquire(r, "s1", [a], ttl=10)
    assert leases.release(r, "s1", held) == [a]
    assert leases.current(r, a) is None
    assert owner_entry(r, a) is None
    assert r.hget(keys.account(a), "state") == b"disconnected"
    got = leases.acquire(r, "s2", [a], ttl=10)
    assert got[a] > held[a]


def test_release_with_a_wrong_token_changes_nothing(r):
    (a,) = names(r)
    old = leases.acquire(r, "s1", [a], ttl=0.05)
    time.sleep(0.1)
    new = leases.acquire(r, "s2", [a], ttl=10)
    leases.set_state(r, a, new[a], "connected")
    assert leases.release(r, "s1", old) == []
    assert leases.current(r, a)[0] == new[a]
    assert owner_entry(r, a) == "s2"
    assert r.hget(keys.account(a), "state") == b"connected"


def test_fenced_write_with_the_right_token_is_written_and_never_recreates_a_record(r):
    (a,) = names(r)
    tok = leases.acquire(r, "s1", [a], ttl=10)[a]
    assert leases.hset_existing(r, keys.account(a), "sync", "x", a, tok)
    assert r.hget(keys.account(a), "sync") == b"x"
    r.delete(keys.account(a))
    assert not leases.hset_existing(r, keys.account(a), "sync", "y", a, tok)
    assert not r.exists(keys.account(a))


def test_wrong_token_is_refused_by_any_fenced_script(r):
    (a,) = names(r)
    tok = leases.acquire(r, "s1", [a], ttl=10)[a]
    script = leases.fenced("redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) return 1")
    key = keys.account(a)
    assert r.eval(script, 1, key, "f", "ok", *leases.fence_args(a, tok)) == 1
    assert r.eval(script, 1, key, "f", "bad", *leases.fence_args(a, tok + 1)) == leases.REFUSED
    assert r.eval(script, 1, key, "f", "bad", *leases.fence_args(a, "")) == leases.REFUSED
    r.hdel(leases.LEASES, a)
    assert r.eval(script, 1, key, "f", "bad", *leases.fence_args(a, tok)) == leases.REFUSED
    assert r.hget(key, "f") == b"ok"
    with pytest.raises(leases.Fenced):
        leases.set_state(r, a, tok, "connected")
    assert accounts.get_record(r, a)["state"] == "init"


def test_holders_counts_live_leases_per_sidecar_and_expired_ones(r):
    a, b, c = names(r, 3)
    leases.acquire(r, "count-s1", [a, b], ttl=10)
    leases.acquire(r, "count-s2", [c], ttl=0.05)
    time.sleep(0.1)
    counts, expired, _now = leases.holders(r)
    assert counts.get("count-s1") == 2
    assert "count-s2" not in counts
    assert expired >= 1


def test_fenced_state_writes_keep_the_per_state_counts(r):
    from imapapi import stats

    (a,) = names(r)
    r.hincrby(stats.STATES_KEY, "init", 1)   # names() made the record in init
    before = {k.decode(): int(v) for k, v in r.hgetall(stats.STATES_KEY).items()}
    tok = leases.acquire(r, "s1", [a], ttl=10)[a]
    leases.set_state(r, a, tok, "connected")
    leases.release(r, "s1", {a: tok})
    after = {k.decode(): int(v) for k, v in r.hgetall(stats.STATES_KEY).items()}
    assert after.get("init", 0) == before.get("init", 0) - 1
    assert after.get("disconnected", 0) == before.get("disconnected", 0) + 1
    assert after.get("connected", 0) == before.get("connected", 0)
    r.hincrby(stats.STATES_KEY, "disconnected", -1)


def test_event_commit_with_a_stale_token_writes_neither_event_nor_state(r):
    from imapapi import events

    (a,) = names(r)
    old = leases.acquire(r, "s1", [a], ttl=0.05)[a]
    time.sleep(0.1)
    new = leases.acquire(r, "s2", [a], ttl=10)[a]
    state_key = keys.account_prefix(a) + "h:test"
    r.made.append(a)
    ev = events.make_event(a, "messageNew", {"uid": 1}, path="INBOX", id_parts=(1,))
    try:
        with pytest.raises(leases.Fenced):
            events.append_events(r, a, [ev], [(state_key, {"version": "1"}, None)],
                                 deliver=lambda e: False, fence=old)
        assert r.xlen(keys.events(a)) == 0
        assert not r.exists(state_key)
        ids = events.append_events(r, a, [ev], [(state_key, {"version": "1"}, None)],
                                   deliver=lambda e: False, fence=new)
        assert len(ids) == 1 and r.hget(state_key, "version") == b"1"
    finally:
        r.delete(keys.events(a), state_key)


def test_a_deleted_account_gets_no_lease_nor_owner_entry(r):
    (a,) = names(r)
    r.delete(keys.account(a))   # a reconcile that read the account set before the delete
    assert leases.acquire(r, "s1", [a], ttl=10) == {}
    assert not r.hexists(leases.LEASES, a) and owner_entry(r, a) is None


def test_renew_takes_any_account_id_in_its_packed_argument(r):
    # the packed form is length-prefixed in bytes: separators and multi-byte characters in an id
    # must not shift the next lease
    odd = [f"lease-test-{uuid.uuid4().hex[:6]}{tail}" for tail in (":1,2", "ü€,", ",:", "9")]
    r.made.extend(odd)
    for acct in odd:
        r.hset(keys.account(acct), mapping={"account": acct, "state": "init"})
    held = leases.acquire(r, "s1", odd, ttl=1)
    assert set(held) == set(odd)
    before = {a: leases.current(r, a)[1] for a in odd}
    time.sleep(0.01)
    stolen = dict(held, **{odd[1]: held[odd[1]] + 1000})   # a token we do not hold
    assert leases.renew(r, "s1", stolen, ttl=10, packed=leases.pack(stolen.items())) == [odd[1]]
    for acct in (odd[0], odd[2], odd[3]):
        tok, exp, owner = leases.current(r, acct)
        assert (tok, owner) == (held[acct], "s1") and exp > before[acct]


def test_pack_splits_into_one_argument_per_batch():
    items = [(f"a{i}", i) for i in range(leases.BATCH * 2 + 1)]
    packed = leases.pack(items)
    assert len(packed) == 3
    assert packed[2] == f"{len(items[-1][0])}:{items[-1][0]}{items[-1][1]},"


# -- the sidecar's keeper --------------------------------------------------------------------

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
