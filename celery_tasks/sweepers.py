"""Periodic background loops inside every worker (no celery beat needed), started and stopped
with the worker."""
from __future__ import annotations

import logging
import threading

from celery import signals

log = logging.getLogger(__name__)


def in_every_worker(name: str, every: float, fn) -> threading.Event:
    """Run fn() every `every` seconds in a daemon thread of each worker; errors are logged and
    the loop goes on (e.g. Redis briefly down). Returns the stop event (set at worker shutdown)."""
    stop = threading.Event()

    def loop():
        while not stop.wait(every):
            try:
                fn()
            except Exception:
                log.exception("%s failed", name)

    def start(**_):
        threading.Thread(target=loop, name=name, daemon=True).start()

    def finish(**_):
        stop.set()

    # weak=False: these closures have no other reference and would be collected otherwise
    signals.worker_ready.connect(start, weak=False)
    signals.worker_shutdown.connect(finish, weak=False)
    return stop
