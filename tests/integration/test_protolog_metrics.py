"""End to end (issue 13): per-account IMAP protocol logs, /v1/stats counters, and the sidecar's
and worker's Prometheus endpoints counting what a scripted run did."""
from __future__ import annotations

import json
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from imapapi import protolog
from tests.checks import wait_until
from tests.integration.helpers import message

pytestmark = pytest.mark.integration


def log_lines(api, account: str) -> list[dict]:
    resp = api.get(f"/v1/logs/{account}")
    assert resp.status_code == 200
    if resp.text.startswith("No logs found"):
        return []
    return [json.loads(line) for line in resp.text.splitlines() if line]


def list_inbox(api, account: str) -> dict:
    resp = api.get(f"/v1/account/{account}/messages", params={"path": "INBOX"})
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_log_on_records_redacted_login_and_both_directions_off_deletes(api, new_account, redis):
    acc = new_account()
    resp = api.post("/v1/settings", json={"logs": {"accounts": [acc.id], "maxLogLines": 5000,
                                                   "resetLoggedAccounts": True}})
    assert resp.status_code == 200 and "logs" in resp.json()["updated"]
    assert api.get("/v1/settings", params={"logs": "true"}).json()["logs"] == {
        "all": False, "accounts": [acc.id], "maxLogLines": 5000}

    # the forced reconnect logs in again: the LOGIN line is there, its arguments are not
    logins = wait_until(lambda: [x for x in log_lines(api, acc.id) if " LOGIN " in x["msg"]],
                        30, "a LOGIN line in the log")
    assert all(x["msg"].endswith("LOGIN [redacted]") for x in logins), logins
    acc.append(message("logged subject"))
    wait_until(lambda: any(m["subject"] == "logged subject"
                           for m in list_inbox(api, acc.id)["messages"]), 20, "message listed")

    resp = api.get(f"/v1/logs/{acc.id}")
    assert "attachment" in resp.headers["Content-Disposition"]
    assert acc.password not in resp.text
    lines = log_lines(api, acc.id)
    assert {"c", "s"} <= {x["src"] for x in lines}
    assert all(isinstance(x["t"], int) and x["cid"] for x in lines)
    assert any("FETCH" in x["msg"] and x["src"] == "c" for x in lines)
    assert any("logged subject" in x["msg"] for x in lines if x["src"] == "s")
    assert acc.password not in json.dumps(lines)

    # off: the log is deleted and live connections stop appending
    api.post("/v1/settings", json={"logs": {"accounts": []}})
    assert log_lines(api, acc.id) == []
    time.sleep(1.5)   # the sidecar reloads the setting on the settings channel
    list_inbox(api, acc.id)
    time.sleep(0.5)
    assert not redis.exists(protolog.log_key(acc.id))


def test_long_literals_are_cut(api, new_account):
    acc = new_account()
    acc.append(message("big one", body="x" * 5000))
    api.post("/v1/settings", json={"logs": {"accounts": [acc.id]}})
    time.sleep(1.5)   # live connection picks the setting up without a reconnect
    listing = wait_until(lambda: list_inbox(api, acc.id)["messages"], 20, "listed")
    resp = api.get(f"/v1/account/{acc.id}/message/{listing[0]['id']}/source")
    assert resp.status_code == 200 and len(resp.content) > 5000
    lines = log_lines(api, acc.id)
    cut = [x for x in lines if "bytes, cut]" in x["msg"]]
    assert cut and all(len(x["msg"]) < protolog.LITERAL_MAX + 100 for x in cut), lines[-5:]
    api.post("/v1/settings", json={"logs": {"accounts": []}})


# -- metrics -----------------------------------------------------------------------------------
def scrape(port: int) -> dict:
    """{(name, sorted labels tuple): value} of one /metrics endpoint."""
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def delta(after: dict, before: dict, name: str, **labels) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


