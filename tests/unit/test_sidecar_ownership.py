"""Rendezvous ownership: one owner per account, balanced, minimal movement when sidecars change."""
from sidecar.supervisor import owned, owner

ACCOUNTS = [f"acct{i}" for i in range(3000)]


def test_every_account_has_exactly_one_owner():
    sids = ["s1", "s2", "s3"]
    parts = [owned(ACCOUNTS, sids, s) for s in sids]
    assert sum(len(p) for p in parts) == len(ACCOUNTS)
    assert set().union(*parts) == set(ACCOUNTS)


def test_balanced():
    sids = ["s1", "s2", "s3"]
    for s in sids:
        assert 800 < len(owned(ACCOUNTS, sids, s)) < 1200


def test_order_of_sidecars_does_not_matter():
    assert all(owner(a, ["s1", "s2", "s3"]) == owner(a, ["s3", "s1", "s2"]) for a in ACCOUNTS)


def test_adding_a_sidecar_moves_only_its_share():
    before = {a: owner(a, ["s1", "s2"]) for a in ACCOUNTS}
    after = {a: owner(a, ["s1", "s2", "s3"]) for a in ACCOUNTS}
    moved = [a for a in ACCOUNTS if before[a] != after[a]]
    assert all(after[a] == "s3" for a in moved)
    assert 800 < len(moved) < 1200


def test_single_and_no_sidecar():
    assert owned(ACCOUNTS[:5], ["only"], "only") == set(ACCOUNTS[:5])
    assert owner("a", []) is None
