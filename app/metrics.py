"""Prometheus metrics at /metrics (multi-process aware under Gunicorn)."""
from __future__ import annotations

import os

from flask import Flask, request
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_flask_exporter import PrometheusMetrics

from imapapi import stats
from imapapi.accounts import STATES
from imapapi.settings import get_redis

_EXCLUDED = ["/metrics", "/health", "/docs", "/openapi.json", "/static"]
_api_calls = None


# /v1/stats counters apiCall:success|fail, written to Redis once a second (imapapi.stats)
STATS = None


def _stats_buffer():
    global STATS
    if STATS is None:
        STATS = stats.Buffer(get_redis)
    return STATS


class ConnectionStates:
    """imap_connections{status}: accounts per connection state, from the counters the state
    writes maintain (imapapi.stats): one HGETALL per scrape, whatever the number of accounts."""

    def describe(self):
        return []   # no Redis round trip when the collector is registered

    def collect(self):
        counts = dict.fromkeys(STATES, 0)
        try:
            counts.update(stats.state_counts(get_redis()))
        except Exception:   # Redis down: /health reports it; metrics stay scrapeable
            return
        family = GaugeMetricFamily("imap_connections", "Accounts per connection state",
                                   labels=["status"])
        for state, count in counts.items():
            family.add_metric([state], count)
        yield family


def init_app(app: Flask):
    """GunicornInternalPrometheusMetrics when PROMETHEUS_MULTIPROC_DIR is set, else a per-app
    registry (so several apps in one test process do not clash on metric names)."""
    global _api_calls
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR") and not app.testing:
        # lazy: the multi-process exporter is only for Gunicorn with PROMETHEUS_MULTIPROC_DIR
        from prometheus_flask_exporter.multiprocess import GunicornInternalPrometheusMetrics

        class MultiprocMetrics(GunicornInternalPrometheusMetrics):
            # each scrape builds a fresh registry from the multiproc files; add the live gauge
            def generate_metrics(self, accept_header=None, names=None):
                content, content_type = super().generate_metrics(accept_header, names)
                live = CollectorRegistry(auto_describe=False)
                live.register(ConnectionStates())
                encoder, _ = choose_encoder(accept_header)
                extra = encoder(live).decode("utf-8")
                eof = "# EOF\n"
                if content.endswith(eof):   # OpenMetrics: one terminator at the very end
                    return content[:-len(eof)] + extra, content_type
                return content + extra, content_type

        metrics = MultiprocMetrics(app, group_by="url_rule", excluded_paths=_EXCLUDED)
        if _api_calls is None:
            _api_calls = Counter("api_call", "Completed /v1/ requests",
                                 ["method", "statusCode", "route"])
        counter = _api_calls
    else:
        registry = CollectorRegistry(auto_describe=True)
        metrics = PrometheusMetrics(app, registry=registry, group_by="url_rule",
                                    excluded_paths=_EXCLUDED)
        counter = Counter("api_call", "Completed /v1/ requests", ["method", "statusCode", "route"],
                          registry=registry)
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR") or app.testing:
        metrics.registry.register(ConnectionStates())
    _stats_buffer()
    metrics.info("imapapi_info", "IMAP API version", version=app.config.get("API_VERSION", ""))

    @app.after_request
    def count_api_call(response):
        rule = request.url_rule.rule if request.url_rule else None
        if rule and rule.startswith("/v1/"):
            route = rule.replace("<", "{").replace(">", "}")
            counter.labels(request.method.lower(), str(response.status_code), route).inc()
            STATS.add("apiCall:success" if response.status_code < 400 else "apiCall:fail")
        return response

    return metrics