def test_sidecar_and_worker_metrics_count_a_scripted_run(api, stack, new_account, smtp,
                                                         webhook_receiver):
    sidecar_port = int(stack.env["SIDECAR_METRICS_PORT"])
    worker_port = int(stack.env["WORKER_METRICS_PORT"])
    wait_until(lambda: scrape(worker_port), 20, "worker metrics endpoint")
    hook = f"metrics{time.time_ns()}"
    assert api.post("/v1/settings", json={"webhooks": webhook_receiver.url(hook),
                                          "webhookEvents": ["messageNew"]}).status_code == 200
    s0, w0 = scrape(sidecar_port), scrape(worker_port)
    stats0 = api.get("/v1/stats", params={"seconds": 3600}).json()["counters"]

    acc = new_account(smtp=smtp.account_config(secure=False))
    for i in range(3):
        acc.append(message(f"metrics {i}"))
    got = webhook_receiver.wait_for(
        lambda evs: len([e for e in evs if e["account"] == acc.id]) >= 3 and evs, 30, name=hook)
    assert len([e for e in got if e["account"] == acc.id]) == 3
    list_inbox(api, acc.id)
    sent = api.post(f"/v1/account/{acc.id}/submit", json={
        "from": {"address": "me@example.com"}, "to": [{"address": "you@example.com"}],
        "subject": "metrics", "text": "hi", "copy": False})
    assert sent.status_code == 200, sent.text
    time.sleep(1.5)   # the worker's task_postrun and the webhook bookkeeping finish

    s1, w1 = scrape(sidecar_port), scrape(worker_port)
    assert delta(s1, s0, "imap_events_total", event="messageNew") == 3
    assert s1[("imap_sidecar_connections", (("state", "connected"),))] >= 1
    assert delta(s1, s0, "imap_command_seconds_count", command="LOGIN") >= 1
    assert delta(s1, s0, "imap_command_seconds_count", command="UID FETCH") >= 1
    assert delta(s1, s0, "imap_bytes_total", direction="in") > 0
    assert delta(s1, s0, "imap_bytes_total", direction="out") > 0
    assert sum(v for (n, _), v in s1.items() if n == "imap_pushes_total") > \
        sum(v for (n, _), v in s0.items() if n == "imap_pushes_total")

    delivered = len(webhook_receiver.received(hook))
    assert delta(w1, w0, "webhook_deliveries_total", outcome="success") == delivered == 3
    assert delta(w1, w0, "webhook_tasks_total", outcome="sent") >= 1
    assert delta(w1, w0, "webhook_delivery_seconds_count", result="ok") == 3
    # one task POSTs the account's waiting events in order: at least one task, at most three
    assert 1 <= delta(w1, w0, "task_seconds_count", task="imapapi.webhooks.deliver",
                      state="SUCCESS") <= 3
    assert delta(w1, w0, "submit_outcomes_total", outcome="sent") == 1
    assert ("queue_depth", (("queue", "webhooks"),)) in w1
    assert ("queue_oldest_seconds", (("queue", "celery"),)) in w1

    stats1 = api.get("/v1/stats", params={"seconds": 3600}).json()
    assert stats1["counters"].get("events:messageNew", 0) - stats0.get("events:messageNew", 0) == 3
    assert stats1["counters"].get("webhooks:success", 0) - stats0.get("webhooks:success", 0) == 3
    assert stats1["counters"].get("apiCall:success", 0) > stats0.get("apiCall:success", 0)
    assert stats1["connections"]["connected"] >= 1
    api.post("/v1/settings", json={"webhooks": None})


def test_connection_counts_match_the_account_records(api, new_account):
    """The counters the state writes keep (/v1/stats, imap_connections) never drift from the
    records: connect, fail, reconnect, delete, then compare with a full listing."""
    good = [new_account() for _ in range(2)]
    bad = new_account(api_password="wrong", wait="authenticationError")
    api.put(f"/v1/account/{good[0].id}/reconnect", json={"reconnect": True})
    api.delete(f"/v1/account/{good[1].id}")

    def same():
        listed: dict[str, int] = {}
        for acc in api.get("/v1/accounts", params={"pageSize": 1000}).json()["accounts"]:
            listed[acc["state"]] = listed.get(acc["state"], 0) + 1
        counted = {k: v for k, v in api.get("/v1/stats").json()["connections"].items() if v}
        return counted if counted == listed else None
    counted = wait_until(same, 30, "stats connections == the records' states", step=0.5)
    assert counted.get("authenticationError", 0) >= 1 and bad.id
