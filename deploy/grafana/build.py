"""Writes imap-api.json, the Grafana dashboard over the API, sidecar and worker metrics.

    .venv/bin/python deploy/grafana/build.py     # after changing a panel here

tests/unit/test_grafana_dashboard.py checks that every metric a panel queries is exported.
"""
from __future__ import annotations

import json
from pathlib import Path

DS = {"type": "prometheus", "uid": "${datasource}"}
_ids = iter(range(1, 1000))


def panel(title, exprs, *, x, y, w=12, h=8, unit="short", kind="timeseries", stack=False,
          description=""):
    targets = [{"datasource": DS, "expr": e, "legendFormat": legend, "refId": chr(65 + i)}
               for i, (e, legend) in enumerate(exprs)]
    out = {"id": next(_ids), "type": kind, "title": title, "description": description,
           "datasource": DS, "gridPos": {"x": x, "y": y, "w": w, "h": h}, "targets": targets,
           "fieldConfig": {"defaults": {"unit": unit}, "overrides": []}, "options": {}}
    if kind == "timeseries":
        out["fieldConfig"]["defaults"]["custom"] = {
            "stacking": {"mode": "normal" if stack else "none"}, "fillOpacity": 20 if stack else 5}
    return out


def row(title, y):
    return {"id": next(_ids), "type": "row", "title": title, "collapsed": False,
            "gridPos": {"x": 0, "y": y, "w": 24, "h": 1}, "panels": []}


def q(expr_):
    return expr_.replace("$__rate", "$__rate_interval")


def quantile(phi: float, metric: str, by: str = "") -> str:
    labels = "le" + (", " + by if by else "")
    return q(f"histogram_quantile({phi}, sum by ({labels}) (rate({metric}_bucket[$__rate])))")


P = []
y = 0
P.append(row("Accounts and API", y))
y += 1
P += [
    panel("Accounts by connection state", [("sum by (status) (imap_connections)", "{{status}}")],
          x=0, y=y, stack=True, description="From the API (counters kept by state changes)"),
    panel("API requests by status", [(q('sum by (statusCode) (rate(api_call_total[$__rate]))'),
                                      "{{statusCode}}")], x=12, y=y, unit="reqps"),
]
y += 8
P += [
    panel("API latency p50 / p95", [
        (quantile(0.5, "flask_http_request_duration_seconds"), "p50"),
        (quantile(0.95, "flask_http_request_duration_seconds"), "p95")],
        x=0, y=y, unit="s"),
    panel("Slowest routes (p95)", [
        ("topk(5, " + quantile(0.95, "flask_http_request_duration_seconds", "url_rule") + ")",
         "{{url_rule}}")], x=12, y=y, unit="s"),
]
y += 8
P.append(row("Sidecar (IMAP)", y))
y += 1
P += [
    panel("Connections by state (per replica)", [
        ("sum by (state) (imap_sidecar_connections)", "{{state}}")], x=0, y=y, stack=True),
    panel("IMAP command latency p95 by command", [
        (quantile(0.95, "imap_command_seconds", "command"), "{{command}}")], x=12, y=y, unit="s"),
]
y += 8
P += [
    panel("IMAP traffic", [(q('sum by (direction) (rate(imap_bytes_total[$__rate]))'),
                            "{{direction}}")], x=0, y=y, w=8, unit="Bps"),
    panel("IDLE / NOTIFY pushes", [(q("sum by (type) (rate(imap_pushes_total[$__rate]))"),
                                    "{{type}}")], x=8, y=y, w=8, unit="ops"),
    panel("Reconnects by reason", [(q("sum by (reason) (increase(imap_reconnects_total[$__rate]))"),
                                    "{{reason}}")], x=16, y=y, w=8),
]
y += 8
P += [
    panel("Events emitted by type", [(q("sum by (event) (rate(imap_events_total[$__rate]))"),
                                      "{{event}}")], x=0, y=y, w=12, unit="ops", stack=True),
    panel("Lease renewal lag", [("max by (instance) (imap_lease_renew_lag_seconds)", "{{instance}}"),
                                ("max(imap_lease_renew_duration_seconds)", "last round took")],
          x=12, y=y, w=6, unit="s"),
    panel("Protocol log lines dropped", [(q("sum(increase(imap_protocol_log_dropped_total[$__rate]))"),
                                          "dropped")], x=18, y=y, w=6),
]
y += 8
P.append(row("Workers (webhooks, sending, queues)", y))
y += 1
P += [
    panel("Webhook POSTs by outcome", [(q("sum by (outcome) (rate(webhook_deliveries_total[$__rate]))"),
                                        "{{outcome}}")], x=0, y=y, unit="ops", stack=True),
    panel("Webhook latency p50 / p95", [
        (quantile(0.5, "webhook_delivery_seconds"), "p50"),
        (quantile(0.95, "webhook_delivery_seconds"), "p95")],
        x=12, y=y, unit="s"),
]
y += 8
P += [
    panel("Queue depth", [("sum by (queue) (queue_depth)", "{{queue}}")], x=0, y=y, w=8),
    panel("Oldest waiting job", [("max by (queue) (queue_oldest_seconds)", "{{queue}}")],
          x=8, y=y, w=8, unit="s"),
    panel("Sending outcomes", [(q("sum by (outcome) (increase(submit_outcomes_total[$__rate]))"),
                                "{{outcome}}")], x=16, y=y, w=8),
]
y += 8
P += [
    panel("Task runtime p95 by task", [
        (quantile(0.95, "task_seconds", "task"), "{{task}}")], x=0, y=y, unit="s"),
    panel("Task failures", [(q('sum by (task) (rate(task_seconds_count{state="FAILURE"}[$__rate]))'),
                             "{{task}}"),
                            (q("sum by (outcome) (rate(webhook_tasks_total[$__rate]))"),
                             "webhook task {{outcome}}")], x=12, y=y, unit="ops"),
]

DASHBOARD = {
    "__inputs": [{"name": "DS_PROMETHEUS", "label": "Prometheus", "type": "datasource",
                  "pluginId": "prometheus", "pluginName": "Prometheus"}],
    "uid": "imap-api", "title": "IMAP API", "tags": ["imap-api"], "timezone": "browser",
    "schemaVersion": 39, "version": 1, "editable": True, "refresh": "30s",
    "time": {"from": "now-6h", "to": "now"},
    "templating": {"list": [{"name": "datasource", "type": "datasource", "query": "prometheus",
                             "label": "Prometheus", "current": {}, "hide": 0}]},
    "annotations": {"list": []},
    "panels": P,
}

if __name__ == "__main__":
    out = Path(__file__).with_name("imap-api.json")
    out.write_text(json.dumps(DASHBOARD, indent=2) + "\n")
    print(f"wrote {out} ({len(P)} panels)")
