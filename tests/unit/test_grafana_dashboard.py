"""The Grafana dashboard (deploy/grafana/imap-api.json) queries only series the processes export."""
from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

from prometheus_client.parser import text_string_to_metric_families

from tests.unit.api_helpers import app, client  # noqa: F401  (fixtures)

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "imap-api.json"
PROMQL = {"sum", "by", "rate", "increase", "histogram_quantile", "topk", "max", "min", "avg",
          "le", "without", "on", "ignoring", "__rate_interval"}


def exported(text: str) -> set[str]:
    return {s.name for f in text_string_to_metric_families(text) for s in f.samples}


def queried() -> dict[str, str]:
    doc = json.loads(DASHBOARD.read_text())
    out = {}
    for panel in doc["panels"]:
        for target in panel.get("targets", []):
            expr = re.sub(r"\{[^}]*\}", "", target["expr"])          # label matchers
            expr = re.sub(r"\[[^\]]*\]", "", expr)                    # range selectors
            expr = re.sub(r"\b(by|without)\s*\([^)]*\)", "", expr)     # grouping labels
            for token in re.findall(r"[a-zA-Z_][a-zA-Z0-9_]*", expr):
                if token not in PROMQL and not token.replace(".", "").isdigit():
                    out[token] = panel["title"]
    return out


def test_every_dashboard_series_is_exported(client, redis):  # noqa: F811
    from prometheus_client import generate_latest

    from celery_tasks import metrics as worker
    from sidecar import metrics as sidecar

    client.get("/v1/accounts")
    names = exported(client.get("/metrics").get_data(as_text=True))
    live = sidecar.Live(SimpleNamespace(accounts={}, leases=SimpleNamespace(renewed_at=1.0,
                                                                             renew_ms=2.0)))
    names |= {s.name for f in live.collect() for s in f.samples}
    # touch each labelled series once so it is exported
    sidecar.COMMAND_SECONDS.labels("NOOP").observe(0.001)
    for c, label in ((sidecar.BYTES, "in"), (sidecar.PUSHES, "EXISTS"),
                     (sidecar.RECONNECTS, "dropped"), (sidecar.EVENTS, "messageNew"),
                     (worker.WEBHOOKS, "success"), (worker.WEBHOOK_TASKS, "sent"),
                     (worker.SUBMITS, "sent")):
        c.labels(label).inc(0)
    worker.WEBHOOK_SECONDS.labels("ok").observe(0.01)
    worker.TASK_SECONDS.labels("t", "SUCCESS").observe(0.01)
    names |= exported(generate_latest(sidecar.REGISTRY).decode())
    names |= exported(generate_latest(worker.REGISTRY).decode())
    names |= {s.name for f in worker.Queues().collect() for s in f.samples}
    missing = {name: title for name, title in queried().items() if name not in names}
    assert not missing, f"dashboard queries series nobody exports: {missing}"
    assert len(queried()) >= 15
