"""Prometheus metrics at /metrics (multi-process aware under Gunicorn)."""
from __future__ import annotations

import os

from flask import Flask, request

_EXCLUDED = ["/metrics", "/health", "/docs", "/openapi.json", "/static"]
_api_calls = None


def init_app(app: Flask):
    """GunicornInternalPrometheusMetrics when PROMETHEUS_MULTIPROC_DIR is set, else a per-app
    registry (so several apps in one test process do not clash on metric names)."""
    global _api_calls
    from prometheus_client import CollectorRegistry, Counter

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR") and not app.testing:
        from prometheus_flask_exporter.multiprocess import GunicornInternalPrometheusMetrics

        metrics = GunicornInternalPrometheusMetrics(app, group_by="url_rule",
                                                    excluded_paths=_EXCLUDED)
        if _api_calls is None:
            _api_calls = Counter("api_call", "Completed /v1/ requests",
                                 ["method", "statusCode", "route"])
        counter = _api_calls
    else:
        from prometheus_flask_exporter import PrometheusMetrics

        registry = CollectorRegistry(auto_describe=True)
        metrics = PrometheusMetrics(app, registry=registry, group_by="url_rule",
                                    excluded_paths=_EXCLUDED)
        counter = Counter("api_call", "Completed /v1/ requests", ["method", "statusCode", "route"],
                          registry=registry)
    metrics.info("imapapi_info", "IMAP API version", version=app.config.get("API_VERSION", ""))

    @app.after_request
    def count_api_call(response):
        rule = request.url_rule.rule if request.url_rule else None
        if rule and rule.startswith("/v1/"):
            route = rule.replace("<", "{").replace(">", "}")
            counter.labels(request.method.lower(), str(response.status_code), route).inc()
        return response

    return metrics
