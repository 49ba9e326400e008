"""Bounded worker pool of daemon threads (a hung IMAP socket never blocks process exit)."""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque

log = logging.getLogger(__name__)


class Pool:
    def __init__(self, size: int, name: str = "sidecar"):
        self.size = size
        self._q: queue.SimpleQueue = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
                         for i in range(size)]
        for t in self._threads:
            t.start()

    def submit(self, fn, *args) -> None:
        self._q.put((fn, args))

    def backlog(self) -> int:
        return self._q.qsize()

    def _work(self):
        while True:
            fn, args = self._q.get()
            if fn is None:
                return
            try:
                fn(*args)
            except Exception:
                log.exception("pool job %s failed", getattr(fn, "__qualname__", fn))

    def shutdown(self):
        for _ in self._threads:
            self._q.put((None, ()))


class Ramp:
    """At most `limit` connection setups at once and `rate` started per second, FIFO: 1,000
    accounts (a cold start, a killed replica's share) connect without a herd."""

    def __init__(self, pool: Pool, limit: int, rate: float | None = None):
        self.pool = pool
        self.limit = limit
        self.interval = 1.0 / rate if rate else 0.0
        self.active = 0
        self._q: deque = deque()
        self._lock = threading.Lock()
        self._next = 0.0            # monotonic time the next setup may start
        self._timer: threading.Timer | None = None

    def submit(self, fn, skip=None) -> None:
        """Queue a setup; `skip()` true when its turn comes (the account stopped or was handed
        over meanwhile) drops it without using a slot or the rate."""
        with self._lock:
            self._q.append((fn, skip))
            self._pump()

    def pending(self) -> int:
        return len(self._q) + self.active

    def _pump(self):
        while self.active < self.limit and self._q:
            now = time.monotonic()
            if now < self._next:
                if self._timer is None:   # one timer resumes the queue when the rate allows
                    self._timer = threading.Timer(self._next - now, self._resume)
                    self._timer.daemon = True
                    self._timer.start()
                return
            fn, skip = self._q.popleft()
            if skip is not None and skip():
                continue
            self._next = max(now, self._next) + self.interval
            self.active += 1
            self.pool.submit(self._run, fn)

    def _resume(self):
        with self._lock:
            self._timer = None
            self._pump()

    def _run(self, fn):
        try:
            fn()
        finally:
            with self._lock:
                self.active -= 1
                self._pump()
