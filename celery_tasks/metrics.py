"""The worker's Prometheus metrics, served on `worker.metricsPort` (off when unset).

Webhook POSTs by outcome (the /v1/stats counts, imapapi.stats hook) and their latency
(imapapi.delivery hook), webhook task results,
submit outcomes, task runtime by task and state (Celery signals), and queue depth / oldest
message age per queue, read from the broker lists at scrape time.
"""
from __future__ import annotations

import logging
import threading
import time

from celery.signals import task_postrun, task_prerun, worker_ready
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily

from imapapi import delivery, queues, stats
from imapapi import tasknames as T
from imapapi.settings import get_redis, get_settings

log = logging.getLogger(__name__)

REGISTRY = CollectorRegistry(auto_describe=True)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, float("inf"))
WEBHOOKS = Counter("webhook_deliveries", "Webhook POSTs by outcome (success, fail; dead: "
                   "dead-lettered after the retry window)", ["outcome"], registry=REGISTRY)
WEBHOOK_TASKS = Counter("webhook_tasks", "Webhook task results (sent, retry, busy, more, dead, "
                        "dropped, duplicate, gone)", ["outcome"], registry=REGISTRY)
WEBHOOK_SECONDS = Histogram("webhook_delivery_seconds", "Webhook POST round trip, by result",
                            ["result"], buckets=LATENCY_BUCKETS, registry=REGISTRY)
SUBMITS = Counter("submit_outcomes", "Send attempts by resulting state (sent, deferred, failed)",
                  ["outcome"], registry=REGISTRY)
TASK_SECONDS = Histogram("task_seconds", "Task runtime by task name and final state",
                         ["task", "state"], buckets=LATENCY_BUCKETS, registry=REGISTRY)

_started: dict[str, float] = {}
_lock = threading.Lock()


@task_prerun.connect(weak=False)
def _prerun(task_id=None, **_):
    with _lock:
        _started[task_id] = time.monotonic()


@task_postrun.connect(weak=False)
def _postrun(task_id=None, task=None, retval=None, state=None, **_):
    with _lock:
        started = _started.pop(task_id, None)
    name = getattr(task, "name", "unknown")
    if started is not None:
        TASK_SECONDS.labels(name, state or "unknown").observe(time.monotonic() - started)
    if name == T.WEBHOOK_DELIVER and isinstance(retval, str):
        WEBHOOK_TASKS.labels(retval).inc()
    elif name == T.SUBMIT:
        outcome = None
        if state == "RETRY":
            outcome = "deferred"   # a transient failure: the task comes back after a backoff
        elif isinstance(retval, dict):
            outcome = retval.get("state") or "unknown"
        elif state == "FAILURE":
            outcome = "error"
        if outcome:
            SUBMITS.labels(outcome).inc()


def _delivered(entry: dict) -> None:
    WEBHOOK_SECONDS.labels("ok" if entry.get("ok") else "fail").observe(
        (entry.get("ms") or 0) / 1000.0)


def _counted(counts: dict) -> None:
    for name, n in counts.items():
        if name.startswith("webhooks:"):   # the same counts /v1/stats shows
            WEBHOOKS.labels(name[9:]).inc(n)


if _delivered not in delivery.ON_DELIVERY:
    delivery.ON_DELIVERY.append(_delivered)
if _counted not in stats.ON_INCR:
    stats.ON_INCR.append(_counted)


class Queues:
    """queue_depth{queue} and queue_oldest_seconds{queue}, from the broker at scrape time."""

    def describe(self):
        return []

    def collect(self):
        names = queues.names(get_settings().worker_queues)
        try:
            redis = get_redis()
            depth, age = queues.depths(redis, names), queues.oldest_ages(redis, names)
        except Exception:   # Redis down: the scrape still answers
            return
        d = GaugeMetricFamily("queue_depth", "Messages waiting in the queue", labels=["queue"])
        a = GaugeMetricFamily("queue_oldest_seconds", "Age of the oldest waiting message",
                              labels=["queue"])
        for name in names:
            d.add_metric([name], depth.get(name, 0))
            a.add_metric([name], age.get(name, 0.0))
        yield d
        yield a


_serving = False


def serve() -> int | None:
    """Start the endpoint when worker.metricsPort is set; -> the port."""
    global _serving
    settings = get_settings()
    port = settings.worker_metrics_port
    if not port or _serving:
        return None
    REGISTRY.register(Queues())
    start_http_server(port, addr=settings.metrics_host or "127.0.0.1", registry=REGISTRY)
    _serving = True
    log.info("worker metrics on http://%s:%d/metrics", settings.metrics_host, port)
    return port


@worker_ready.connect(weak=False)
def _on_ready(**_):
    try:
        serve()
    except OSError as exc:   # port taken: the worker still works, without metrics
        log.error("worker metrics not started: %s", exc)
