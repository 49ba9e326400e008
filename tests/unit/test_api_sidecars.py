"""GET /v1/sidecars on real Redis: replicas from their heartbeats, leases from the lease table."""
import time

from imapapi import keys, leases
from sidecar.leasing import LeaseKeeper

from .api_helpers import app, client  # noqa: F401  (fixtures)


def test_sidecars_lists_replicas_with_leases_and_liveness(client, redis):
    for name in ("sc-a1", "sc-a2", "sc-b1"):
        redis.sadd(keys.ACCOUNTS, name)
        # a lease is only granted to an account that has a record (deleted ones get none)
        redis.hset(keys.account(name), mapping={"account": name, "state": "init"})
    keeper = LeaseKeeper(redis, "sc-a", 10, on_lost=lambda names: None,
                         info=lambda: {"accounts": 2, "connected": 1, "connecting": 1})
    keeper.acquire(["sc-a1", "sc-a2"])
    keeper.renew()
    keeper.heartbeat()
    leases.acquire(redis, "sc-b", ["sc-b1"], ttl=0.05)          # a replica that went quiet
    redis.zadd(keys.SIDECARS, {"sc-b": time.time() - 20})
    time.sleep(0.1)

    resp = client.get("/v1/sidecars")
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    by_id = {s["id"]: s for s in body["sidecars"]}
    a, b = by_id["sc-a"], by_id["sc-b"]
    assert a["alive"] is True and a["accounts"] == 2 and a["connected"] == 1
    assert a["renewLag"] < 5 and a["leaseTtl"] == 10 and a["fencedWrites"] == 0
    assert a["pid"] > 0 and a["started"].endswith("Z")
    assert b["alive"] is False and b["accounts"] == 0 and b["heartbeatAge"] >= 19
    assert body["accounts"] == 3 and body["leased"] == 2 and body["expired"] == 1
