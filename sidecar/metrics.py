"""The sidecar's Prometheus metrics, served on `sidecar.metricsPort` (off when unset).

Connections by state and lease renewal lag are read from the live objects at scrape time (no
Redis); IMAP command latency, bytes and pushes come from sidecar.wiretap; reconnects from the
account state machine; events from every committed change (imapapi.stats hook).
"""
from __future__ import annotations

import logging
import time

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily

from imapapi import stats

log = logging.getLogger(__name__)

REGISTRY = CollectorRegistry(auto_describe=True)
COMMAND_SECONDS = Histogram(
    "imap_command_seconds", "IMAP command latency, from sending the command to its tagged reply",
    ["command"], registry=REGISTRY,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
             float("inf")))
BYTES = Counter("imap_bytes", "Bytes on IMAP connections", ["direction"], registry=REGISTRY)
PUSHES = Counter("imap_pushes", "Untagged server pushes received while idle (IDLE/NOTIFY)",
                 ["type"], registry=REGISTRY)
RECONNECTS = Counter("imap_reconnects", "Connection attempts after the first, by why",
                     ["reason"], registry=REGISTRY)
LOG_DROPPED = Counter("imap_protocol_log_dropped", "Protocol log lines not stored (Redis slow "
                      "or down)", registry=REGISTRY)
EVENTS = Counter("imap_events", "Change events committed (webhook/changes feed), by type",
                 ["event"], registry=REGISTRY)

# previous state -> reason label of a reconnect (`start` event out of that state)
REASONS = {"connected": "requested", "disconnected": "dropped", "connectError": "connectError",
           "authenticationError": "authenticationError", "connecting": "settingsChanged"}


def on_transition(previous: str, event: str) -> None:
    """Called by the account state machine on each transition."""
    if event == "start" and previous in REASONS:
        RECONNECTS.labels(REASONS[previous]).inc()


def _count_events(counts: dict) -> None:
    for name, n in counts.items():
        if name.startswith("events:"):
            EVENTS.labels(name[7:]).inc(n)


class Live:
    """Gauges read from the supervisor at scrape time: accounts per state, lease lag."""

    def __init__(self, supervisor):
        self.supervisor = supervisor

    def describe(self):
        return []

    def collect(self):
        sup = self.supervisor
        counts: dict[str, int] = {}
        for acct in list(getattr(sup, "accounts", {}).values()):
            state = getattr(acct, "state", "init")
            counts[state] = counts.get(state, 0) + 1
        family = GaugeMetricFamily("imap_sidecar_connections",
                                   "Accounts held by this sidecar, per connection state",
                                   labels=["state"])
        for state in ("init", "connecting", "connected", "authenticationError", "connectError",
                      "disconnected"):
            family.add_metric([state], counts.pop(state, 0))
        for state, n in counts.items():
            family.add_metric([state], n)
        yield family
        leases = getattr(sup, "leases", None)
        if leases is not None and getattr(leases, "renewed_at", 0):
            lag = GaugeMetricFamily("imap_lease_renew_lag_seconds",
                                    "Seconds since this sidecar last renewed its account leases")
            lag.add_metric([], max(0.0, time.time() - leases.renewed_at))
            yield lag
            took = GaugeMetricFamily("imap_lease_renew_duration_seconds",
                                     "How long the last lease renewal round took")
            took.add_metric([], getattr(leases, "renew_ms", 0.0) / 1000.0)
            yield took


_started = False


def serve(settings, supervisor) -> int | None:
    """Start the metrics endpoint if `sidecar.metricsPort` is set; -> the port."""
    global _started
    port = getattr(settings, "sidecar_metrics_port", None)
    if _count_events not in stats.ON_INCR:
        stats.ON_INCR.append(_count_events)
    if not port or _started:
        return None
    host = getattr(settings, "metrics_host", None) or "127.0.0.1"
    try:
        start_http_server(port, addr=host, registry=REGISTRY)
    except OSError as exc:   # port taken (a second replica on this host): run without metrics
        log.error("sidecar metrics not started on %s:%s: %s", host, port, exc)
        return None
    REGISTRY.register(Live(supervisor))
    _started = True
    log.info("metrics on http://%s:%d/metrics", host, port)
    return port
